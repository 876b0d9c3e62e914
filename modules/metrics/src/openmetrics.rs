//! Trace exemplars on the HTTP latency histogram, and the OpenMetrics text format that carries
//! them (docs/metrics.md, "Exemplars"). The `prometheus` crate has neither: it keeps the
//! histogram, this keeps the latest sampled request of each bucket beside it, and the scrape in
//! OpenMetrics is the crate's text format rewritten line by line (counter families named
//! without `_total`, `untyped` as `unknown`, `# EOF`) with each kept exemplar after its bucket.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::LATENCY_BUCKETS;

/// The ids of a sampled trace: a request's server span, kept as the exemplar of the latency
/// bucket it fell in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exemplar {
    /// The W3C trace id.
    pub trace_id: [u8; 16],
    /// The span id of the request's server span.
    pub span_id: [u8; 8],
}

/// An exemplar as kept: the ids, the observed value and when.
#[derive(Clone, Copy, Debug)]
struct Kept {
    ids: Exemplar,
    seconds: f64,
    at: SystemTime,
}

/// The latest exemplar of each bucket of one route's latency histogram (the `+Inf` bucket
/// last). A bucket's lock is taken only to keep a sampled request's ids, or to read them.
#[derive(Debug)]
pub(crate) struct RouteExemplars {
    buckets: Box<[Mutex<Option<Kept>>]>,
}

impl RouteExemplars {
    fn new() -> Self {
        Self {
            buckets: (0..=LATENCY_BUCKETS.len())
                .map(|_| Mutex::new(None))
                .collect(),
        }
    }

    /// Keeps `ids` as the exemplar of the bucket `seconds` falls in (the first whose bound is
    /// at least `seconds`).
    pub(crate) fn keep(&self, seconds: f64, ids: Exemplar) {
        let bucket = LATENCY_BUCKETS.partition_point(|bound| *bound < seconds);
        let kept = Kept {
            ids,
            seconds,
            at: SystemTime::now(),
        };
        if let Ok(mut slot) = self.buckets[bucket].lock() {
            *slot = Some(kept);
        }
    }
}

/// The exemplars of every route and method served, by `(route, method)`. Bounded as the
/// histogram's own series are: by the route templates (unmatched paths keep none).
#[derive(Debug, Default)]
pub(crate) struct Exemplars(Mutex<HashMap<(String, String), Arc<RouteExemplars>>>);

impl Exemplars {
    /// The exemplars of `route` and `method`, made on first use.
    pub(crate) fn of(&self, route: &str, method: &str) -> Arc<RouteExemplars> {
        let mut routes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        routes
            .entry((route.to_owned(), method.to_owned()))
            .or_insert_with(|| Arc::new(RouteExemplars::new()))
            .clone()
    }

    /// What is kept now, by route, method and bucket index.
    fn snapshot(&self) -> HashMap<(String, String, usize), Kept> {
        let routes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = HashMap::new();
        for ((route, method), exemplars) in routes.iter() {
            for (bucket, slot) in exemplars.buckets.iter().enumerate() {
                if let Some(kept) = *slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                {
                    out.insert((route.clone(), method.clone(), bucket), kept);
                }
            }
        }
        out
    }
}

/// The bucket lines of the latency histogram.
const BUCKET: &str = "go_example_http_request_duration_seconds_bucket{";

/// `text` (the Prometheus text format, as the `prometheus` crate writes it) in the OpenMetrics
/// 1.0 text format, with `exemplars` after their buckets.
pub(crate) fn to_openmetrics(text: &str, exemplars: &Exemplars) -> String {
    let kept = exemplars.snapshot();
    // Family types come after their HELP line: read them first.
    let types: HashMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let mut out = String::with_capacity(text.len() + 64 * kept.len() + 8);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = family_name(name, types.get(name).copied());
            // OpenMetrics escapes the double quote in HELP too.
            let _ = writeln!(out, "# HELP {name} {}", help.replace('"', "\\\""));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let kind = match kind {
                "counter" if !name.ends_with("_total") => "unknown",
                "untyped" => "unknown",
                kind => kind,
            };
            let _ = writeln!(out, "# TYPE {} {kind}", family_name(name, Some(kind)));
        } else if line.starts_with('#') || line.is_empty() {
            // Other comments are not OpenMetrics.
        } else {
            out.push_str(line);
            if let Some(kept) = line
                .strip_prefix(BUCKET)
                .and_then(bucket_of)
                .and_then(|key| kept.get(&key))
            {
                write_exemplar(&mut out, kept);
            }
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

/// A family's OpenMetrics name: a counter's without its `_total`.
fn family_name<'a>(name: &'a str, kind: Option<&str>) -> &'a str {
    match kind {
        Some("counter") => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

/// The route, method and bucket index of a latency bucket line (after the metric name's `{`).
fn bucket_of(rest: &str) -> Option<(String, String, usize)> {
    let labels = labels(rest)?;
    let get = |name: &str| {
        labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let le = get("le")?;
    let bucket = match le.as_str() {
        "+Inf" => LATENCY_BUCKETS.len(),
        le => {
            let bound: f64 = le.parse().ok()?;
            LATENCY_BUCKETS
                .iter()
                .position(|b| (*b - bound).abs() <= f64::EPSILON * b.max(1.0))?
        }
    };
    Some((get("route")?, get("method")?, bucket))
}

/// The labels of a sample line from its first label to the closing `}`, unescaped.
fn labels(mut rest: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            let _ = after;
            return Some(out);
        }
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        out.push((name.to_owned(), value));
        rest = &after[end + 1..];
    }
}

