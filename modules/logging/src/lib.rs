//! Structured logging with slog: console plus a size-rotated file (the original's zap +
//! lumberjack settings), text or JSON lines, written off the request path in large chunks by a
//! writer thread (`sink`), formatted without per-record allocation (`format`).
//!
//! Crates that log through `log` (actix, rustls) or `tracing` (tonic, h2, hyper) reach the same
//! sinks through one filter by target (`bridge`): their debug and trace records only when
//! `log.targets` names them.

mod bridge;
mod format;
pub mod request;
mod sink;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use file_rotate::compression::Compression;
use file_rotate::suffix::{AppendTimestamp, FileLimit, SuffixScheme, TimestampSuffix};
use file_rotate::{ContentLimit, FileRotate};
use serde::Deserialize;
use slog::{Drain, Logger, o};

/// The `log` section of the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Lowest level written: trace, debug, info, warning, error, critical.
    pub level: Level,
    /// `text` (human-readable) or `json` (one JSON object a line).
    pub format: Format,
    /// Whether to write to standard output.
    pub console: bool,
    /// Bytes of formatted records held for the writer thread; when full, records are dropped and
    /// the number dropped is reported, so logging never blocks a request.
    pub buffer_size: usize,
    /// How often the writer thread hands buffered records to the sinks.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// The rotated file sink.
    pub file: FileSettings,
    /// Levels for other crates' records by target, a module path prefix (`h2`, `hyper`,
    /// `rustls`, `tonic::transport`): `{h2: debug}` writes h2's debug records. Targets not named
    /// are written at info and above (or at `level` when it is stricter), whatever `level` is.
    #[serde(default)]
    pub targets: BTreeMap<String, Level>,
}

/// The rotated file sink, with the original's lumberjack knobs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Whether to write a file at all.
    pub enabled: bool,
    /// The live file; rotated files get a timestamp suffix beside it.
    pub path: PathBuf,
    /// Megabytes before the file is rotated (lumberjack `MaxSize`).
    pub max_size: usize,
    /// Days a rotated file is kept (lumberjack `MaxAge`); 0 keeps them regardless of age.
    pub max_age: u32,
    /// Rotated files kept (lumberjack `MaxBackups`); 0 keeps them regardless of count.
    pub max_backups: usize,
    /// Gzip rotated files (lumberjack `Compress`).
    pub compress: bool,
}

/// Log levels as written in config.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Everything.
    Trace,
    /// Development detail, SQL statements included.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that was handled.
    Warning,
    /// A failed operation.
    Error,
    /// The process cannot go on.
    Critical,
}

impl Level {
    fn slog(self) -> slog::Level {
        match self {
            Level::Trace => slog::Level::Trace,
            Level::Debug => slog::Level::Debug,
            Level::Info => slog::Level::Info,
            Level::Warning => slog::Level::Warning,
            Level::Error => slog::Level::Error,
            Level::Critical => slog::Level::Critical,
        }
    }
}

/// Output format of every sink.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `TIME LEVEL message, key: value` lines.
    Text,
    /// One JSON object a line, for log shippers.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The writer thread could not be started.
    #[error("cannot start the log writer thread: {source}")]
    Thread {
        /// The operating system's error.
        source: io::Error,
    },
    /// The log file's folder could not be created or the file opened.
    #[error("cannot open log file {path}: {source}")]
    File {
        /// The configured file.
        path: PathBuf,
        /// The file system's error.
        source: io::Error,
    },
}

/// Keeps logging alive: the root logger for the application, the `log` bridge, and the writer
/// thread. Dropping it flushes what is buffered.
pub struct Logging {
    logger: Logger,
    // Order matters: the scope guard goes first, then the writer flushes and joins its thread.
    _scope: Option<slog_scope::GlobalLoggerGuard>,
    _writer: Option<sink::Writer>,
}

impl Logging {
    /// The root logger; components take children of it through the assembly.
    pub fn logger(&self) -> &Logger {
        &self.logger
    }

