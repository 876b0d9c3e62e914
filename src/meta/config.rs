//! The whole configuration tree, one struct per YAML section, read once at start
//! (`configs/<env>/common.yaml` + `APP__...` overrides; see `goex_config`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use goex_cache::KeyFamily;
use goex_config::{ConfigError, Loaded, Profile, invalid};
use serde::Deserialize;

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
    /// The HTTP application.
    pub http: HttpConfig,
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
        if self.server.http.max_body_size == 0 {
            return Err(invalid(
                "server.http.max_body_size",
                "must be greater than 0",
            ));
        }
        if self.pprof.enabled {
            parse_addr(&self.pprof.addr).map_err(|m| invalid("pprof.addr", m))?;
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

    #[test]
    fn every_shipped_profile_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for profile in Profile::ALL {
            let loaded = goex_config::load_with_vars::<AppConfig>(&dir, profile, Vec::new())
                .unwrap_or_else(|e| panic!("{profile}: {e}"));
            loaded
                .settings
                .check(profile)
                .unwrap_or_else(|e| panic!("{profile}: {e}"));
        }
    }
}
