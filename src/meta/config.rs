//! The whole configuration tree, one struct per YAML section, read once at start
//! (`configs/<env>/common.yaml` + `APP__...` overrides; see `goex_config`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use goex_cache::KeyFamily;
use goex_config::{ConfigError, Loaded, Profile, invalid};
use serde::Deserialize;

/// The shortest non-empty `server.grpc.auth.password` prod accepts.
pub const MIN_GRPC_PASSWORD: usize = 16;

/// The longest `auth.login_cache_ttl`: how stale a Redis-backed login may be seen elsewhere.
pub const MAX_LOGIN_CACHE_TTL: Duration = Duration::from_secs(1);

/// Everything in `common.yaml`. Unknown keys are rejected so typos fail at start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Listeners and HTTP limits.
    pub server: ServerConfig,
    /// Logging sinks.
    pub log: goex_logging::Settings,
    /// Which database and whether to migrate at start.
    pub database: goex_database::DatabaseSettings,
    /// The embedded SQLite database.
    pub sqlite: goex_database::SqliteSettings,
    /// The MySQL server (the original's `mysql.*`).
    pub mysql: goex_database::MysqlSettings,
    /// Redis, single or Cluster (the original's `redis.*`); off on the embedded default.
    pub redis: goex_redis::Settings,
    /// MongoDB (the original's `mongodb.*`): user documents.
    pub mongodb: goex_mongo::Settings,
    /// The in-process cache.
    pub cache: goex_cache::Settings,
    /// Cache key families (the original's `cacheKeys.*`): pattern and TTL each.
    #[serde(rename = "cacheKeys")]
    pub cache_keys: CacheKeys,
    /// JWT signing keys (the original's `certs.curKey` / `certs.keys`), used by the auth feature.
    pub certs: CertsConfig,
    /// Login, tokens and single sign-on.
    pub auth: AuthConfig,
    /// The profiling listener.
    pub pprof: goex_profiling::Settings,
    /// Prometheus metrics and their listener.
    pub metrics: goex_metrics::Settings,
    /// The HTTP app's client of the gRPC app (`GET /grpc/hello`).
    pub grpc_client: GrpcClientConfig,
    /// The original's `common` section: settings shared by the apps.
    pub common: CommonConfig,
    /// The Excel import and export (docs/excel.md).
    pub excel: ExcelConfig,
    /// Service registration in Consul (docs/discovery.md).
    pub consul: ConsulConfig,
    /// The Jenkins client and its routes (docs/jenkins.md): the original's `jenkins.*`.
    pub jenkins: JenkinsConfig,
    /// SMS verification codes and login by code (docs/sms.md).
    pub sms: SmsConfig,
    /// Alibaba Cloud SMS (the original's `alibaba_sms.*`).
    pub alibaba_sms: goex_sms::Settings,
    /// The approved sign name and template of the code message (the original's
    /// `alibaba_sms_code.*`).
    pub alibaba_sms_code: AlibabaSmsCodeConfig,
}

/// `jenkins.*` (docs/jenkins.md): the original's `host`, `username`, `password`, and more.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsConfig {
    /// The controller's URL (`http://127.0.0.1:8080`, a path prefix allowed); empty: not
    /// configured, the `/jenkins/*` routes answer 503 / 10004.
    pub host: String,
    /// The user the app acts as.
    pub username: String,
    /// Its API token (preferred) or password (`APP__JENKINS__PASSWORD`).
    pub password: secrecy::SecretString,
    /// How long connecting may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long one request may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The most bytes of console one answer carries (a page of `GET /jenkins/log`).
    pub max_console_bytes: usize,
    /// The job `GET /jenkins/index` shows without `?job=` (the original's `go-test`).
    pub default_job: String,
    /// Gone (issue 22): the `/jenkins/*` routes are for users with the admin role. Read only
    /// to refuse it at start with a message naming `go_example users grant-admin NAME`.
    #[serde(default)]
    pub admins: Option<serde::de::IgnoredAny>,
}

impl JenkinsConfig {
    /// The client's settings.
    pub fn settings(&self) -> goex_jenkins::JenkinsSettings {
        goex_jenkins::JenkinsSettings {
            host: self.host.trim().to_owned(),
            username: self.username.clone(),
            password: self.password.clone(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_console_bytes: self.max_console_bytes,
        }
    }
}

/// Which provider sends codes (`sms.provider`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsProvider {
    /// Alibaba Cloud `SendSms` (`alibaba_sms.*`, `alibaba_sms_code.*`).
    Alibaba,
    /// Nothing is sent: the code is logged at info (development only; refused in prod).
    Log,
}

/// `sms.*` (docs/sms.md): codes, their limits and login by code.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// `alibaba` or `log`.
    pub provider: SmsProvider,
    /// How long a code is good for.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// One code per phone per this interval (429 / 10008 sooner).
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
    /// Codes per phone per `phone_window`.
    pub max_per_phone: i64,
    /// The window of `max_per_phone`.
    #[serde(with = "humantime_serde")]
    pub phone_window: Duration,
    /// Codes per client address per `address_window`.
    pub max_per_address: i64,
    /// The window of `max_per_address`.
    #[serde(with = "humantime_serde")]
    pub address_window: Duration,
    /// Codes sent to all phones together per `total_window`: the budget many addresses
    /// together cannot exceed (SMS pumping).
    pub max_total: i64,
    /// The window of `max_total`.
    #[serde(with = "humantime_serde")]
    pub total_window: Duration,
    /// Codes per wider client network (IPv4 /24, IPv6 /48) per `address_window`.
    pub max_per_network: i64,
    /// The share of `max_total` kept for numbers that already belong to users (0 to below 1;
    /// numbers nobody has share the rest).
    pub reserved_share: f64,
    /// Wrong tries a code allows; the last one spends it.
    pub max_attempts: u32,
    /// An SMS login with a number no user has creates that user (else 404 / 10005).
    pub register_on_login: bool,
    /// The HMAC key of stored code digests (set it through `APP__SMS__CODE_SECRET`); empty: a
    /// random key per process, which is right only when one process checks the codes it sent
    /// (the embedded default; with Redis the app warns at start). At least 16 bytes when set.
    pub code_secret: secrecy::SecretString,
}

/// `alibaba_sms_code.*`: the original's keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlibabaSmsCodeConfig {
    /// The approved signature (`SignName`).
    pub sign_name: String,
    /// The approved template (`TemplateCode`), with a `${code}` variable.
    pub template_code: String,
}