    /// A logger that discards everything, for tests that do not look at logs.
    pub fn discard() -> Logging {
        Logging {
            logger: Logger::root(slog::Discard, o!()),
            _scope: None,
            _writer: None,
        }
    }
}

/// Sets logging up from `settings`, tagging every record with `app` and `env`.
///
/// Also routes the `log` facade and `tracing` events into the same sinks, filtered by
/// `settings.targets`. That bridge is process-wide by the nature of both crates; the first call
/// wins it (and its filter), and later calls (tests) get the records in their own sinks.
///
/// # Errors
/// The file sink is enabled and its file cannot be opened.
pub fn init(settings: &Settings, app: &'static str, env: &str) -> Result<Logging, LoggingError> {
    let mut sinks: Vec<Box<dyn io::Write + Send>> = Vec::new();
    if settings.console {
        sinks.push(Box::new(io::stdout()));
    }
    if settings.file.enabled {
        sinks.push(Box::new(rotating_file(&settings.file)?));
    }
    let (drain, writer) = sink::start(
        settings.format,
        settings.buffer_size.max(64 * 1024),
        settings.flush_interval.max(Duration::from_millis(1)),
        sinks,
    )
    .map_err(|source| LoggingError::Thread { source })?;
    // `env` and `app` end every record, formatted once (not as logger values).
    let ours = drain.with_fixed(&[("env", env), ("app", app)]);
    let logger = Logger::root(ours.filter_level(settings.level.slog()).fuse(), o!());

    // Other crates' records, past the bridge's filter by target and not `level`'s (a target
    // named in `targets` may be more verbose). They carry the request id too when made during
    // one.
    let bridged = Logger::root(
        drain
            .with_fixed(&[("source", "log"), ("env", env), ("app", app)])
            .fuse(),
        o!(),
    )
    .new(request::kv());
    let scope = slog_scope::set_global_logger(bridged);
    bridge::install(bridge::TargetFilter::new(settings.level, &settings.targets));
    Ok(Logging {
        logger,
        _scope: Some(scope),
        _writer: Some(writer),
    })
}

