//! Loads `configs/base.yaml`, overlaid with the profile's `configs/<env>/common.yaml`, overlaid
//! with `APP__SECTION__KEY` environment variables (and standard variables other tools define,
//! such as `OTEL_SERVICE_NAME`, mapped onto keys below them: [`Alias`]), into one typed struct,
//! once, failing with a message that names the key and the file or variable that set it.
//!
//! Layering: a map merges key by key; a list or a scalar replaces the value below it; an
//! overlay's `[]` or `{}` clears the base value (prod's empty allow lists rely on it).
//!
//! This is the only crate of the project that reads the process environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use config::{Config, FileFormat, Format, Map, Source, Value, ValueKind};
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

/// A loaded configuration and the files it came from.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The typed settings.
    pub settings: T,
    /// The profile's overlay that was read (`<dir>/<profile>/common.yaml`).
    pub file: PathBuf,
    /// The base every profile starts from (`<dir>/base.yaml`).
    pub base: PathBuf,
    /// The environment variables that overrode keys, as (variable, dotted key).
    pub overrides: Vec<(String, String)>,
    /// The merged file tree, each value tagged with the file that set it: where a key came from.
    tree: Map<String, Value>,
}

impl<T> Loaded<T> {
    /// Where `key` (dotted, lists as `[i]`: `mysql.replicas[1].dsn`) was set: the environment
    /// variable that overrode it, else the file that set it (or its nearest parent).
    pub fn origin_of(&self, key: &str) -> String {
        origin_of(&self.tree, &self.overrides, key)
    }

    /// Names where the key of a failed semantic check ([`ConfigError::Invalid`]) was set, so the
    /// message says which file or variable to fix; other errors pass through.
    pub fn locate(&self, err: ConfigError) -> ConfigError {
        match err {
            ConfigError::Invalid { key, message } => ConfigError::Key {
                origin: self.origin_of(&key),
                key,
                message,
            },
            other => other,
        }
    }
}

/// Name of the file every profile starts from, directly under the config directory.
pub const BASE_FILE: &str = "base.yaml";

/// Path of the base file: `<dir>/base.yaml`.
pub fn base_file(dir: &Path) -> PathBuf {
    dir.join(BASE_FILE)
}

/// Path of a profile's overlay: `<dir>/<profile>/common.yaml`.
pub fn profile_file(dir: &Path, profile: Profile) -> PathBuf {
    dir.join(profile.as_str()).join("common.yaml")
}

/// Loads `<dir>/base.yaml`, overlaid with `<dir>/<profile>/common.yaml`, overlaid with the
/// process's `APP__...` variables.
///
/// # Errors
/// See [`ConfigError`]: a missing file, bad YAML, or a missing, unknown or mistyped key.
pub fn load<T: DeserializeOwned>(dir: &Path, profile: Profile) -> Result<Loaded<T>, ConfigError> {
    load_with_vars(dir, profile, std::env::vars())
}

/// Like [`load`], with standard variables mapped onto keys by `aliases` (see
/// [`load_with_aliases`]).
///
/// # Errors
/// See [`load`].
pub fn load_aliased<T: DeserializeOwned>(
    dir: &Path,
    profile: Profile,
    aliases: &[Alias],
) -> Result<Loaded<T>, ConfigError> {
    load_with_aliases(dir, profile, std::env::vars(), aliases)
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
    load_with_aliases(dir, profile, vars, &[])
}

/// A standard variable another tool defines (`OTEL_SERVICE_NAME`) that sets keys of ours: the
/// value goes to each key, below the `APP__...` variables, which win. An empty (or blank) value
/// counts as unset, as the OpenTelemetry specification says of its variables.
#[derive(Clone, Copy, Debug)]
pub struct Alias {
    /// The variable's name, exactly.
    pub var: &'static str,
    /// The dotted keys it sets, spelled as in the files.
    pub keys: &'static [&'static str],
}