/// `consul.*` (docs/discovery.md): the original's `consul` section, extended.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulConfig {
    /// Register the apps with the agent.
    pub enabled: bool,
    /// The agent: `host:port` (the original's `consul.addr`, `127.0.0.1:8500`) or a URL.
    pub addr: String,
    /// The ACL token (`X-Consul-Token`); empty: none.
    pub token: secrecy::SecretString,
    /// The longest one request to the agent may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The address registered for the apps; empty: the bind address when it names one, else
    /// the local address of the route to the agent.
    pub address: String,
    /// Which apps register, and as what.
    pub services: ConsulServices,
    /// Tags of every registration (the original's `my_grpc`).
    pub tags: Vec<String>,
    /// Meta of every registration.
    pub meta: std::collections::BTreeMap<String, String>,
    /// The check the agent runs.
    pub check: ConsulCheckConfig,
    /// Registration retries: the first pause, doubled up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// The longest pause between registration attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How often a registered app checks that the agent still knows it (and registers again
    /// when it does not).
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// How long a stopping app waits after deregistering before it drains, so clients watching
    /// Consul drop it first.
    #[serde(with = "humantime_serde")]
    pub deregister_grace: Duration,
    /// https to the agent: its CA, a client certificate and key (mTLS), the name checked.
    pub tls: goex_consul::TlsSettings,
    /// The networks (CIDRs) a discovered instance's address must be in to be dialled; empty:
    /// any address (refused in prod).
    pub allowed_networks: Vec<String>,
}

impl ConsulConfig {
    /// `allowed_networks` parsed (a bare address is a one-address network); the entries
    /// [`AppConfig::check`] refuses are skipped.
    pub fn networks(&self) -> Vec<ipnet::IpNet> {
        self.allowed_networks
            .iter()
            .filter_map(|n| parse_network(n).ok())
            .collect()
    }
}

/// A CIDR (`10.0.0.0/8`) or one address (`10.0.0.5`, as `/32` or `/128`).
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not a network (CIDR) or an address"))
}

/// `consul.services.*`: the service name each app registers as; empty: it does not register.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulServices {
    /// The gRPC app (the original's `hello`), checked with gRPC health over its TLS.
    pub grpc: String,
    /// The HTTP app, checked with `GET /healthz`.
    pub http: String,
    /// The socket app, checked with a TCP connect.
    pub socket: String,
}

/// `consul.check.*` (the original's values as defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulCheckConfig {
    /// How often the agent runs the check.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long one run may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a critical instance stays registered.
    #[serde(with = "humantime_serde")]
    pub deregister_critical_after: Duration,
    /// Whether the agent skips verifying the gRPC app's certificate (the original always did;
    /// here only when set).
    pub tls_skip_verify: bool,
    /// The name the agent checks the gRPC app's certificate for (`TLSServerName`); empty: the
    /// registered address.
    pub tls_server_name: String,
}

/// Rows of an xlsx sheet below its header row.
pub const EXCEL_MAX_DATA_ROWS: usize = 1_048_575;

/// The largest `excel.import_batch_size`: MySQL takes 65,535 placeholders a statement and
/// SQLite 32,766, and an imported row has 5.
pub const MAX_IMPORT_BATCH: usize = 5_000;

/// `excel.*` (docs/excel.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcelConfig {
    /// The export's file name (`Content-Disposition`; UTF-8 allowed).
    pub export_file_name: String,
    /// Users read per database query while exporting.
    pub export_page_size: usize,
    /// Most users one export may hold (a sheet holds 1,048,575 below its header); more: 400.
    pub max_export_rows: usize,
    /// Where the workbook being written spills its rows, and where uploads are kept while
    /// they are imported; empty: the system's temp directory.
    pub temp_dir: String,
    /// The largest `POST /excel/import` body (bytes), counted while it streams in; more:
    /// 413 / 10007.
    pub max_upload_size: u64,
    /// How long an upload may take to arrive; longer: 408 / 10012.
    #[serde(with = "humantime_serde")]
    pub upload_timeout: Duration,
    /// Most data rows one import may hold; more: 400 / 10000, nothing written.
    pub max_import_rows: usize,
    /// Rows per statement inside the import's transaction.
    pub import_batch_size: usize,
    /// The default for bad rows: `all_or_nothing` or `skip_invalid` (`?mode=` overrides it).
    pub import_mode: crate::model::excel::ImportMode,
    /// The default for usernames that exist: `skip` or `update` (`?on_existing=` overrides it).
    pub on_existing: crate::model::excel::OnExisting,
    /// Problems listed in an import's report at most (the count covers all of them).
    pub max_reported_errors: usize,
    /// The longest an import may take (check, hashing and writing); longer: 503 / 10004.
    #[serde(with = "humantime_serde")]
    pub import_timeout: Duration,
    /// Zip entries an uploaded workbook may have (checked before parsing).
    pub max_zip_entries: usize,
    /// Bytes an uploaded workbook may unpack to, all entries together (from the zip
    /// directory, before parsing; an entry that unpacks to more than it declares fails).
    pub max_unpacked_size: u64,
    /// The largest unpacked/packed ratio of an entry over 1 MiB unpacked.
    pub max_compression_ratio: u64,
    /// Unpacked bytes of an upload's shared-strings table at most (held in memory while read).
    pub max_shared_strings_size: u64,
    /// Rows read after which `POST /excel/import` stops waiting and answers 202 with the job,
    /// which goes on in the background.
    pub async_rows: usize,
    /// Imports running at once in one process; more: 503 / 10009.
    pub max_running_imports: usize,
    /// Exports being written at once in one process; more: 503 / 10009.
    pub max_running_exports: usize,
    /// Exports one admin may start per `exports_window`; more: 429 / 10008.
    pub max_exports_per_user: i64,
    /// The window of `max_exports_per_user`.
    #[serde(with = "humantime_serde")]
    pub exports_window: Duration,
    /// Users one admin's imports may create per hour; more: 429 / 10008, nothing written.
    pub max_created_per_hour: i64,
    /// Threads an import hashes its passwords on, at the lowest OS priority (never the login
    /// slots of `auth.hash_concurrency`).
    pub password_hash_slots: usize,
    /// Rows with a 密码 one import may hold (each costs an argon2 hash); more: 400 / 10000.
    pub max_password_rows: usize,
    /// How long finished import jobs are kept for `GET /excel/import/{id}`.
    #[serde(with = "humantime_serde")]
    pub job_retention: Duration,
    /// How often the socket app looks for import progress to push to connected users.
    #[serde(with = "humantime_serde")]
    pub progress_poll_interval: Duration,
}

impl AppConfig {
    /// `excel.temp_dir`, `None` when empty (the system's temp directory).
    pub fn excel_temp_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.excel.temp_dir.trim())
            .filter(|d| !d.is_empty())
            .map(std::path::PathBuf::from)
    }
}

