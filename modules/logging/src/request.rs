//! The request a task is serving, for every log record written while it runs: the HTTP
//! lifecycle middleware runs each request inside [`scope`] (or [`scope_traced`] when tracing is
//! on), and loggers carrying [`kv`] add `request_id` — and `trace_id` and `span_id` of the
//! request's server span when traced — to each record made in that scope, in handlers,
//! services, repositories and libraries logging through `log` alike, and nothing outside one.
//!
//! The trace ids are plain bytes (this crate knows nothing of OpenTelemetry), formatted as hex
//! on the stack when a record is written: a request that is not traced carries and costs
//! nothing more.

use std::future::Future;
use std::sync::Arc;

/// What the records of a request carry. The trace ids are boxed: a request that is not traced
/// carries one null pointer for them (the scope is swapped in and out of its task-local at each
/// poll: inline, the ids made every untraced request's polls copy twice as much, measured).
#[derive(Clone, Debug)]
struct Scope {
    id: Arc<str>,
    trace: Option<Box<TraceIds>>,
}

/// The W3C ids of the span serving a request: 16 bytes of trace id, 8 of span id, and whether
/// the trace is sampled (its `traceparent` flag, for the spans the request makes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceIds {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The request's server span id.
    pub span_id: [u8; 8],
    /// Whether the span is sampled (recorded and exported).
    pub sampled: bool,
}

impl TraceIds {
    /// The trace id as 32 lower-case hex digits (its W3C and OTLP spelling).
    pub fn trace_hex(&self) -> HexId<32> {
        HexId::of(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_hex(&self) -> HexId<16> {
        HexId::of(&self.span_id)
    }
}

/// An id in hex, on the stack.
#[derive(Clone, Copy)]
pub struct HexId<const N: usize>([u8; N]);

/// Each byte's two lower-case hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    table
};

impl<const N: usize> HexId<N> {
    fn of(bytes: &[u8]) -> Self {
        let mut out = [b'0'; N];
        for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(*b)]);
        }
        Self(out)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        // SAFETY: `of` writes only ASCII hex digits (and the initial ASCII zeros), which are
        // UTF-8. Written on every record of a traced request: checking 48 bytes each time cost
        // more than the hex itself.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl<const N: usize> std::fmt::Display for HexId<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> std::fmt::Debug for HexId<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    static REQUEST: Scope;
}

/// Runs `future` as the request `id`.
pub fn scope<F: Future>(id: Arc<str>, future: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(Scope { id, trace: None }, future)
}

/// Runs `future` as the request `id`, served by the span `trace` when tracing is on.
pub fn scope_traced<F: Future>(
    id: Arc<str>,
    trace: Option<TraceIds>,
    future: F,
) -> impl Future<Output = F::Output> {
    REQUEST.scope(
        Scope {
            id,
            trace: trace.map(Box::new),
        },
        future,
    )
}

/// The id of the request the current task serves, if any.
pub fn current() -> Option<Arc<str>> {
    REQUEST.try_with(|s| s.id.clone()).ok()
}

/// The trace ids of the request the current task serves, if it is traced.
pub fn current_trace() -> Option<TraceIds> {
    REQUEST
        .try_with(|s| s.trace.as_deref().copied())
        .ok()
        .flatten()
}

/// The `request_id` of the current request, as a logger value: emitted only inside [`scope`],
/// with `trace_id` and `span_id` after it when the request is traced (one task-local read for
/// the three).
#[derive(Clone, Copy, Debug)]
pub struct CurrentRequestId;

impl slog::Value for CurrentRequestId {
    fn serialize(
        &self,
        _record: &slog::Record<'_>,
        key: slog::Key,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        REQUEST
            .try_with(|s| {
                serializer.emit_str(key, &s.id)?;
                if let Some(trace) = &s.trace {
                    serializer.emit_str("trace_id", trace.trace_hex().as_str())?;
                    serializer.emit_str("span_id", trace.span_hex().as_str())?;
                }
                Ok(())
            })
            .unwrap_or(Ok(()))
    }
}

/// The key-value pair that gives a logger's records the current request id (and trace ids).
pub fn kv() -> slog::OwnedKV<(slog::SingleKV<CurrentRequestId>, ())> {
    slog::o!("request_id" => CurrentRequestId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn the_id_is_there_inside_the_scope_only() {
        assert!(current().is_none());
        let seen = scope("r-1".into(), async {
            tokio::task::yield_now().await;
            (current(), current_trace())
        })
        .await;
        assert_eq!(seen.0.as_deref(), Some("r-1"));
        assert_eq!(seen.1, None);
        assert!(current().is_none());
    }

    /// A record's pairs as text.
    type RecordPairs = Vec<(String, String)>;

    /// A drain keeping each record's pairs.
    struct Keep(Arc<Mutex<Vec<RecordPairs>>>);

    struct Pairs<'a>(&'a mut Vec<(String, String)>);

    impl slog::Serializer for Pairs<'_> {
        fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
            self.0.push((key.to_string(), val.to_string()));
            Ok(())
        }
    }

    impl slog::Drain for Keep {
        type Ok = ();
        type Err = slog::Never;
        fn log(&self, r: &slog::Record, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
            let mut pairs = Vec::new();
            let _ = slog::KV::serialize(values, r, &mut Pairs(&mut pairs));
            self.0.lock().unwrap().push(pairs);
            Ok(())
        }
    }

    #[test]
    fn ids_are_written_as_lower_case_hex_for_every_byte() {
        for b in 0..=255u8 {
            let ids = TraceIds {
                trace_id: [b; 16],
                span_id: [b, 0, 0, 0, 0, 0, 0, 0xff],
                sampled: false,
            };
            assert_eq!(ids.trace_hex().as_str(), format!("{b:02x}").repeat(16));
            assert_eq!(ids.span_hex().as_str(), format!("{b:02x}000000000000ff"));
        }
    }

    #[tokio::test]
    async fn records_carry_the_trace_ids_only_in_a_traced_scope() {
        let records = Arc::new(Mutex::new(Vec::new()));
        let logger = slog::Logger::root(Keep(records.clone()), slog::o!()).new(kv());
        let ids = TraceIds {
            trace_id: [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36,
            ],
            span_id: [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
            sampled: true,
        };
        slog::info!(logger, "outside");
        scope("plain".into(), async { slog::info!(logger, "untraced") }).await;
        scope_traced("traced".into(), Some(ids), async {
            assert_eq!(current_trace(), Some(ids));
            slog::info!(logger, "traced")
        })
        .await;
        let records = records.lock().unwrap();
        let text = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert!(records[0].is_empty(), "{:?}", records[0]);
        assert_eq!(records[1], vec![text("request_id", "plain")]);
        assert_eq!(
            records[2],
            vec![
                text("request_id", "traced"),
                text("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
                text("span_id", "00f067aa0ba902b7"),
            ]
        );
    }
}
