//! `certs.*`: the JWT signing keys (the original's `certs.curKey` / `certs.keys`).

use goex_config::{ConfigError, Profile, invalid};
use serde::Deserialize;

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

impl CertsConfig {
    /// `certs.*`.
    pub(super) fn check(&self, profile: Profile) -> Result<(), ConfigError> {
        if profile.is_releasing() && self.generate_missing {
            return Err(invalid(
                "certs.generate_missing",
                "must be false in the prod profile: provide keys",
            ));
        }
        if !self.keys.is_empty() && !self.keys.contains(&self.cur_key) {
            return Err(invalid("certs.curKey", "must be one of certs.keys"));
        }
        Ok(())
    }
}