/// The `common` section (the original's keys).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonConfig {
    /// Client addresses the socket app admits: addresses, CIDRs, or IPv4 with whole-octet `*`
    /// (`192.168.163.*`). Empty admits everyone (the original's rule).
    pub socket_white_ip_list: crate::meta::socket_admission::IpAllowList,
}

/// The `auth` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `iss` of issued tokens, required on presented ones.
    pub issuer: String,
    /// `aud` of issued tokens, required on presented ones.
    pub audience: String,
    /// Access token lifetime (the original's 30 minutes).
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// Refresh token lifetime (the original's 30 days).
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Longer `Authorization` tokens are refused unparsed.
    pub max_token_bytes: usize,
    /// How long a verified access token is remembered (never past its `exp`); 0s verifies the
    /// signature on every request.
    #[serde(with = "humantime_serde")]
    pub verified_token_ttl: Duration,
    /// Failed logins per username and per client address before 429.
    pub max_failures: i64,
    /// The window the failures are counted in.
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
    /// argon2id memory in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// argon2id passes (OWASP: 2).
    pub argon2_iterations: u32,
    /// Password hashes and verifications running at once; 0 = one per CPU core.
    pub hash_concurrency: usize,
    /// Longest wait for a hashing slot before 503 / 10004.
    #[serde(with = "humantime_serde")]
    pub hash_acquire_timeout: Duration,
    /// Registrations per client address within `registration_window` before 429 / 10008.
    pub max_registrations: i64,
    /// The window registrations are counted in.
    #[serde(with = "humantime_serde")]
    pub registration_window: Duration,
    /// Where login records live when Redis is off: `database` (the `logins` table, seen by
    /// every process: the http, grpc and socket apps check one another's logins) or `memory`
    /// (this process only, bounded by `max_local_logins`).
    pub local_logins: LocalLogins,
    /// Most login records kept in process (`local_logins: memory`); a full store refuses new
    /// logins (503 / 10004) instead of evicting anyone's.
    pub max_local_logins: usize,
    /// Most throttle counters kept in process when Redis is off (least recently used go first).
    pub max_local_counters: u64,
    /// Most verified access tokens remembered (see `verified_token_ttl`).
    pub verified_token_capacity: u64,
    /// Most login records each process keeps to answer the single sign-on check of protected
    /// requests without a store round trip (docs/auth.md); 0 = none kept.
    pub login_cache_capacity: u64,
    /// Redis-backed logins only: how long another process's logout, newer login or revocation
    /// may go unseen by this process (at most 1 s; 0 = read Redis on every request). SQLite's
    /// records are cached with no staleness at all (every commit is seen), MySQL's not at all.
    #[serde(with = "humantime_serde")]
    pub login_cache_ttl: Duration,
}

/// Where login records live when Redis is off (`auth.local_logins`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LocalLogins {
    /// The `logins` table of the configured database.
    Database,
    /// This process's memory.
    Memory,
}

/// The `server` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Reported by `/hello` as `env` (the original's gin mode: debug, test, release).
    pub mode: String,
    /// Serve `/debug/*` helper routes (a slow route for shutdown tests, a panicking route).
    /// Must be off in prod; the loader refuses it there.
    pub debug_routes: bool,
    /// How long `/readyz` waits for each dependency before reporting it down.
    #[serde(with = "humantime_serde")]
    pub readiness_timeout: Duration,
    /// Name replicas and their addresses in `/readyz` (off: states only, by position).
    pub readiness_details: bool,
    /// Once a server listens, return start-up memory to the system (`server::memory`).
    pub release_startup_memory: bool,
    /// The HTTP application.
    pub http: HttpConfig,
    /// The gRPC application.
    pub grpc: GrpcConfig,
    /// The socket (WebSocket) application.
    pub socket: SocketConfig,
}

/// Whether the socket app asks for an access token.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SocketAuth {
    /// Tokens are not read.
    None,
    /// A token is checked when one is sent; anonymous clients are admitted.
    Optional,
    /// Every connection needs a valid access token.
    Required,
}

/// The `server.socket` section (docs/websocket.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    /// Listen address; Go's `:30000` form means every interface.
    pub addr: String,
    /// The URL the HTTP app's pages connect to; empty: `ws://<the page's host>:<addr's
    /// port>/socket_server`.
    pub public_url: String,
    /// Worker threads; 0 means one per CPU core available to the process.
    pub workers: usize,
    /// How long clients have to answer the 1001 close after SIGINT/SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Connections open at once; more are refused with 503 before the upgrade.
    pub max_connections: usize,
    /// How often the server pings each client.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A connection silent this long gets close 1000 `idle timeout` (the original's 30 s).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Pongs count as activity (off: only client messages do, the original's rule).
    pub pong_keeps_alive: bool,
    /// Largest frame read, in bytes; larger: close 1009.
    pub max_frame_size: usize,
    /// Largest message (continuation frames aggregated), in bytes; larger: close 1009.
    pub max_message_size: usize,
    /// Messages waiting to be written to one connection; more: close 1008 (slow consumer).
    pub outbound_queue: usize,
    /// How long a write may wait for a client that reads slowly before it is dropped.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// `TCP_USER_TIMEOUT` of every connection: the kernel aborts one whose data stays
    /// unacknowledged or unsent (the client's window closed) this long.
    #[serde(with = "humantime_serde")]
    pub tcp_user_timeout: Duration,
    /// Rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// Origins admitted (docs/websocket.md): full origins, hosts, `*.` subdomains, or `*`.
    /// Empty: same-origin requests only.
    pub allowed_origins: crate::meta::socket_admission::OriginAllowList,
    /// Refuse requests without an `Origin` header (non-browser clients send none).
    pub require_origin: bool,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` is believed (as
    /// `server.http.trusted_proxies`).
    pub trusted_proxies: crate::meta::trusted_proxies::TrustedProxies,
    /// none | optional | required: access tokens (query `token` or `Authorization: Bearer`).
    pub auth: SocketAuth,
    /// Connections open at once from one client, at two widths; more: 429 / 10008.
    pub max_per_address: SocketAddressLimits,
    /// Connections open at once without an access token; more: 503 / 10009.
    pub max_anonymous: usize,
    /// Bytes of frames waiting for one connection (its outbox, and as much again handed to the
    /// HTTP layer but not yet written); more: close 1008 (slow consumer).
    pub outbound_queue_bytes: usize,
    /// Messages one connection may send per second (a publish counts its deliveries, at least
    /// one); past it a message is answered with an error frame (10008) and not acted on.
    pub max_messages_per_second: u32,
    /// Rooms anonymous connections may join; every other room needs a signed-in connection.
    /// Names, or prefixes ending in `*` (`public-*`).
    pub public_rooms: Vec<String>,
}

/// `server.socket.max_per_address`: connections open at once per client address.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketAddressLimits {
    /// Per IPv4 address or IPv6 /64 (one host).
    pub host: usize,
    /// Per IPv4 /24 or IPv6 /48 (one network: a host cannot get round `host` by using its
    /// neighbours' addresses).
    pub network: usize,
}

impl SocketConfig {
    /// What the socket app alone needs of its section, checked when it starts (the HTTP and
    /// gRPC apps load the same file and do not serve sockets).
    ///
    /// # Errors
    /// In the prod profile, an empty `server.socket.allowed_origins`: the same-origin rule it
    /// falls back to compares `Origin` with `Host`, both of which a DNS-rebinding page
    /// controls.
    pub fn check_for_socket_app(&self, profile: Profile) -> Result<(), ConfigError> {
        if profile.is_releasing() && self.allowed_origins.is_empty() {
            return Err(invalid(
                "server.socket.allowed_origins",
                "must list the origins of the pages that open sockets in the prod profile \
                 (e.g. https://app.example.com): the same-origin rule of an empty list \
                 compares Origin with Host, which DNS rebinding passes",
            ));
        }
        Ok(())
    }
}

/// The `grpc_client` section: how the HTTP app calls the gRPC app.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcClientConfig {
    /// The gRPC app: `https://host:port` (TLS) or `http://host:port`.
    pub addr: String,
    /// Time to open the (one, shared) connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Transport security.
    pub tls: GrpcClientTlsConfig,
    /// The `user` metadata of every call.
    pub user: String,
    /// The `password` metadata of every call.
    pub password: secrecy::SecretString,
    /// Circuit breaker settings per method (`SayHello`); see `goex_breaker::Settings`.
    pub breaker: std::collections::BTreeMap<String, goex_breaker::Settings>,
    /// With discovery: how long an instance a call could not reach stays out of the rotation
    /// before its first probe (docs/discovery.md).
    #[serde(with = "humantime_serde")]
    pub ejection_initial: Duration,
    /// The longest time out between two probes (it doubles from `ejection_initial`).
    #[serde(with = "humantime_serde")]
    pub ejection_max: Duration,
    /// `GET /grpc/hello` calls per client address per `address_window` (0: no limit).
    pub max_per_address: i64,
    /// The window of `max_per_address`.
    #[serde(with = "humantime_serde")]
    pub address_window: Duration,
}

