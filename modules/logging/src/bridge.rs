//! Records of other crates: the `log` facade (actix, rustls, diesel) and `tracing` events (tonic,
//! h2, hyper, tower) reach the application's sinks through one filter by target (issue 23).
//!
//! Dependencies log every HTTP/2 frame and TLS record at debug and trace, and the application's
//! `log.level` is `debug` in the debug profile: without a filter of their own, `make grpc` under
//! load wrote 1.8 million lines in 7 s. So their records pass at info and above (never more
//! verbose than `log.level`) unless `log.targets` names their target, and the filter is applied
//! where it costs nothing: `log::set_max_level` stops a disabled `log` record in its macro, and
//! a `tracing` subscriber that answers `Interest::never()` for disabled callsites and for every
//! span stops a disabled event or span at one cached load. (`tracing`'s own `log` fallback,
//! used when no subscriber is installed, checked every span's creation, entry and exit against
//! `log`'s level: about 3 % of a gRPC call at level info.)

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use slog::{KV, Level as SlogLevel, Record, RecordLocation, RecordStatic, Serializer};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

use crate::Level;

/// Which records of other crates are written: the most verbose level per target prefix.
#[derive(Clone, Debug)]
pub(crate) struct TargetFilter {
    /// Targets without an entry: info, or `log.level` when that is stricter.
    default: SlogLevel,
    /// `log.targets`, longest prefix first.
    targets: Vec<(String, SlogLevel)>,
}

impl TargetFilter {
    /// The filter of `log.level` and `log.targets`.
    pub(crate) fn new(level: Level, targets: &BTreeMap<String, Level>) -> Self {
        let level = level.slog();
        let default = if level.is_at_least(SlogLevel::Info) {
            level
        } else {
            SlogLevel::Info
        };
        let mut targets: Vec<(String, SlogLevel)> = targets
            .iter()
            .map(|(target, level)| (target.clone(), level.slog()))
            .collect();
        targets.sort_by_key(|(target, _)| std::cmp::Reverse(target.len()));
        Self { default, targets }
    }

    /// The most verbose level written for `target`: that of the longest entry naming it or a
    /// module above it (`h2` names `h2::codec`, not `h2o`), else the default.
    fn level_for(&self, target: &str) -> SlogLevel {
        self.targets
            .iter()
            .find(|(prefix, _)| {
                target
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
            .map_or(self.default, |(_, level)| *level)
    }

    /// Whether a record of `target` at `level` is written.
    pub(crate) fn allows(&self, target: &str, level: SlogLevel) -> bool {
        level.is_at_least(self.level_for(target))
    }

    /// The most verbose level any target is written at.
    fn most_verbose(&self) -> SlogLevel {
        self.targets
            .iter()
            .map(|(_, level)| *level)
            .fold(self.default, |a, b| if a.is_at_least(b) { b } else { a })
    }
}

/// Installs the `log` logger and the `tracing` subscriber, both writing to slog-scope's global
/// logger through `filter`. The first call in a process wins (both are process-wide by the
/// nature of the two crates); later calls keep the first filter.
pub(crate) fn install(filter: TargetFilter) {
    let filter = Arc::new(filter);
    if log::set_boxed_logger(Box::new(LogBridge {
        filter: filter.clone(),
    }))
    .is_ok()
    {
        log::set_max_level(log_level(filter.most_verbose()));
    }
    let _ = tracing::subscriber::set_global_default(TracingBridge { filter });
}

fn log_level(level: SlogLevel) -> log::LevelFilter {
    match level {
        SlogLevel::Trace => log::LevelFilter::Trace,
        SlogLevel::Debug => log::LevelFilter::Debug,
        SlogLevel::Info => log::LevelFilter::Info,
        SlogLevel::Warning => log::LevelFilter::Warn,
        SlogLevel::Error | SlogLevel::Critical => log::LevelFilter::Error,
    }
}

fn from_log(level: log::Level) -> SlogLevel {
    match level {
        log::Level::Trace => SlogLevel::Trace,
        log::Level::Debug => SlogLevel::Debug,
        log::Level::Info => SlogLevel::Info,
        log::Level::Warn => SlogLevel::Warning,
        log::Level::Error => SlogLevel::Error,
    }
}

fn from_tracing(level: tracing::Level) -> SlogLevel {
    match level {
        tracing::Level::TRACE => SlogLevel::Trace,
        tracing::Level::DEBUG => SlogLevel::Debug,
        tracing::Level::INFO => SlogLevel::Info,
        tracing::Level::WARN => SlogLevel::Warning,
        tracing::Level::ERROR => SlogLevel::Error,
    }
}

/// Where a record was made: file, line and module, when its crate said.
type Place = (Option<&'static str>, Option<u32>, Option<&'static str>);

/// Writes one record of another crate to slog-scope's logger.
fn write(
    level: SlogLevel,
    target: &str,
    (file, line, module): Place,
    message: &fmt::Arguments<'_>,
    values: slog::BorrowedKV<'_>,
) {
    let location = RecordLocation {
        file: file.unwrap_or("<unknown>"),
        line: line.unwrap_or(0),
        column: 0,
        function: "",
        module: module.unwrap_or("<unknown>"),
    };
    let info = RecordStatic {
        location: &location,
        level,
        tag: target,
    };
    slog_scope::with_logger(|logger| logger.log(&Record::new(&info, message, values)));
}

/// The `log` logger.
struct LogBridge {
    filter: Arc<TargetFilter>,
}

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter
            .allows(metadata.target(), from_log(metadata.level()))
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = from_log(record.level());
        let target = record.target();
        if !self.filter.allows(target, level) {
            return;
        }
        let place = (
            record.file_static(),
            record.line(),
            record.module_path_static(),
        );
        write(
            level,
            target,
            place,
            record.args(),
            slog::b!("target" => target),
        );
    }

