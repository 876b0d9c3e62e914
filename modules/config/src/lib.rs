//! Loads `configs/<env>/common.yaml` overlaid with `APP__SECTION__KEY` environment variables into
//! one typed struct, once, failing with a message that names the key and where it came from.
//!
//! This is the only crate of the project that reads the process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use config::{Config, File, FileFormat, Value, ValueKind};
use serde::de::DeserializeOwned;

/// Prefix of overriding environment variables: `APP__SERVER__HTTP__ADDR=127.0.0.1:18080`.
/// The double underscore keeps `APP_ENV` (the profile selector) out of the overlay.
pub const ENV_PREFIX: &str = "APP__";
/// Separator between key segments inside an overriding variable's name.
pub const ENV_SEPARATOR: &str = "__";
/// Variable that selects the profile when `--env` is not given.
pub const PROFILE_VARIABLE: &str = "APP_ENV";

/// The run profile, one folder under the config directory each (the original's `env.Mode()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Local development on the embedded default: SQLite, in-process stores, no external service.
    #[default]
    Debug,
    /// A shared development environment with real servers.
    Dev,
    /// The test environment (and `make test`).
    Test,
    /// Production: JSON logs, no profiling listener, debug routes off.
    Prod,
}

impl Profile {
    /// Every profile, in the order they are documented.
    pub const ALL: [Profile; 4] = [Profile::Debug, Profile::Dev, Profile::Test, Profile::Prod];

    /// The folder name under the config directory.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Dev => "dev",
            Profile::Test => "test",
            Profile::Prod => "prod",
        }
    }

    /// Whether this is a release profile (the original's `env.IsReleasing()`).
    pub fn is_releasing(self) -> bool {
        self == Profile::Prod
    }

    /// The profile named by `APP_ENV`, else `debug`.
    ///
    /// # Errors
    /// `APP_ENV` is set to something that is not a profile name.
    pub fn from_process_env() -> Result<Profile, ConfigError> {
        match std::env::var(PROFILE_VARIABLE) {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(Profile::default()),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ConfigError::UnknownProfile(s.to_owned()))
    }
}

/// Why configuration could not be loaded. Every variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The profile name is not one of debug, dev, test, prod.
    #[error("unknown profile `{0}`: expected one of debug, dev, test, prod")]
    UnknownProfile(String),
    /// The YAML file is missing or is not valid YAML.
    #[error("cannot read config file {file}: {message}")]
    File {
        /// The file that was read.
        file: PathBuf,
        /// The parser's or file system's message.
        message: String,
    },
    /// A key is missing, unknown or of the wrong type.
    #[error("config key `{key}` (from {origin}): {message}")]
    Key {
        /// The dotted path of the key, e.g. `server.http.addr`.
        key: String,
        /// The file or environment variable the value came from.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// A value deserialised but failed a semantic check (see [`invalid`]).
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// The dotted path of the key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Builds a [`ConfigError::Invalid`] for checks done after deserialisation.
pub fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A loaded configuration and the file it came from.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The typed settings.
    pub settings: T,
    /// The YAML file that was read.
    pub file: PathBuf,
    /// The environment variables that overrode keys, as (variable, dotted key).
    pub overrides: Vec<(String, String)>,
}

/// Path of a profile's file: `<dir>/<profile>/common.yaml`.
pub fn profile_file(dir: &Path, profile: Profile) -> PathBuf {
    dir.join(profile.as_str()).join("common.yaml")
}

/// Loads `<dir>/<profile>/common.yaml` overlaid with the process's `APP__...` variables.
///
/// # Errors
/// See [`ConfigError`]: a missing file, bad YAML, or a missing, unknown or mistyped key.
pub fn load<T: DeserializeOwned>(dir: &Path, profile: Profile) -> Result<Loaded<T>, ConfigError> {
    load_with_vars(dir, profile, std::env::vars())
}

/// Like [`load`], with the environment given explicitly (for tests and tools).
///
/// # Errors
/// See [`load`].
pub fn load_with_vars<T: DeserializeOwned>(
    dir: &Path,
    profile: Profile,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded<T>, ConfigError> {
    let file = profile_file(dir, profile);
    let file_error = |e: config::ConfigError| ConfigError::File {
        file: file.clone(),
        message: e.to_string(),
    };
    let base = Config::builder()
        .add_source(
            File::from(file.as_path())
                .format(FileFormat::Yaml)
                .required(true),
        )
        .build()
        .map_err(file_error)?;
    let tree: BTreeMap<String, Value> = base.clone().try_deserialize().map_err(file_error)?;

    let mut builder = Config::builder().add_source(base);
    let mut overrides = Vec::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let segments: Vec<&str> = rest.split(ENV_SEPARATOR).collect();
        let key = resolve_key(&tree, &segments);
        builder = builder
            .set_override(key.as_str(), value)
            .map_err(|e| ConfigError::Key {
                key: key.clone(),
                origin: format!("environment variable {name}"),
                message: e.to_string(),
            })?;
        overrides.push((name, key));
    }
    let merged = builder.build().map_err(file_error)?;

    match serde_path_to_error::deserialize::<_, T>(merged) {
        Ok(settings) => Ok(Loaded {
            settings,
            file,
            overrides,
        }),
        Err(err) => {
            let key = err.path().to_string();
            let origin = overrides
                .iter()
                .find(|(_, k)| key == *k || key.starts_with(&format!("{k}.")))
                .map(|(var, _)| format!("environment variable {var}"))
                .unwrap_or_else(|| file.display().to_string());
            Err(ConfigError::Key {
                key,
                origin,
                message: clean_message(&err.into_inner()),
            })
        }
    }
}