/// The `grpc_client.tls` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcClientTlsConfig {
    /// Dial with TLS.
    pub enabled: bool,
    /// Folder with `ca.crt` (trusted) and `client.pem` / `client.key` (presented).
    pub dir: String,
    /// The name the server's certificate must carry (the original's `www.example.com`).
    pub domain: String,
}

/// The `server.grpc` section (the gRPC app, `go_example grpc`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Listen address; `:9090` (the original's) means every interface.
    pub addr: String,
    /// How long in-flight calls may run after SIGINT/SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Largest request message accepted, in bytes; a bigger one is `OUT_OF_RANGE` (tonic's answer).
    pub max_message_size: usize,
    /// Most calls served at once on one connection (HTTP/2 streams); more wait.
    pub max_concurrent_streams: u32,
    /// Transport security.
    pub tls: GrpcTlsConfig,
    /// Per-call credentials.
    pub auth: GrpcAuthConfig,
    /// Serve gRPC server reflection (v1 and v1alpha): the service list and descriptors, for
    /// grpcurl and the like. Off in prod by default: it maps the API for anyone.
    pub reflection: bool,
}

/// The `server.grpc.tls` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcTlsConfig {
    /// Serve TLS (off: plaintext HTTP/2, for a mesh that terminates TLS itself).
    pub enabled: bool,
    /// Folder with `server.pem`, `server.key` and `ca.crt` (what `go_example certs generate`
    /// writes; the original's `assets/certs/grpc_tls`).
    pub dir: String,
    /// Client certificates: `none`, `request` (asked for, verified when sent, not required: the
    /// original's, so health checkers connect) or `require` (mTLS).
    pub client_auth: ClientAuth,
    /// Write a development CA and certificates into `dir` when it has none (debug and dev
    /// profiles; refused in prod).
    pub generate_missing: bool,
}

/// How the gRPC server treats client certificates.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Not asked for.
    None,
    /// Asked for and verified against `ca.crt` when sent; a client without one is admitted.
    Request,
    /// Required and verified (mutual TLS).
    Require,
}

/// The `server.grpc.auth` section: every call carries the original's `user` / `password`
/// metadata, or an access token of the auth feature.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcAuthConfig {
    /// The `user` metadata value.
    pub user: String,
    /// The `password` metadata value (compared in constant time; required in prod).
    pub password: secrecy::SecretString,
    /// Also admit `authorization: Bearer <accessToken>` from `POST /auth/login` (the same
    /// keys and single sign-on check as the HTTP app).
    pub jwt: bool,
}

/// The `server.http` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address; Go's `:8080` form means every interface.
    pub addr: String,
    /// Worker threads; 0 means one per CPU core available to the process.
    pub workers: usize,
    /// How long in-flight requests may run after SIGINT/SIGTERM (the original's 5 s).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Largest accepted request body, in bytes (JSON, form or raw).
    pub max_body_size: usize,
    /// Keep-alive for idle client connections.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Time a client has to send its request head.
    #[serde(with = "humantime_serde")]
    pub client_request_timeout: Duration,
    /// Most connections served at once per worker.
    pub max_connections: usize,
    /// Write one access-log record per request.
    pub access_log: bool,
    /// Time a client has to send a whole request body before 408 / 10012.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Reverse proxies (CIDRs or addresses) whose `X-Forwarded-For` / `Forwarded` is believed;
    /// empty: the peer address is the client. Parsed at load: a bad entry or a `/0` fails it.
    pub trusted_proxies: crate::meta::trusted_proxies::TrustedProxies,
    /// Serve the OpenAPI 3.1 document at `/openapi.json`.
    pub openapi: bool,
    /// Serve Swagger UI at `/swagger-ui/` (needs `openapi`). Never in prod; the loader refuses
    /// it there.
    pub swagger_ui: bool,
}

/// The `cacheKeys` section: the key families the repositories use.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheKeys {
    /// User rows cached by `/hello` (cache-aside in front of the database).
    #[serde(rename = "userInfo")]
    pub user_info: KeyFamily,
    /// The value `/hello` reads from Redis (the original's `GetValue("aa")`).
    #[serde(rename = "helloValue")]
    pub hello_value: KeyFamily,
}

/// The `certs` section (the original's key list for JWT signing).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertsConfig {
    /// The key that signs new tokens.
    #[serde(rename = "curKey")]
    pub cur_key: String,
    /// Every key that may verify tokens, by name (a folder under `dir`).
    pub keys: Vec<String>,
    /// Folder holding one sub-folder per key.
    pub dir: String,
    /// Signature algorithm of the keys: RS512 (the original's), RS256 or EdDSA.
    pub algorithm: goex_jwt::Algorithm,
    /// Generate the current key at start when it is missing (dev profiles only; refused in prod).
    pub generate_missing: bool,
}

