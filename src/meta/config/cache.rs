//! `cacheKeys.*`: the key families the repositories use (the in-process cache's own settings
//! are `goex_cache::Settings`).

use goex_cache::KeyFamily;
use serde::Deserialize;

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
