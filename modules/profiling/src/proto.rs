//! pprof's `profile.proto` (github.com/google/pprof, `proto/profile.proto`), the part this crate
//! writes, as prost messages, and the conversion of a `pprof::Report` into it.
//!
//! The `pprof` crate can do this itself behind its `prost-codec` feature, but that feature builds
//! prost 0.12 and prost-build 0.12 beside the prost 0.14 that tonic already uses (a second protobuf
//! stack in every cold build: docs/decisions.md, "The cold build"). The conversion follows the
//! crate's own (`Report::pprof`, pprof 0.15): one function and one location per symbol name, two
//! values per sample (`samples`/`count` and `cpu`/`nanoseconds`), the thread as a label.

use std::collections::HashMap;
use std::time::SystemTime;

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
}

/// `perftools.profiles.ValueType`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub ty: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `perftools.profiles.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `perftools.profiles.Label` (string labels only).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
}

/// `perftools.profiles.Location`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// `perftools.profiles.Line`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// `perftools.profiles.Function`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

/// The string table: index 0 is the empty string, as the format requires.
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        Self {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        let id = i64::try_from(self.table.len()).unwrap_or(i64::MAX);
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), id);
        id
    }
}

/// The report as a pprof profile.
pub fn profile(report: &pprof::Report) -> Profile {
    let mut strings = Strings::new();
    let samples_value = ValueType {
        ty: strings.id("samples"),
        unit: strings.id("count"),
    };
    let time_value = ValueType {
        ty: strings.id("cpu"),
        unit: strings.id("nanoseconds"),
    };
    let thread = strings.id("thread");
    let frequency = i64::from(report.timing.frequency.max(1));

    let mut functions: Vec<Function> = Vec::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut by_name: HashMap<String, u64> = HashMap::new();
    let mut samples = Vec::with_capacity(report.data.len());
    for (frames, &count) in &report.data {
        let mut location_id = Vec::new();
        for symbol in frames.frames.iter().flatten() {
            let name = symbol.name();
            if let Some(&id) = by_name.get(&name) {
                location_id.push(id);
                continue;
            }
            let id = functions.len() as u64 + 1;
            functions.push(Function {
                id,
                name: strings.id(&name),
                system_name: strings.id(&symbol.sys_name()),
                filename: strings.id(&symbol.filename()),
            });
            locations.push(Location {
                id,
                line: vec![Line {
                    function_id: id,
                    line: i64::from(symbol.lineno()),
                }],
            });
            by_name.insert(name, id);
            location_id.push(id);
        }
        let count = count as i64;
        samples.push(Sample {
            location_id,
            value: vec![count, count * 1_000_000_000 / frequency],
            label: vec![Label {
                key: thread,
                str: strings.id(&frames.thread_name_or_id()),
            }],
        });
    }
    Profile {
        sample_type: vec![samples_value, time_value],
        sample: samples,
        location: locations,
        function: functions,
        string_table: strings.table,
        time_nanos: report
            .timing
            .start_time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .try_into()
            .unwrap_or(i64::MAX),
        duration_nanos: report
            .timing
            .duration
            .as_nanos()
            .try_into()
            .unwrap_or(i64::MAX),
        period_type: Some(time_value),
        period: 1_000_000_000 / frequency,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, SystemTime};

    use pprof::{Frames, Symbol};
    use prost::Message;

    use super::*;

    fn symbol(name: &str, line: u32) -> Symbol {
        Symbol {
            name: Some(name.as_bytes().to_vec()),
            addr: None,
            lineno: Some(line),
            filename: Some(format!("src/{name}.rs").into()),
        }
    }

    fn frames(thread: &str, names: &[&str]) -> Frames {
        Frames {
            frames: names.iter().map(|n| vec![symbol(n, 7)]).collect(),
            thread_name: thread.to_owned(),
            thread_id: 1,
            sample_timestamp: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_report_becomes_a_profile_that_decodes_as_written() {
        let mut report = pprof::Report {
            data: HashMap::from([
                (frames("worker", &["leaf", "main"]), 3),
                (frames("io", &["other", "main"]), 1),
            ]),
            timing: Default::default(),
        };
        report.timing.frequency = 100;
        report.timing.start_time = SystemTime::UNIX_EPOCH + Duration::from_secs(2);
        report.timing.duration = Duration::from_secs(1);

        let bytes = profile(&report).encode_to_vec();
        let decoded = Profile::decode(bytes.as_slice()).unwrap();
        let s = |i: i64| decoded.string_table[usize::try_from(i).unwrap()].as_str();

        assert_eq!(decoded.string_table[0], "");
        assert_eq!(
            decoded
                .sample_type
                .iter()
                .map(|t| (s(t.ty), s(t.unit)))
                .collect::<Vec<_>>(),
            [("samples", "count"), ("cpu", "nanoseconds")]
        );
        assert_eq!(decoded.period, 10_000_000);
        assert_eq!(decoded.time_nanos, 2_000_000_000);
        assert_eq!(decoded.duration_nanos, 1_000_000_000);
        // One function and one location per name: `main` is shared by both samples.
        assert_eq!(decoded.function.len(), 3);
        assert_eq!(decoded.location.len(), 3);
        let name_of = |id: u64| {
            let f = decoded.function.iter().find(|f| f.id == id).unwrap();
            assert_eq!(s(f.filename), format!("src/{}.rs", s(f.name)));
            s(f.name)
        };
        let mut samples: Vec<_> = decoded
            .sample
            .iter()
            .map(|x| {
                let stack: Vec<_> = x.location_id.iter().map(|&id| name_of(id)).collect();
                let thread = s(x.label[0].str);
                assert_eq!(s(x.label[0].key), "thread");
                (stack, thread, x.value.clone())
            })
            .collect();
        samples.sort();
        assert_eq!(
            samples,
            [
                (vec!["leaf", "main"], "worker", vec![3, 30_000_000]),
                (vec!["other", "main"], "io", vec![1, 10_000_000]),
            ]
        );
        for location in &decoded.location {
            assert_eq!(
                location.line,
                [Line {
                    function_id: location.id,
                    line: 7
                }]
            );
        }
    }
}