/// Opens the rotated file sink, creating its folder.
///
/// # Errors
/// The folder cannot be created or the file opened.
pub fn rotating_file(settings: &FileSettings) -> Result<FileRotate<BackupsAndAge>, LoggingError> {
    let path = settings.path.clone();
    let fail = |source| LoggingError::File {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // Open once here so a bad path fails at start with a clear error; FileRotate opens it again.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(fail)?;
    let compression = if settings.compress {
        Compression::OnRotate(0)
    } else {
        Compression::None
    };
    Ok(FileRotate::new(
        &path,
        BackupsAndAge::new(settings.max_backups, settings.max_age),
        ContentLimit::BytesSurpassed(settings.max_size.max(1) * 1024 * 1024),
        compression,
        None,
    ))
}

/// Timestamp-suffixed rotation that, like lumberjack, removes a rotated file when either the
/// backup count or the age limit is exceeded (file-rotate's own schemes apply only one).
pub struct BackupsAndAge {
    by_count: AppendTimestamp,
    by_age: AppendTimestamp,
}

impl BackupsAndAge {
    /// `max_backups` rotated files and `max_age_days` days; 0 disables either limit.
    pub fn new(max_backups: usize, max_age_days: u32) -> Self {
        let count = if max_backups == 0 {
            FileLimit::Unlimited
        } else {
            FileLimit::MaxFiles(max_backups)
        };
        let age = if max_age_days == 0 {
            FileLimit::Unlimited
        } else {
            FileLimit::Age(chrono::Duration::days(i64::from(max_age_days)))
        };
        Self {
            by_count: AppendTimestamp::default(count),
            by_age: AppendTimestamp::default(age),
        }
    }
}

impl SuffixScheme for BackupsAndAge {
    type Repr = TimestampSuffix;

    fn rotate_file(
        &mut self,
        basepath: &Path,
        newest_suffix: Option<&TimestampSuffix>,
        suffix: &Option<TimestampSuffix>,
    ) -> io::Result<TimestampSuffix> {
        self.by_count.rotate_file(basepath, newest_suffix, suffix)
    }

    fn parse(&self, suffix: &str) -> Option<TimestampSuffix> {
        self.by_count.parse(suffix)
    }

    fn too_old(&self, suffix: &TimestampSuffix, file_number: usize) -> bool {
        self.by_count.too_old(suffix, file_number) || self.by_age.too_old(suffix, file_number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_settings(dir: &Path) -> FileSettings {
        FileSettings {
            enabled: true,
            path: dir.join("logs/app.log"),
            max_size: 1,
            max_age: 7,
            max_backups: 2,
            compress: false,
        }
    }

    #[test]
    fn rotation_keeps_at_most_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = rotating_file(&file_settings(dir.path())).unwrap();
        let line = vec![b'x'; 300 * 1024];
        for _ in 0..20 {
            w.write_all(&line).unwrap();
            w.write_all(b"\n").unwrap();
            // Distinct timestamps are not needed: same-second rotations get a numeric suffix.
        }
        w.flush().unwrap();
        let files = std::fs::read_dir(dir.path().join("logs")).unwrap().count();
        assert_eq!(files, 3, "the live file plus two backups");
    }

    #[test]
    fn old_backups_are_too_old_by_age_even_under_the_count() {
        let scheme = BackupsAndAge::new(5, 1);
        let ancient = TimestampSuffix {
            timestamp: "20000101T000000".into(),
            number: None,
        };
        assert!(scheme.too_old(&ancient, 0));
        let fresh = TimestampSuffix {
            timestamp: chrono::Local::now().format("%Y%m%dT%H%M%S").to_string(),
            number: None,
        };
        assert!(!scheme.too_old(&fresh, 0));
        assert!(scheme.too_old(&fresh, 5));
    }

    #[test]
    fn json_file_sink_receives_records_and_log_crate_events() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            level: Level::Debug,
            format: Format::Json,
            console: false,
            buffer_size: 1 << 20,
            flush_interval: Duration::from_millis(50),
            file: file_settings(dir.path()),
            targets: BTreeMap::from([("named".to_owned(), Level::Trace)]),
        };
        {
            let logging = init(&settings, "test", "test").unwrap();
            slog::info!(logging.logger(), "hello from slog"; "user_id" => 7);
            slog::debug!(logging.logger(), "debug from slog");
            log::info!("hello from log");
            // tonic, h2 and hyper log through `tracing`: the bridge's subscriber.
            tracing::warn!(peer = "10.0.0.1", "hello from tracing");
            // Dependencies' debug records stay out under `level: debug` unless named.
            log::debug!(target: "hyper::proto", "debug from log");
            tracing::debug!(target: "h2::codec", "debug from tracing");
            let span = tracing::info_span!("a span");
            span.in_scope(|| tracing::trace!(target: "named::inner", "trace from a named target"));
            log::trace!(target: "named", "trace from log of a named target");
        }
        let text = std::fs::read_to_string(dir.path().join("logs/app.log")).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["msg"], "hello from slog");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["app"], "test");
        assert!(text.contains("\"user_id\":7"), "{text}");
        assert!(text.contains("debug from slog"), "{text}");
        assert!(text.contains("hello from log"), "{text}");
        assert!(text.contains("hello from tracing"), "{text}");
        assert!(text.contains("\"peer\":\"10.0.0.1\""), "{text}");
        assert!(!text.contains("debug from log"), "{text}");
        assert!(!text.contains("debug from tracing"), "{text}");
        assert!(!text.contains("a span"), "spans are not records: {text}");
        assert!(text.contains("trace from a named target"), "{text}");
        assert!(text.contains("\"target\":\"named::inner\""), "{text}");
        assert!(text.contains("trace from log of a named target"), "{text}");
    }
}