    fn flush(&self) {}
}

/// The `tracing` subscriber: events only, never spans.
struct TracingBridge {
    filter: Arc<TargetFilter>,
}

impl TracingBridge {
    fn wanted(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event()
            && self
                .filter
                .allows(metadata.target(), from_tracing(*metadata.level()))
    }
}

impl Subscriber for TracingBridge {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Decided once per callsite: a disabled one costs a cached load from then on.
        if self.wanted(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.wanted(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match self.filter.most_verbose() {
            SlogLevel::Trace => LevelFilter::TRACE,
            SlogLevel::Debug => LevelFilter::DEBUG,
            SlogLevel::Info => LevelFilter::INFO,
            SlogLevel::Warning => LevelFilter::WARN,
            SlogLevel::Error | SlogLevel::Critical => LevelFilter::ERROR,
        })
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Unreachable: every span callsite is `never`. An id is still owed.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &SpanRecord<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let message = fields.message.take().unwrap_or_default();
        let place = (metadata.file(), metadata.line(), metadata.module_path());
        write(
            from_tracing(*metadata.level()),
            metadata.target(),
            place,
            &format_args!("{message}"),
            slog::b!("target" => metadata.target(), fields),
        );
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// An event's `message` and its other fields, as slog key-values.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    fields: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for EventFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields.push((field.name(), text));
        }
    }
}

impl KV for EventFields {
    fn serialize(&self, _record: &Record<'_>, serializer: &mut dyn Serializer) -> slog::Result {
        for (key, value) in &self.fields {
            serializer.emit_str(key, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(level: Level, targets: &[(&str, Level)]) -> TargetFilter {
        TargetFilter::new(
            level,
            &targets.iter().map(|(t, l)| ((*t).to_owned(), *l)).collect(),
        )
    }

    #[test]
    fn dependencies_stay_at_info_under_a_debug_level_unless_named() {
        let f = filter(
            Level::Debug,
            &[("h2", Level::Trace), ("h2::codec", Level::Warning)],
        );
        assert!(!f.allows("hyper::proto", SlogLevel::Debug));
        assert!(f.allows("hyper::proto", SlogLevel::Info));
        assert!(f.allows("h2::proto::streams", SlogLevel::Trace));
        assert!(
            !f.allows("h2::codec::framed_write", SlogLevel::Info),
            "longest prefix wins"
        );
        assert!(
            !f.allows("h2o", SlogLevel::Debug),
            "a prefix names whole modules only"
        );
        assert_eq!(f.most_verbose(), SlogLevel::Trace);
    }

    #[test]
    fn a_stricter_level_holds_dependencies_too() {
        let f = filter(Level::Warning, &[]);
        assert!(!f.allows("actix_server::builder", SlogLevel::Info));
        assert!(f.allows("actix_server::builder", SlogLevel::Warning));
        assert_eq!(f.most_verbose(), SlogLevel::Warning);
    }
}