/// Like [`load_with_vars`], with `aliases` mapping standard variables onto keys. An error in a
/// value an alias set names that variable.
///
/// # Errors
/// See [`load`].
pub fn load_with_aliases<T: DeserializeOwned>(
    dir: &Path,
    profile: Profile,
    vars: impl IntoIterator<Item = (String, String)>,
    aliases: &[Alias],
) -> Result<Loaded<T>, ConfigError> {
    let base = base_file(dir);
    let file = profile_file(dir, profile);
    let mut tree = read_tree(&base)?;
    merge_tables(&mut tree, read_tree(&file)?);

    let mut builder = Config::builder().add_source(Tree(tree.clone()));
    let mut overrides = Vec::new();
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    // Aliases first: an `APP__` variable for the same key, set after, replaces the value.
    for alias in aliases {
        let Some((name, value)) = vars
            .iter()
            .find(|(name, value)| name == alias.var && !value.trim().is_empty())
        else {
            continue;
        };
        for key in alias.keys {
            builder = builder
                .set_override(*key, value.as_str())
                .map_err(|e| ConfigError::Key {
                    key: (*key).to_owned(),
                    origin: format!("environment variable {name}"),
                    message: e.to_string(),
                })?;
            overrides.push((name.clone(), (*key).to_owned()));
        }
    }
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
    let merged = builder.build().map_err(|e| ConfigError::File {
        file: file.clone(),
        message: e.to_string(),
    })?;

    match serde_path_to_error::deserialize::<_, T>(merged) {
        Ok(settings) => Ok(Loaded {
            settings,
            file,
            base,
            overrides,
            tree,
        }),
        Err(err) => {
            let key = err.path().to_string();
            Err(ConfigError::Key {
                origin: origin_of(&tree, &overrides, &key),
                key,
                message: clean_message(&err.into_inner()),
            })
        }
    }
}

/// Reads one YAML file into a tree whose every value names that file as its origin.
fn read_tree(file: &Path) -> Result<Map<String, Value>, ConfigError> {
    let file_error = |message: String| ConfigError::File {
        file: file.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| file_error(e.to_string()))?;
    let origin = file.display().to_string();
    Format::parse(&FileFormat::Yaml, Some(&origin), &text).map_err(|e| file_error(e.to_string()))
}

/// Lays `overlay` over `base`: a map merges key by key, anything else (a scalar, a list, an
/// empty map) replaces the base value whole, so an overlay's `[]` or `{}` clears it. The root
/// always merges (an overlay holding only comments changes nothing).
fn merge_tables(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (key, value) in overlay {
        let origin = value.origin().map(str::to_owned);
        match (base.get_mut(&key), value.kind) {
            (Some(below), ValueKind::Table(above))
                if !above.is_empty() && matches!(below.kind, ValueKind::Table(_)) =>
            {
                if let ValueKind::Table(below) = &mut below.kind {
                    merge_tables(below, above);
                }
            }
            (_, kind) => {
                base.insert(key, Value::new(origin.as_ref(), kind));
            }
        }
    }
}

/// The merged tree as one source of the config crate, which then applies the overrides.
#[derive(Clone, Debug)]
struct Tree(Map<String, Value>);

impl Source for Tree {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

/// Where `key` was set: the variable that overrode it (or a parent of it), else the origin of
/// the deepest value of the tree on its path.
fn origin_of(tree: &Map<String, Value>, overrides: &[(String, String)], key: &str) -> String {
    // The last override of a key is the one that took effect (aliases come before `APP__`).
    if let Some((var, _)) = overrides.iter().rev().find(|(_, k)| {
        key == k
            || key
                .strip_prefix(k.as_str())
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    }) {
        return format!("environment variable {var}");
    }
    let mut origin = None;
    let mut current: Option<&Value> = None;
    for part in key.split('.') {
        let (name, indexes) = part.split_once('[').unwrap_or((part, ""));
        current = match current {
            None => tree.get(name),
            Some(Value {
                kind: ValueKind::Table(t),
                ..
            }) => t.get(name),
            Some(_) => None,
        };
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let index = index.trim_end_matches(']').parse::<usize>().ok();
            current = match (current, index) {
                (
                    Some(Value {
                        kind: ValueKind::Array(items),
                        ..
                    }),
                    Some(i),
                ) => items.get(i),
                _ => None,
            };
        }
        match current {
            Some(value) => origin = value.origin().or(origin),
            None => break,
        }
    }
    origin.unwrap_or("the config files").to_owned()
}