/// ` # {trace_id="…",span_id="…"} <value> <timestamp>`.
fn write_exemplar(out: &mut String, kept: &Kept) {
    out.push_str(" # {trace_id=\"");
    hex(out, &kept.ids.trace_id);
    out.push_str("\",span_id=\"");
    hex(out, &kept.ids.span_id);
    let at = kept
        .at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let _ = write!(out, "\"}} {} {at:.3}", kept.seconds);
}

fn hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: Exemplar = Exemplar {
        trace_id: [0x4b; 16],
        span_id: [0x0f; 8],
    };

    #[test]
    fn an_exemplar_follows_the_bucket_its_request_fell_in_and_counters_lose_total() {
        let exemplars = Exemplars::default();
        exemplars.of("/hello", "GET").keep(0.003, IDS);
        let text = "# HELP go_example_http_requests_total HTTP \"requests\" answered\n\
            # TYPE go_example_http_requests_total counter\n\
            go_example_http_requests_total{method=\"GET\",route=\"/hello\",status=\"200\"} 1\n\
            # HELP go_example_http_request_duration_seconds Time\n\
            # TYPE go_example_http_request_duration_seconds histogram\n\
            go_example_http_request_duration_seconds_bucket{method=\"GET\",route=\"/hello\",le=\"0.0025\"} 0\n\
            go_example_http_request_duration_seconds_bucket{method=\"GET\",route=\"/hello\",le=\"0.005\"} 1\n\
            go_example_http_request_duration_seconds_bucket{method=\"GET\",route=\"/other\",le=\"0.005\"} 1\n\
            go_example_http_request_duration_seconds_bucket{method=\"GET\",route=\"/hello\",le=\"+Inf\"} 1\n";
        let open = to_openmetrics(text, &exemplars);
        let lines: Vec<&str> = open.lines().collect();
        assert_eq!(
            lines[0],
            "# HELP go_example_http_requests HTTP \\\"requests\\\" answered"
        );
        assert_eq!(lines[1], "# TYPE go_example_http_requests counter");
        assert!(lines[5].ends_with("le=\"0.0025\"} 0"), "{open}");
        let exemplar = lines[6].split_once(" # ").expect("an exemplar").1;
        assert!(
            exemplar.starts_with(&format!(
                "{{trace_id=\"{}\",span_id=\"0f0f0f0f0f0f0f0f\"}} 0.003 ",
                "4b".repeat(16)
            )),
            "{exemplar}"
        );
        assert!(!lines[7].contains('#'), "another route's bucket: {open}");
        assert!(!lines[8].contains('#'), "{open}");
        assert_eq!(lines.last(), Some(&"# EOF"));
    }

    #[test]
    fn the_bucket_of_a_value_is_the_first_whose_bound_holds_it() {
        let route = RouteExemplars::new();
        route.keep(0.0025, IDS);
        route.keep(99.0, IDS);
        let at = |i: usize| route.buckets[i].lock().unwrap().is_some();
        assert!(at(4), "0.0025 is in le=0.0025");
        assert!(at(LATENCY_BUCKETS.len()), "past the last bound: +Inf");
        assert_eq!((0..=LATENCY_BUCKETS.len()).filter(|i| at(*i)).count(), 2);
    }

    #[test]
    fn labels_are_read_with_their_escapes() {
        assert_eq!(
            labels(r#"a="x\"y",b="p\\q\n"} 1"#).unwrap(),
            vec![
                ("a".to_owned(), "x\"y".to_owned()),
                ("b".to_owned(), "p\\q\n".to_owned())
            ]
        );
        assert!(labels(r#"a="unterminated"#).is_none());
    }
}