/// Maps `SERVER`, `HTTP`, `ADDR` onto the file's own spelling (`server.http.addr`, or
/// `cacheKeys.userInfo` for camelCase keys): environment variable names are upper case, YAML keys
/// are not. A numeric segment indexes a list: `APP__MYSQL__REPLICAS__0__DSN` sets
/// `mysql.replicas[0].dsn`, creating the entry if the file has fewer. Segments the file does not
/// have are lower-cased, and the typed struct then rejects or accepts them.
fn resolve_key(tree: &BTreeMap<String, Value>, segments: &[&str]) -> String {
    let mut current: Option<ValueKind> = Some(ValueKind::Table(tree.clone().into_iter().collect()));
    let mut out: Vec<String> = Vec::with_capacity(segments.len());
    for seg in segments {
        if let (Ok(index), Some(last)) = (seg.parse::<usize>(), out.last_mut()) {
            last.push_str(&format!("[{index}]"));
            current = match current {
                Some(ValueKind::Array(items)) => items.into_iter().nth(index).map(|v| v.kind),
                _ => None,
            };
            continue;
        }
        let found = match &current {
            Some(ValueKind::Table(t)) => t
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(seg))
                .map(|(k, v)| (k.clone(), v.kind.clone())),
            _ => None,
        };
        match found {
            Some((k, kind)) => {
                out.push(k);
                current = Some(kind);
            }
            None => {
                out.push(seg.to_ascii_lowercase());
                current = None;
            }
        }
    }
    out.join(".")
}

/// Strips the config crate's own trailing location noise so the message reads once.
fn clean_message(err: &config::ConfigError) -> String {
    let text = err.to_string();
    match text.find(" for key `") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Root {
        server: Server,
        #[serde(rename = "cacheKeys")]
        cache_keys: BTreeMap<String, String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Server {
        addr: String,
        workers: u16,
    }

    fn write(dir: &Path, body: &str) {
        std::fs::create_dir_all(dir.join("test")).unwrap();
        std::fs::write(dir.join("test/common.yaml"), body).unwrap();
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const GOOD: &str =
        "server:\n  addr: \":8080\"\n  workers: 2\ncacheKeys:\n  userInfo: \"u:{}\"\n";

    #[test]
    fn env_overrides_file_values_with_double_underscores() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), GOOD);
        let loaded: Loaded<Root> = load_with_vars(
            dir.path(),
            Profile::Test,
            vars(&[
                ("APP__SERVER__ADDR", "127.0.0.1:18080"),
                ("APP__CACHEKEYS__USERINFO", "user:{}"),
                ("APP_ENV", "test"),
                ("APP_SERVER_ADDR", "ignored: single underscores"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.settings.server.addr, "127.0.0.1:18080");
        assert_eq!(loaded.settings.server.workers, 2);
        assert_eq!(loaded.settings.cache_keys["userInfo"], "user:{}");
        assert_eq!(loaded.overrides.len(), 2);
    }

    #[test]
    fn numeric_segments_index_lists() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Node {
            dsn: String,
            #[serde(default)]
            weight: u32,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Lists {
            replicas: Vec<Node>,
        }
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "replicas:\n  - dsn: a\n    weight: 1\n");
        let loaded: Loaded<Lists> = load_with_vars(
            dir.path(),
            Profile::Test,
            vars(&[
                ("APP__REPLICAS__0__WEIGHT", "3"),
                ("APP__REPLICAS__1__DSN", "b"),
            ]),
        )
        .unwrap();
        let r = &loaded.settings.replicas;
        assert_eq!(
            (r.len(), r[0].dsn.as_str(), r[0].weight, r[1].dsn.as_str()),
            (2, "a", 3, "b")
        );
    }

    #[test]
    fn unknown_key_names_itself_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "server:\n  addr: \":8080\"\n  workers: 2\n  adrr: x\ncacheKeys: {}\n",
        );
        let err = load_with_vars::<Root>(dir.path(), Profile::Test, vars(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("server.adrr"), "{text}");
        assert!(text.contains("test/common.yaml"), "{text}");
    }

    #[test]
    fn missing_and_mistyped_keys_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "server:\n  addr: \":8080\"\ncacheKeys: {}\n");
        let text = load_with_vars::<Root>(dir.path(), Profile::Test, vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(text.contains("workers"), "{text}");

        write(dir.path(), GOOD);
        let text = load_with_vars::<Root>(
            dir.path(),
            Profile::Test,
            vars(&[("APP__SERVER__WORKERS", "many")]),
        )
        .unwrap_err()
        .to_string();
        assert!(text.contains("server.workers"), "{text}");
        assert!(text.contains("APP__SERVER__WORKERS"), "{text}");
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = load_with_vars::<Root>(dir.path(), Profile::Prod, vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(text.contains("prod/common.yaml"), "{text}");
    }

    #[test]
    fn profiles_parse() {
        assert_eq!("PROD".parse::<Profile>().unwrap(), Profile::Prod);
        assert!("release".parse::<Profile>().is_err());
        assert!(Profile::Prod.is_releasing() && !Profile::Debug.is_releasing());
    }
}