/// Maps `SERVER`, `HTTP`, `ADDR` onto the file's own spelling (`server.http.addr`, or
/// `cacheKeys.userInfo` for camelCase keys): environment variable names are upper case, YAML keys
/// are not. A numeric segment indexes a list: `APP__MYSQL__REPLICAS__0__DSN` sets
/// `mysql.replicas[0].dsn`, creating the entry if the file has fewer. Segments the file does not
/// have are lower-cased, and the typed struct then rejects or accepts them.
fn resolve_key(tree: &Map<String, Value>, segments: &[&str]) -> String {
    /// Where the walk stands in the tree (borrowed: nothing is copied per variable).
    enum At<'a> {
        Table(&'a Map<String, Value>),
        Array(&'a [Value]),
        /// A scalar, or a path the file does not have.
        Outside,
    }
    fn at(kind: &ValueKind) -> At<'_> {
        match kind {
            ValueKind::Table(t) => At::Table(t),
            ValueKind::Array(items) => At::Array(items),
            _ => At::Outside,
        }
    }
    let mut current = At::Table(tree);
    let mut out: Vec<String> = Vec::with_capacity(segments.len());
    for seg in segments {
        if let (Ok(index), Some(last)) = (seg.parse::<usize>(), out.last_mut()) {
            last.push_str(&format!("[{index}]"));
            current = match current {
                At::Array(items) => items.get(index).map_or(At::Outside, |v| at(&v.kind)),
                _ => At::Outside,
            };
            continue;
        }
        let found = match current {
            At::Table(t) => t.iter().find(|(k, _)| k.eq_ignore_ascii_case(seg)),
            _ => None,
        };
        match found {
            Some((k, v)) => {
                out.push(k.clone());
                current = at(&v.kind);
            }
            None => {
                out.push(seg.to_ascii_lowercase());
                current = At::Outside;
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
    use std::collections::BTreeMap;

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

    /// Writes `base.yaml` and the test profile's overlay.
    fn write(dir: &Path, base: &str, overlay: &str) {
        std::fs::create_dir_all(dir.join("test")).unwrap();
        std::fs::write(dir.join("base.yaml"), base).unwrap();
        std::fs::write(dir.join("test/common.yaml"), overlay).unwrap();
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const GOOD: &str =
        "server:\n  addr: \":8080\"\n  workers: 2\ncacheKeys:\n  userInfo: \"u:{}\"\n";

    /// An overlay holding only comments: the profile is the base.
    const NOTHING: &str = "# nothing differs\n";

    #[test]
    fn env_overrides_file_values_with_double_underscores() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), GOOD, NOTHING);
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
        assert_eq!(
            loaded.origin_of("server.addr"),
            "environment variable APP__SERVER__ADDR"
        );
        assert!(loaded.origin_of("server.workers").ends_with("base.yaml"));
    }

    #[test]
    fn maps_merge_key_by_key_and_scalars_replace() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            GOOD,
            "server:\n  workers: 8\ncacheKeys:\n  helloValue: \"h:{}\"\n",
        );
        let loaded: Loaded<Root> = load_with_vars(dir.path(), Profile::Test, vars(&[])).unwrap();
        let root = &loaded.settings;
        assert_eq!(
            (root.server.addr.as_str(), root.server.workers),
            (":8080", 8)
        );
        assert_eq!(
            root.cache_keys,
            BTreeMap::from([
                ("helloValue".to_owned(), "h:{}".to_owned()),
                ("userInfo".to_owned(), "u:{}".to_owned()),
            ])
        );
        assert!(
            loaded
                .origin_of("server.workers")
                .ends_with("test/common.yaml")
        );
        assert!(loaded.origin_of("server.addr").ends_with("base.yaml"));
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Lists {
        origins: Vec<String>,
        rooms: Vec<String>,
        meta: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    }

    const LISTS: &str = "\
origins: [a, b, c]
rooms:
  - lobby
meta:
  team: core
  tier: gold
tags:
  env: base
";

    #[test]
    fn lists_replace_whole_and_empty_lists_and_maps_clear() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            LISTS,
            "origins: [z]\nrooms: []\nmeta: {}\ntags:\n  zone: eu\n",
        );
        let loaded: Loaded<Lists> = load_with_vars(dir.path(), Profile::Test, vars(&[])).unwrap();
        let lists = loaded.settings;
        // Not merged by position: `[z]` over `[a, b, c]` is `[z]`.
        assert_eq!(lists.origins, ["z"]);
        assert!(lists.rooms.is_empty(), "[] clears the base list");
        assert!(lists.meta.is_empty(), "{{}} clears the base map");
        assert_eq!(
            lists.tags,
            BTreeMap::from([
                ("env".to_owned(), "base".to_owned()),
                ("zone".to_owned(), "eu".to_owned()),
            ])
        );
        // A variable still sets one entry of a list the overlay cleared.
        let loaded: Loaded<Lists> = load_with_vars(
            dir.path(),
            Profile::Test,
            vars(&[("APP__ROOMS__0", "hall")]),
        )
        .unwrap();
        assert_eq!(loaded.settings.rooms, ["hall"]);
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
        write(
            dir.path(),
            "replicas:\n  - dsn: a\n    weight: 1\n",
            NOTHING,
        );
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
    fn an_unknown_key_names_itself_and_the_file_that_set_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), GOOD, "server:\n  adrr: x\n");
        let text = load_with_vars::<Root>(dir.path(), Profile::Test, vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(text.contains("server.adrr"), "{text}");
        assert!(text.contains("test/common.yaml"), "{text}");

        write(
            dir.path(),
            "server:\n  addr: \":8080\"\n  workers: 2\n  adrr: x\ncacheKeys: {}\n",
            NOTHING,
        );
        let text = load_with_vars::<Root>(dir.path(), Profile::Test, vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(text.contains("server.adrr"), "{text}");
        assert!(text.contains("base.yaml"), "{text}");
    }

    #[test]
    fn a_bad_value_names_the_overlay_that_set_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), GOOD, "server:\n  workers: many\n");
        let text = load_with_vars::<Root>(dir.path(), Profile::Test, vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(text.contains("server.workers"), "{text}");
        assert!(text.contains("test/common.yaml"), "{text}");
    }

    #[test]
    fn missing_and_mistyped_keys_name_themselves_and_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "server:\n  addr: \":8080\"\ncacheKeys: {}\n",
            NOTHING,
        );
        let text = load_with_vars::<Root>(dir.path(), Profile::Test, vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(text.contains("workers"), "{text}");

        write(dir.path(), GOOD, NOTHING);
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
    fn a_failed_check_is_located_at_the_file_or_variable() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), GOOD, "server:\n  addr: nowhere\n");
        let loaded: Loaded<Root> = load_with_vars(
            dir.path(),
            Profile::Test,
            vars(&[("APP__SERVER__WORKERS", "0")]),
        )
        .unwrap();
        let addr = loaded
            .locate(invalid("server.addr", "not host:port"))
            .to_string();
        assert!(
            addr.contains("server.addr") && addr.contains("test/common.yaml"),
            "{addr}"
        );
        let workers = loaded.locate(invalid("server.workers", "zero")).to_string();
        assert!(workers.contains("APP__SERVER__WORKERS"), "{workers}");
    }

    #[test]
    fn aliases_set_their_keys_below_app_variables_and_name_themselves() {
        const ALIASES: &[Alias] = &[
            Alias {
                var: "STD_ADDR",
                keys: &["server.addr"],
            },
            Alias {
                var: "STD_WORKERS",
                keys: &["server.workers"],
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), GOOD, NOTHING);
        let loaded: Loaded<Root> = load_with_aliases(
            dir.path(),
            Profile::Test,
            vars(&[("STD_ADDR", "10.0.0.1:1"), ("STD_WORKERS", "7")]),
            ALIASES,
        )
        .unwrap();
        assert_eq!(loaded.settings.server.addr, "10.0.0.1:1");
        assert_eq!(loaded.settings.server.workers, 7);
        assert_eq!(
            loaded.origin_of("server.addr"),
            "environment variable STD_ADDR"
        );
        // The `APP__` variable wins, whichever order the environment lists them in.
        for order in [
            vars(&[
                ("APP__SERVER__ADDR", "127.0.0.1:2"),
                ("STD_ADDR", "10.0.0.1:1"),
            ]),
            vars(&[
                ("STD_ADDR", "10.0.0.1:1"),
                ("APP__SERVER__ADDR", "127.0.0.1:2"),
            ]),
        ] {
            let loaded: Loaded<Root> =
                load_with_aliases(dir.path(), Profile::Test, order, ALIASES).unwrap();
            assert_eq!(loaded.settings.server.addr, "127.0.0.1:2");
            assert_eq!(
                loaded.origin_of("server.addr"),
                "environment variable APP__SERVER__ADDR"
            );
        }
        // Empty or blank: unset, the files' value stays.
        let loaded: Loaded<Root> = load_with_aliases(
            dir.path(),
            Profile::Test,
            vars(&[("STD_ADDR", ""), ("STD_WORKERS", " ")]),
            ALIASES,
        )
        .unwrap();
        assert_eq!(loaded.settings.server.addr, ":8080");
        assert!(loaded.origin_of("server.addr").ends_with("base.yaml"));
        // Without aliases, the standard variable is nobody's.
        let plain: Loaded<Root> =
            load_with_vars(dir.path(), Profile::Test, vars(&[("STD_ADDR", "x:1")])).unwrap();
        assert_eq!(plain.settings.server.addr, ":8080");
        let text = load_with_aliases::<Root>(
            dir.path(),
            Profile::Test,
            vars(&[("STD_WORKERS", "many")]),
            ALIASES,
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("server.workers") && text.contains("STD_WORKERS"),
            "{text}"
        );
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = load_with_vars::<Root>(dir.path(), Profile::Prod, vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(text.contains("base.yaml"), "{text}");
        write(dir.path(), GOOD, NOTHING);
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
