//! The request a task is serving, for every log record written while it runs: the HTTP
//! lifecycle middleware runs each request inside [`scope`], and loggers carrying [`kv`] add
//! `request_id` — and `trace_id` and `span_id` of the request's server span when traced — to
//! each record made in that scope, in handlers, services, repositories and libraries logging
//! through `log` alike, and nothing outside one.
//!
//! The trace ids are plain bytes here (this crate knows nothing of OpenTelemetry), written as
//! hex once, when the request's scope is made, into the allocation that holds its id: a request
//! that is not traced carries and costs nothing more.

use std::future::Future;
use std::sync::Arc;

/// What the records of a request carry: its id, and when traced its ids as hex after it in the
/// same allocation (`{id}{trace id}{span id}`), so the scope, swapped in and out of its
/// task-local at each poll, stays two words and a flag whether traced or not, and a traced one
/// costs no allocation of its own (measured: boxing the ids cost a sampled-out request 250
/// instructions, holding them inline cost every untraced request 64).
#[derive(Clone, Debug)]
struct Scope {
    text: Arc<str>,
    trace: Trace,
}

/// Whether a request is traced, and its trace sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trace {
    Untraced,
    Sampled,
    Unsampled,
}

/// The hex digits of a trace id and a span id.
const IDS_HEX: usize = 32 + 16;

impl Scope {
    /// The request id.
    fn id(&self) -> &str {
        match self.trace {
            Trace::Untraced => &self.text,
            // The ids are ASCII: the cut is a character boundary.
            _ => &self.text[..self.text.len() - IDS_HEX],
        }
    }

    /// The trace id and span id in hex, when traced.
    fn trace_hex(&self) -> Option<(&str, &str)> {
        if self.trace == Trace::Untraced {
            return None;
        }
        let ids = &self.text[self.text.len() - IDS_HEX..];
        Some(ids.split_at(32))
    }
}

/// A request's scope, made before it runs ([`RequestScope::new`], or
/// [`RequestScope::traced`] when tracing is on) and run with [`scope`].
#[derive(Debug)]
pub struct RequestScope(Scope);

impl RequestScope {
    /// The scope of the request `id`, not traced.
    pub fn new(id: &str) -> Self {
        Self(Scope {
            text: Arc::from(id),
            trace: Trace::Untraced,
        })
    }

    /// The scope of the request `id`, served by the span `ids`: its records carry them too.
    pub fn traced(id: &str, ids: &TraceIds) -> Self {
        // One allocation, made from the stack for any id the edge accepts.
        let mut buffer = [0u8; 128 + IDS_HEX];
        let text: Arc<str> = match buffer.get_mut(..id.len() + IDS_HEX) {
            Some(out) => {
                let (head, tail) = out.split_at_mut(id.len());
                head.copy_from_slice(id.as_bytes());
                let (trace, span) = tail.split_at_mut(32);
                write_hex(trace, &ids.trace_id);
                write_hex(span, &ids.span_id);
                // SAFETY: `id` is UTF-8 (a `str`) and the rest ASCII hex digits.
                Arc::from(unsafe { std::str::from_utf8_unchecked(out) })
            }
            None => Arc::from(format!("{id}{}{}", ids.trace_hex(), ids.span_hex())),
        };
        Self(Scope {
            text,
            trace: if ids.sampled {
                Trace::Sampled
            } else {
                Trace::Unsampled
            },
        })
    }

    /// The request id: shared when not traced, a copy when traced.
    pub fn id(&self) -> Arc<str> {
        match self.0.trace {
            Trace::Untraced => self.0.text.clone(),
            _ => Arc::from(self.0.id()),
        }
    }
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

/// Writes `bytes` as lower-case hex into `out` (twice as long).
fn write_hex(out: &mut [u8], bytes: &[u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*b)]);
    }
}

impl<const N: usize> HexId<N> {
    fn of(bytes: &[u8]) -> Self {
        let mut out = [b'0'; N];
        write_hex(&mut out, bytes);
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

/// Runs `future` as the request of `scope`.
pub fn scope<F: Future>(scope: RequestScope, future: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(scope.0, future)
}

/// The id of the request the current task serves, if any.
pub fn current() -> Option<Arc<str>> {
    REQUEST
        .try_with(|s| match s.trace {
            Trace::Untraced => s.text.clone(),
            _ => Arc::from(s.id()),
        })
        .ok()
}

/// The trace ids of the request the current task serves, if it is traced.
pub fn current_trace() -> Option<TraceIds> {
    REQUEST
        .try_with(|s| {
            let (trace, span) = s.trace_hex()?;
            Some(TraceIds {
                trace_id: unhex(trace)?,
                span_id: unhex(span)?,
                sampled: s.trace == Trace::Sampled,
            })
        })
        .ok()
        .flatten()
}

/// Whether the request the current task serves is traced and its trace sampled (no ids read).
pub fn current_is_sampled() -> bool {
    REQUEST
        .try_with(|s| s.trace == Trace::Sampled)
        .unwrap_or(false)
}

/// The bytes of `N` written as `2 N` hex digits.
fn unhex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let hex = hex.as_bytes();
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
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
                serializer.emit_str(key, s.id())?;
                if let Some((trace, span)) = s.trace_hex() {
                    serializer.emit_str("trace_id", trace)?;
                    serializer.emit_str("span_id", span)?;
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
        let seen = scope(RequestScope::new("r-1"), async {
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
        scope(RequestScope::new("plain"), async {
            slog::info!(logger, "untraced")
        })
        .await;
        scope(RequestScope::traced("traced", &ids), async {
            assert_eq!(current_trace(), Some(ids));
            assert_eq!(current().as_deref(), Some("traced"));
            assert!(current_is_sampled());
            slog::info!(logger, "traced")
        })
        .await;
        // An id longer than the stack buffer, and an unsampled trace.
        let long = "x".repeat(300);
        let unsampled = TraceIds {
            sampled: false,
            ..ids
        };
        scope(RequestScope::traced(&long, &unsampled), async {
            assert_eq!(current_trace(), Some(unsampled));
            assert_eq!(current().as_deref(), Some(long.as_str()));
            assert!(!current_is_sampled());
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
