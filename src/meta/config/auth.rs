//! `auth.*`: login, tokens, password hashing and single sign-on.

use std::time::Duration;

use goex_config::{ConfigError, invalid};
use serde::Deserialize;

use super::refuse_zero;

/// The longest `auth.login_cache_ttl`: how stale a Redis-backed login may be seen elsewhere.
pub const MAX_LOGIN_CACHE_TTL: Duration = Duration::from_secs(1);

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

impl AuthConfig {
    /// `auth.*`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.login_cache_ttl > MAX_LOGIN_CACHE_TTL {
            return Err(invalid(
                "auth.login_cache_ttl",
                "must be at most 1s: a logout made through another process must take effect \
                 within a second",
            ));
        }
        refuse_zero(&[
            ("auth.max_failures", self.max_failures <= 0),
            ("auth.failure_window", self.failure_window.is_zero()),
            ("auth.max_registrations", self.max_registrations <= 0),
            (
                "auth.registration_window",
                self.registration_window.is_zero(),
            ),
            (
                "auth.hash_acquire_timeout",
                self.hash_acquire_timeout.is_zero(),
            ),
        ])?;
        if argon2::Params::new(self.argon2_memory_kib, self.argon2_iterations, 1, None).is_err() {
            return Err(invalid(
                "auth.argon2_memory_kib",
                "not valid argon2 parameters (memory >= 8 KiB, passes >= 1)",
            ));
        }
        Ok(())
    }
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
