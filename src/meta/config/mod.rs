//! The whole configuration tree, one struct per YAML section, read once at start
//! (`configs/base.yaml`, the profile's `configs/<env>/common.yaml` overlay, `APP__...`
//! overrides; see `goex_config`). This file holds the root and the loading; each section's
//! struct and its checks are in the section's own file.

mod auth;
mod cache;
mod certs;
mod consul;
mod database;
mod excel;
mod grpc;
mod grpc_client;
mod jenkins;
mod rate_limit;
mod server;
mod shedding;
mod sms;
mod socket;
mod telemetry;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;

use goex_config::{ConfigError, Loaded, Profile, invalid};
use serde::Deserialize;

pub use auth::{AuthConfig, LocalLogins, MAX_LOGIN_CACHE_TTL};
pub use cache::CacheKeys;
pub use certs::CertsConfig;
pub use consul::{ConsulCheckConfig, ConsulConfig, ConsulServices};
pub use excel::{EXCEL_MAX_DATA_ROWS, ExcelConfig, MAX_IMPORT_BATCH};
pub use grpc::{ClientAuth, GrpcAuthConfig, GrpcConfig, GrpcTlsConfig, MIN_GRPC_PASSWORD};
pub use grpc_client::{GrpcClientConfig, GrpcClientTlsConfig};
pub use jenkins::JenkinsConfig;
pub use rate_limit::{
    MAX_RULES, OnStoreError, PrefixWidths, RateLimitConfig, RateLimitRule, RuleKey,
};
pub use server::{HttpConfig, ServerConfig};
pub use sms::{AlibabaSmsCodeConfig, SmsConfig, SmsProvider};
pub use socket::{CommonConfig, SocketAddressLimits, SocketAuth, SocketConfig};

/// Everything in the config files (`base.yaml` + the profile's overlay). Unknown keys are rejected
/// so typos fail at start.
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
    /// Request rate limits by route group (docs/overload.md).
    pub rate_limit: RateLimitConfig,
    /// Adaptive load shedding of the HTTP and gRPC apps (docs/overload.md): on in prod.
    pub shedding: goex_shedding::Settings,
    /// OpenTelemetry tracing (docs/tracing.md): off by default.
    pub tracing: goex_tracing::Settings,
}

/// A loaded configuration with where it came from.
pub type LoadedConfig = Loaded<AppConfig>;

impl AppConfig {
    /// Loads and checks the profile's configuration.
    ///
    /// # Errors
    /// A missing or malformed file, an unknown, missing or mistyped key, or a value that fails
    /// the checks below; every message names the key and the file or variable that set it.
    pub fn load(dir: &Path, profile: Profile) -> Result<LoadedConfig, ConfigError> {
        Self::checked(
            goex_config::load_aliased(dir, profile, telemetry::ENV_ALIASES)?,
            profile,
        )
    }

    /// [`AppConfig::load`] with the environment given explicitly (tests).
    ///
    /// # Errors
    /// As [`AppConfig::load`].
    pub fn load_with_vars(
        dir: &Path,
        profile: Profile,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<LoadedConfig, ConfigError> {
        Self::checked(
            goex_config::load_with_aliases(dir, profile, vars, telemetry::ENV_ALIASES)?,
            profile,
        )
    }

    fn checked(loaded: LoadedConfig, profile: Profile) -> Result<LoadedConfig, ConfigError> {
        // A failed check names the file or variable that set the key, as a parse error does.
        loaded
            .settings
            .check(profile)
            .map_err(|e| loaded.locate(e))?;
        Ok(loaded)
    }

    /// Semantic checks serde cannot express, section by section (each beside its struct).
    ///
    /// # Errors
    /// The first key whose value is unusable.
    pub fn check(&self, profile: Profile) -> Result<(), ConfigError> {
        self.server.check(profile)?;
        self.auth.check()?;
        self.certs.check(profile)?;
        self.jenkins.check()?;
        self.consul.check(profile)?;
        self.sms.check(profile)?;
        sms::check_alibaba_sms(&self.alibaba_sms)?;
        self.excel.check()?;
        self.grpc_client.check()?;
        self.rate_limit.check()?;
        shedding::check_shedding(&self.shedding)?;
        telemetry::check_metrics(&self.metrics)?;
        telemetry::check_pprof(&self.pprof)?;
        telemetry::check_tracing(&self.tracing)?;
        database::check_mysql_accounts(&self.database, &self.mysql, profile)
    }
}

/// The shipped `test` profile (base.yaml and its overlay, no environment), for unit tests that
/// need a section as configured: sections have no `Default`, base.yaml holds every default.
#[cfg(test)]
pub(crate) fn shipped_test_profile() -> AppConfig {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    goex_config::load_with_vars::<AppConfig>(&dir, Profile::Test, Vec::new())
        .unwrap_or_else(|e| panic!("test profile: {e}"))
        .settings
}

/// Refuses the first key whose flag says its value is zero (or negative): zero would turn a
/// throttle off or make every request time out at once.
fn refuse_zero(zero_keys: &[(&str, bool)]) -> Result<(), ConfigError> {
    match zero_keys.iter().find(|(_, zero)| *zero) {
        Some((key, _)) => Err(invalid(key, "must be greater than 0")),
        None => Ok(()),
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