/// A loaded configuration with where it came from.
pub type LoadedConfig = Loaded<AppConfig>;

impl AppConfig {
    /// Loads and checks the profile's configuration.
    ///
    /// # Errors
    /// A missing or malformed file, an unknown, missing or mistyped key, or a value that fails
    /// the checks below; every message names the key.
    pub fn load(dir: &Path, profile: Profile) -> Result<LoadedConfig, ConfigError> {
        let loaded: LoadedConfig = goex_config::load(dir, profile)?;
        loaded.settings.check(profile)?;
        Ok(loaded)
    }

    /// Whether requests run as read-your-writes sessions: MySQL with replicas and a window.
    pub fn read_your_writes_enabled(&self) -> bool {
        self.database.driver == goex_database::Driver::Mysql
            && !self.mysql.replicas.is_empty()
            && !self.mysql.read_your_writes.is_zero()
    }

    /// Semantic checks serde cannot express.
    ///
    /// # Errors
    /// The first key whose value is unusable.
    pub fn check(&self, profile: Profile) -> Result<(), ConfigError> {
        parse_addr(&self.server.http.addr).map_err(|m| invalid("server.http.addr", m))?;
        if profile.is_releasing() && self.server.debug_routes {
            return Err(invalid(
                "server.debug_routes",
                "must be false in the prod profile",
            ));
        }
        if self.auth.login_cache_ttl > MAX_LOGIN_CACHE_TTL {
            return Err(invalid(
                "auth.login_cache_ttl",
                "must be at most 1s: a logout made through another process must take effect \
                 within a second",
            ));
        }
        if self.jenkins.admins.is_some() {
            return Err(invalid(
                "jenkins.admins",
                "is gone: a name list in config makes an admin of whoever registers the name; \
                 remove it and make admins with `go_example users grant-admin NAME`",
            ));
        }
        for network in &self.consul.allowed_networks {
            parse_network(network).map_err(|m| invalid("consul.allowed_networks", &m))?;
        }
        if profile.is_releasing() && self.consul.allowed_networks.is_empty() {
            return Err(invalid(
                "consul.allowed_networks",
                "must not be empty in the prod profile: list the networks discovered instances \
                 may be dialled in",
            ));
        }
        parse_addr(&self.server.grpc.addr).map_err(|m| invalid("server.grpc.addr", m))?;
        parse_addr(&self.server.socket.addr).map_err(|m| invalid("server.socket.addr", m))?;
        let socket = &self.server.socket;
        let url = &socket.public_url;
        if !(url.is_empty() || url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(invalid(
                "server.socket.public_url",
                "must be empty or a ws:// or wss:// URL",
            ));
        }
        if socket.idle_timeout <= socket.ping_interval {
            return Err(invalid(
                "server.socket.idle_timeout",
                "must be longer than server.socket.ping_interval: a live client answers pings",
            ));
        }
        let grpc_password = secrecy::ExposeSecret::expose_secret(&self.server.grpc.auth.password);
        // Empty keeps meaning password auth off; a short one is a guess away (it is a shared
        // secret of services, typed by nobody).
        if profile.is_releasing()
            && !grpc_password.is_empty()
            && grpc_password.chars().count() < MIN_GRPC_PASSWORD
        {
            return Err(invalid(
                "server.grpc.auth.password",
                format!(
                    "at least {MIN_GRPC_PASSWORD} characters in prod (or empty: no password auth)"
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.sms.reserved_share) {
            return Err(invalid(
                "sms.reserved_share",
                "from 0 to below 1 (numbers nobody has need a share too)",
            ));
        }
        if self.sms.max_per_network < 1 {
            return Err(invalid("sms.max_per_network", "must be greater than 0"));
        }
        if profile.is_releasing() && self.server.grpc.tls.generate_missing {
            return Err(invalid(
                "server.grpc.tls.generate_missing",
                "must be false in the prod profile: provide certificates",
            ));
        }
        if profile.is_releasing() && self.server.http.swagger_ui {
            return Err(invalid(
                "server.http.swagger_ui",
                "must be false in the prod profile",
            ));
        }
        if self.server.http.swagger_ui && !self.server.http.openapi {
            return Err(invalid(
                "server.http.swagger_ui",
                "needs server.http.openapi: the UI reads /openapi.json",
            ));
        }
        if profile.is_releasing() && self.sms.provider == SmsProvider::Log {
            return Err(invalid(
                "sms.provider",
                "log sends nothing and logs codes: not in the prod profile",
            ));
        }
        let code_secret = secrecy::ExposeSecret::expose_secret(&self.sms.code_secret);
        if !code_secret.is_empty() && code_secret.len() < 16 {
            return Err(invalid("sms.code_secret", "16 bytes or more (or empty)"));
        }
        if self.sms.code_ttl < Duration::from_secs(1) {
            return Err(invalid("sms.code_ttl", "at least 1s"));
        }
        if self.server.http.max_body_size == 0 {
            return Err(invalid(
                "server.http.max_body_size",
                "must be greater than 0",
            ));
        }
        // Zero would turn a throttle off or make every request time out at once.
        for (key, zero) in [
            ("auth.max_failures", self.auth.max_failures <= 0),
            ("auth.failure_window", self.auth.failure_window.is_zero()),
            ("auth.max_registrations", self.auth.max_registrations <= 0),
            (
                "auth.registration_window",
                self.auth.registration_window.is_zero(),
            ),
            (
                "auth.hash_acquire_timeout",
                self.auth.hash_acquire_timeout.is_zero(),
            ),
            (
                "server.http.body_timeout",
                self.server.http.body_timeout.is_zero(),
            ),
            (
                "server.grpc.max_message_size",
                self.server.grpc.max_message_size == 0,
            ),
            (
                "server.grpc.max_concurrent_streams",
                self.server.grpc.max_concurrent_streams == 0,
            ),
            (
                "server.socket.max_connections",
                self.server.socket.max_connections == 0,
            ),
            (
                "server.socket.ping_interval",
                self.server.socket.ping_interval.is_zero(),
            ),
            (
                "server.socket.max_frame_size",
                self.server.socket.max_frame_size == 0,
            ),
            (
                "server.socket.max_message_size",
                self.server.socket.max_message_size == 0,
            ),
            (
                "server.socket.outbound_queue",
                self.server.socket.outbound_queue == 0,
            ),
            (
                "server.socket.write_timeout",
                self.server.socket.write_timeout.is_zero(),
            ),
            (
                "jenkins.connect_timeout",
                self.jenkins.connect_timeout.is_zero(),
            ),
            (
                "jenkins.request_timeout",
                self.jenkins.request_timeout.is_zero(),
            ),
            (
                "jenkins.max_console_bytes",
                self.jenkins.max_console_bytes == 0,
            ),
            ("sms.code_ttl", self.sms.code_ttl.is_zero()),
            ("sms.resend_interval", self.sms.resend_interval.is_zero()),
            ("sms.max_per_phone", self.sms.max_per_phone <= 0),
            ("sms.phone_window", self.sms.phone_window.is_zero()),
            ("sms.max_per_address", self.sms.max_per_address <= 0),
            ("sms.address_window", self.sms.address_window.is_zero()),
            ("sms.max_attempts", self.sms.max_attempts == 0),
            ("sms.max_total", self.sms.max_total <= 0),
            ("sms.total_window", self.sms.total_window.is_zero()),
            ("alibaba_sms.timeout", self.alibaba_sms.timeout.is_zero()),
            ("excel.export_page_size", self.excel.export_page_size == 0),
            ("excel.max_export_rows", self.excel.max_export_rows == 0),
            ("excel.max_upload_size", self.excel.max_upload_size == 0),
            ("excel.upload_timeout", self.excel.upload_timeout.is_zero()),
            ("excel.max_import_rows", self.excel.max_import_rows == 0),
            ("excel.import_batch_size", self.excel.import_batch_size == 0),
            (
                "excel.max_running_exports",
                self.excel.max_running_exports == 0,
            ),
            (
                "excel.max_exports_per_user",
                self.excel.max_exports_per_user <= 0,
            ),
            ("excel.exports_window", self.excel.exports_window.is_zero()),
            (
                "excel.max_created_per_hour",
                self.excel.max_created_per_hour <= 0,
            ),
            ("excel.import_timeout", self.excel.import_timeout.is_zero()),
            ("excel.max_zip_entries", self.excel.max_zip_entries == 0),
            ("excel.max_unpacked_size", self.excel.max_unpacked_size == 0),
            (
                "excel.max_compression_ratio",
                self.excel.max_compression_ratio == 0,
            ),
            (
                "server.socket.tcp_user_timeout",
                self.server.socket.tcp_user_timeout.is_zero(),
            ),
            (
                "server.socket.max_rooms_per_connection",
                self.server.socket.max_rooms_per_connection == 0,
            ),
            (
                "server.socket.max_per_address.host",
                self.server.socket.max_per_address.host == 0,
            ),
            (
                "server.socket.max_per_address.network",
                self.server.socket.max_per_address.network == 0,
            ),
            (
                "server.socket.max_anonymous",
                self.server.socket.max_anonymous == 0,
            ),
            (
                "server.socket.outbound_queue_bytes",
                self.server.socket.outbound_queue_bytes == 0,
            ),
            (
                "server.socket.max_messages_per_second",
                self.server.socket.max_messages_per_second == 0,
            ),
            // actix reads 0 as "no deadline" for the first request head.
            (
                "server.http.client_request_timeout",
                self.server.http.client_request_timeout.is_zero(),
            ),
            (
                "grpc_client.ejection_initial",
                self.grpc_client.ejection_initial.is_zero(),
            ),
            (
                "grpc_client.address_window",
                self.grpc_client.address_window.is_zero(),
            ),
        ] {
            if zero {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.grpc_client.ejection_max < self.grpc_client.ejection_initial {
            return Err(invalid(
                "grpc_client.ejection_max",
                "must not be shorter than grpc_client.ejection_initial",
            ));
        }
        if self.excel.import_batch_size > MAX_IMPORT_BATCH {
            return Err(invalid(
                "excel.import_batch_size",
                format!("at most {MAX_IMPORT_BATCH}: a batch is one statement, 5 parameters a row"),
            ));
        }
        if self.excel.max_import_rows > EXCEL_MAX_DATA_ROWS {
            return Err(invalid(
                "excel.max_import_rows",
                format!("a sheet holds at most {EXCEL_MAX_DATA_ROWS} rows below its header"),
            ));
        }
        if self.excel.max_export_rows > EXCEL_MAX_DATA_ROWS {
            return Err(invalid(
                "excel.max_export_rows",
                format!("a sheet holds at most {EXCEL_MAX_DATA_ROWS} rows below its header"),
            ));
        }
        if self.excel.export_file_name.trim().is_empty()
            || self
                .excel
                .export_file_name
                .contains(['/', '\\', '"', '\r', '\n'])
        {
            return Err(invalid(
                "excel.export_file_name",
                "a file name (no path separators, quotes or line breaks)",
            ));
        }
        for (i, room) in self.server.socket.public_rooms.iter().enumerate() {
            let name = room.strip_suffix('*').unwrap_or(room);
            let valid = (!name.is_empty() || room == "*")
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
            if !valid {
                return Err(invalid(
                    &format!("server.socket.public_rooms[{i}]"),
                    "a room name (1 to 64 of A-Z a-z 0-9 _ . : -), a prefix ending in `*`, or `*`",
                ));
            }
        }
        if self.server.socket.max_frame_size > self.server.socket.max_message_size {
            return Err(invalid(
                "server.socket.max_frame_size",
                "must not exceed server.socket.max_message_size: a message is one or more frames",
            ));
        }
        if self.metrics.enabled {
            parse_addr(&self.metrics.addr).map_err(|m| invalid("metrics.addr", m))?;
            parse_addr(&self.metrics.socket_addr).map_err(|m| invalid("metrics.socket_addr", m))?;
        }
        if self.pprof.enabled {
            let addr = parse_addr(&self.pprof.addr).map_err(|m| invalid("pprof.addr", m))?;
            if !addr.ip().is_loopback() && !self.pprof.allow_remote {
                return Err(invalid(
                    "pprof.addr",
                    format!(
                        "`{}` is not a loopback address (127.0.0.1:port, [::1]:port); anyone who \
                         reaches it can profile the process (set pprof.allow_remote to accept it)",
                        self.pprof.addr
                    ),
                ));
            }
        }
        if argon2::Params::new(
            self.auth.argon2_memory_kib,
            self.auth.argon2_iterations,
            1,
            None,
        )
        .is_err()
        {
            return Err(invalid(
                "auth.argon2_memory_kib",
                "not valid argon2 parameters (memory >= 8 KiB, passes >= 1)",
            ));
        }
        if profile.is_releasing() && self.certs.generate_missing {
            return Err(invalid(
                "certs.generate_missing",
                "must be false in the prod profile: provide keys",
            ));
        }
        if !self.certs.keys.is_empty() && !self.certs.keys.contains(&self.certs.cur_key) {
            return Err(invalid("certs.curKey", "must be one of certs.keys"));
        }
        if profile.is_releasing() && self.database.driver == goex_database::Driver::Mysql {
            // Only the account is looked at and named: the DSN and its password never reach
            // the message.
            for (key, account) in self.mysql.accounts() {
                let account = account.map_err(|_| {
                    invalid(
                        &key,
                        "is neither mysql://user:pass@host/db nor user:pass@tcp(host:port)/db",
                    )
                })?;
                if account.user.is_empty() || account.user == "root" {
                    return Err(invalid(
                        &key,
                        "must not sign in as root (or no user) in the prod profile: use an \
                         application account with only the privileges it needs",
                    ));
                }
                if !account.has_password {
                    return Err(invalid(
                        &key,
                        "has an empty password; the prod profile requires one",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Parses `host:port`, accepting Go's `:port` for every interface.
///
/// # Errors
/// A message saying what is wrong with the address.
pub fn parse_addr(addr: &str) -> Result<SocketAddr, String> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    };
    full.parse::<SocketAddr>()
        .map_err(|e| format!("`{addr}` is not host:port or :port ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_addresses_parse() {
        assert_eq!(parse_addr(":8080").unwrap().port(), 8080);
        assert_eq!(parse_addr("127.0.0.1:0").unwrap().port(), 0);
        assert!(parse_addr("localhost").is_err());
    }

    /// A production-like DSN: prod refuses root and empty passwords.
    const APP_DSN: &str = "mysql://go_example:s3cret-pw@127.0.0.1:3306/go_example";

    #[test]
    fn every_shipped_profile_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for profile in Profile::ALL {
            // prod's file has no usable DSN on purpose: APP__MYSQL__DSN provides it.
            let vars = match profile {
                Profile::Prod => vec![("APP__MYSQL__DSN".to_owned(), APP_DSN.to_owned())],
                _ => Vec::new(),
            };
            let loaded = goex_config::load_with_vars::<AppConfig>(&dir, profile, vars)
                .unwrap_or_else(|e| panic!("{profile}: {e}"));
            loaded
                .settings
                .check(profile)
                .unwrap_or_else(|e| panic!("{profile}: {e}"));
        }
    }
    /// Loads `profile` with `vars` and runs the checks.
    fn check_with(profile: Profile, vars: &[(&str, &str)]) -> Result<(), ConfigError> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        goex_config::load_with_vars::<AppConfig>(&dir, profile, vars)?
            .settings
            .check(profile)
    }

    /// The error of a check that must fail, as text.
    fn refused(profile: Profile, vars: &[(&str, &str)]) -> String {
        match check_with(profile, vars) {
            Ok(()) => panic!("{profile} {vars:?} accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn limits_and_windows_must_be_positive() {
        for (var, key) in [
            ("APP__AUTH__MAX_FAILURES", "auth.max_failures"),
            ("APP__AUTH__FAILURE_WINDOW", "auth.failure_window"),
            ("APP__AUTH__MAX_REGISTRATIONS", "auth.max_registrations"),
            ("APP__AUTH__REGISTRATION_WINDOW", "auth.registration_window"),
            (
                "APP__AUTH__HASH_ACQUIRE_TIMEOUT",
                "auth.hash_acquire_timeout",
            ),
            (
                "APP__SERVER__HTTP__BODY_TIMEOUT",
                "server.http.body_timeout",
            ),
        ] {
            let zero = if key.starts_with("auth.max_") {
                "0"
            } else {
                "0s"
            };
            let message = refused(Profile::Test, &[(var, zero)]);
            assert!(
                message.contains(key) && message.contains("greater than 0"),
                "{message}"
            );
        }
        for var in ["APP__AUTH__MAX_FAILURES", "APP__AUTH__MAX_REGISTRATIONS"] {
            assert!(refused(Profile::Test, &[(var, "-1")]).contains("greater than 0"));
        }
        check_with(Profile::Test, &[("APP__AUTH__FAILURE_WINDOW", "1s")]).unwrap();
    }

    #[test]
    fn a_socket_frame_may_not_exceed_a_message() {
        let message = refused(
            Profile::Test,
            &[
                ("APP__SERVER__SOCKET__MAX_FRAME_SIZE", "2048"),
                ("APP__SERVER__SOCKET__MAX_MESSAGE_SIZE", "1024"),
            ],
        );
        assert!(
            message.contains("server.socket.max_frame_size")
                && message.contains("server.socket.max_message_size"),
            "{message}"
        );
        check_with(
            Profile::Test,
            &[
                ("APP__SERVER__SOCKET__MAX_FRAME_SIZE", "1024"),
                ("APP__SERVER__SOCKET__MAX_MESSAGE_SIZE", "1024"),
            ],
        )
        .unwrap();
    }

    #[test]
    fn an_ejection_lasts_and_its_cap_is_not_below_its_start() {
        let message = refused(
            Profile::Test,
            &[("APP__GRPC_CLIENT__EJECTION_INITIAL", "0s")],
        );
        assert!(
            message.contains("grpc_client.ejection_initial") && message.contains("greater than 0"),
            "{message}"
        );
        let message = refused(
            Profile::Test,
            &[
                ("APP__GRPC_CLIENT__EJECTION_INITIAL", "5s"),
                ("APP__GRPC_CLIENT__EJECTION_MAX", "2s"),
            ],
        );
        assert!(message.contains("grpc_client.ejection_max"), "{message}");
        check_with(
            Profile::Test,
            &[
                ("APP__GRPC_CLIENT__EJECTION_INITIAL", "5s"),
                ("APP__GRPC_CLIENT__EJECTION_MAX", "5s"),
            ],
        )
        .unwrap();
    }

    #[test]
    fn socket_limits_must_be_positive_and_public_rooms_valid() {
        for (var, key) in [
            (
                "APP__SERVER__SOCKET__MAX_PER_ADDRESS__HOST",
                "server.socket.max_per_address.host",
            ),
            (
                "APP__SERVER__SOCKET__MAX_PER_ADDRESS__NETWORK",
                "server.socket.max_per_address.network",
            ),
            (
                "APP__SERVER__SOCKET__MAX_ANONYMOUS",
                "server.socket.max_anonymous",
            ),
            (
                "APP__SERVER__SOCKET__OUTBOUND_QUEUE_BYTES",
                "server.socket.outbound_queue_bytes",
            ),
            (
                "APP__SERVER__SOCKET__MAX_MESSAGES_PER_SECOND",
                "server.socket.max_messages_per_second",
            ),
        ] {
            let message = refused(Profile::Test, &[(var, "0")]);
            assert!(
                message.contains(key) && message.contains("greater than 0"),
                "{message}"
            );
        }
        for bad in ["a b", "*x", "é*", "r*x"] {
            let message = refused(
                Profile::Test,
                &[("APP__SERVER__SOCKET__PUBLIC_ROOMS__0", bad)],
            );
            assert!(
                message.contains("server.socket.public_rooms[0]"),
                "{bad:?}: {message}"
            );
        }
        for good in ["lobby", "public-*", "*"] {
            check_with(
                Profile::Test,
                &[("APP__SERVER__SOCKET__PUBLIC_ROOMS__0", good)],
            )
            .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn consul_allowed_networks_parse_and_are_required_in_prod() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let load = |profile: Profile| {
            goex_config::load_with_vars::<AppConfig>(
                &dir,
                profile,
                [("APP__MYSQL__DSN".to_owned(), APP_DSN.to_owned())],
            )
            .unwrap()
            .settings
        };
        let mut prod = load(Profile::Prod);
        let nets = prod.consul.networks();
        for inside in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.31.0.1",
            "192.168.1.1",
            "fd00::1",
        ] {
            let ip: std::net::IpAddr = inside.parse().unwrap();
            assert!(nets.iter().any(|n| n.contains(&ip)), "{inside}");
        }
        for outside in ["8.8.8.8", "172.32.0.1", "2001:4860::8888"] {
            let ip: std::net::IpAddr = outside.parse().unwrap();
            assert!(!nets.iter().any(|n| n.contains(&ip)), "{outside}");
        }
        prod.consul.allowed_networks.clear();
        let message = prod.check(Profile::Prod).unwrap_err().to_string();
        assert!(message.contains("consul.allowed_networks"), "{message}");
        let mut test = load(Profile::Test);
        test.consul.allowed_networks.clear();
        test.check(Profile::Test).unwrap();
        let message = refused(
            Profile::Test,
            &[("APP__CONSUL__ALLOWED_NETWORKS__0", "10.0.0.0/33")],
        );
        assert!(message.contains("consul.allowed_networks"), "{message}");
        check_with(
            Profile::Test,
            &[("APP__CONSUL__ALLOWED_NETWORKS__0", "10.0.0.5")],
        )
        .unwrap();
    }

    #[test]
    fn the_socket_app_needs_allowed_origins_in_prod_only() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let load = |profile: Profile, vars: &[(&str, &str)]| {
            let mut all = vec![("APP__MYSQL__DSN".to_owned(), APP_DSN.to_owned())];
            all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
            goex_config::load_with_vars::<AppConfig>(&dir, profile, all)
                .unwrap()
                .settings
        };
        let message = load(Profile::Prod, &[])
            .server
            .socket
            .check_for_socket_app(Profile::Prod)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("server.socket.allowed_origins"),
            "{message}"
        );
        load(
            Profile::Prod,
            &[(
                "APP__SERVER__SOCKET__ALLOWED_ORIGINS__0",
                "https://app.example.com",
            )],
        )
        .server
        .socket
        .check_for_socket_app(Profile::Prod)
        .unwrap();
        // Same-origin stays a convenience of the other profiles.
        let mut dev = load(Profile::Dev, &[]).server.socket;
        dev.allowed_origins = Default::default();
        dev.check_for_socket_app(Profile::Dev).unwrap();
    }

    #[test]
    fn the_profiler_stays_on_loopback_unless_allowed() {
        let on = ("APP__PPROF__ENABLED", "true");
        for addr in ["0.0.0.0:6060", ":6060", "10.1.2.3:6060", "[::]:6060"] {
            let message = refused(Profile::Test, &[on, ("APP__PPROF__ADDR", addr)]);
            assert!(
                message.contains("pprof.addr") && message.contains("pprof.allow_remote"),
                "{message}"
            );
            check_with(
                Profile::Test,
                &[
                    on,
                    ("APP__PPROF__ADDR", addr),
                    ("APP__PPROF__ALLOW_REMOTE", "true"),
                ],
            )
            .unwrap_or_else(|e| panic!("{addr}: {e}"));
        }
        for addr in ["127.0.0.1:6060", "[::1]:6060", "127.0.0.2:0"] {
            check_with(Profile::Test, &[on, ("APP__PPROF__ADDR", addr)])
                .unwrap_or_else(|e| panic!("{addr}: {e}"));
        }
        // Off, the address is not looked at.
        check_with(Profile::Test, &[("APP__PPROF__ADDR", ":6060")]).unwrap();
    }

    #[test]
    fn prod_refuses_root_and_empty_mysql_passwords_without_printing_them() {
        let prod = |vars: &[(&str, &str)]| {
            let mut all = vec![("APP__MYSQL__DSN", APP_DSN)];
            all.extend_from_slice(vars);
            check_with(Profile::Prod, &all)
        };
        prod(&[]).unwrap();
        prod(&[("APP__MYSQL__DSN", "app:p@ss:w0rd@tcp(db:3306)/go_example")]).unwrap();
        for (dsn, why) in [
            ("mysql://root:hunter2@db:3306/go_example", "root"),
            ("root:hunter2@tcp(db:3306)/go_example", "root"),
            ("mysql://%72oot:hunter2@db:3306/go_example", "root"),
            ("mysql://db:3306/go_example", "root"),
            ("mysql://app@db:3306/go_example", "empty password"),
            ("mysql://app:@db:3306/go_example", "empty password"),
            ("app@tcp(db:3306)/go_example", "empty password"),
        ] {
            let message = prod(&[("APP__MYSQL__DSN", dsn)]).unwrap_err().to_string();
            assert!(
                message.contains("mysql.dsn") && message.contains(why),
                "{dsn}: {message}"
            );
            assert!(
                !message.contains("hunter2") && !message.contains("db:3306"),
                "{message}"
            );
        }
        let message = prod(&[("APP__MYSQL__DSN", "hunter2")])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("mysql.dsn") && !message.contains("hunter2"),
            "{message}"
        );
        // Every replica is checked, and named by position.
        let message = prod(&[
            (
                "APP__MYSQL__REPLICAS__0__DSN",
                "mysql://reader:pw@r0:3306/go_example",
            ),
            (
                "APP__MYSQL__REPLICAS__1__DSN",
                "mysql://root:hunter2@r1:3306/go_example",
            ),
        ])
        .unwrap_err()
        .to_string();
        assert!(message.contains("mysql.replicas[1].dsn"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        prod(&[(
            "APP__MYSQL__REPLICAS__0__DSN",
            "mysql://reader:pw@r0:3306/go_example",
        )])
        .unwrap();
        // Only prod, and only with MySQL selected.
        check_with(Profile::Dev, &[("APP__MYSQL__DSN", "mysql://root@db/x")]).unwrap();
        check_with(
            Profile::Prod,
            &[
                ("APP__DATABASE__DRIVER", "sqlite"),
                ("APP__MYSQL__DSN", "mysql://root@db/x"),
            ],
        )
        .unwrap();
    }
}
