//! Record formatting straight into the shared buffer: no per-record allocation for the common
//! value types (strings, integers, booleans), a timestamp prefix cached per second.
//!
//! Both formats keep one record on one line whatever the values hold: JSON escapes as JSON does,
//! and text escapes control characters (`\n`, `\r`, `\t`, `\u{1b}`...), so a username such as
//! `"alice\nINFO fake record"` cannot forge a record.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use slog::{KV, Key, OwnedKVList, Record, Serializer};

use crate::Format;

/// Caches the `YYYY-MM-DDTHH:MM:SS` part of the timestamp for the current second.
#[derive(Default)]
pub(crate) struct Clock {
    second: u64,
    prefix: [u8; 19],
}

impl Clock {
    /// Appends `2026-11-24T04:20:09.165Z`.
    fn write_now(&mut self, out: &mut Vec<u8>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs();
        if secs != self.second || self.prefix[0] == 0 {
            self.second = secs;
            self.prefix = civil(secs);
        }
        out.extend_from_slice(&self.prefix);
        let millis = now.subsec_millis();
        out.extend_from_slice(&[
            b'.',
            b'0' + (millis / 100) as u8,
            b'0' + (millis / 10 % 10) as u8,
            b'0' + (millis % 10) as u8,
            b'Z',
        ]);
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for Unix seconds (Howard Hinnant's days-to-civil algorithm).
fn civil(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let mut out = [0u8; 19];
    let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}");
    out.copy_from_slice(&text.as_bytes()[..19]);
    out
}

fn level_name(level: slog::Level) -> &'static str {
    match level {
        slog::Level::Critical => "CRIT",
        slog::Level::Error => "ERROR",
        slog::Level::Warning => "WARN",
        slog::Level::Info => "INFO",
        slog::Level::Debug => "DEBUG",
        slog::Level::Trace => "TRACE",
    }
}

/// The fields every record of a logger ends with (`env`, `app`), formatted once: written as
/// values of the logger, they were serialised and escaped again for every record.
pub(crate) fn fixed_fields(format: Format, pairs: &[(&'static str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(key, value) in pairs {
        let _ = match format {
            Format::Json => JsonFields { out: &mut out }.emit_str(key, value),
            Format::Text => TextFields { out: &mut out }.emit_str(key, value),
        };
    }
    out
}

/// Appends one record, newline-terminated, ending with `fixed` (see [`fixed_fields`]).
pub(crate) fn write_record(
    out: &mut Vec<u8>,
    clock: &mut Clock,
    format: Format,
    record: &Record<'_>,
    values: &OwnedKVList,
    fixed: &[u8],
) {
    match format {
        Format::Json => {
            out.extend_from_slice(b"{\"ts\":\"");
            clock.write_now(out);
            out.extend_from_slice(b"\",\"level\":\"");
            out.extend_from_slice(level_name(record.level()).as_bytes());
            out.extend_from_slice(b"\",\"msg\":");
            json_str_args(out, record.msg());
            let mut ser = JsonFields { out };
            let _ = record.kv().serialize(record, &mut ser);
            let _ = values.serialize(record, &mut ser);
            ser.out.extend_from_slice(fixed);
            ser.out.extend_from_slice(b"}\n");
        }
        Format::Text => {
            clock.write_now(out);
            out.push(b' ');
            out.extend_from_slice(level_name(record.level()).as_bytes());
            out.push(b' ');
            text_args(out, record.msg());
            let mut ser = TextFields { out };
            let _ = record.kv().serialize(record, &mut ser);
            let _ = values.serialize(record, &mut ser);
            ser.out.extend_from_slice(fixed);
            ser.out.push(b'\n');
        }
    }
}

/// `fmt::Write` over a byte vector.
struct Bytes<'a>(&'a mut Vec<u8>);

impl fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `fmt::Write` over a byte vector that escapes control characters (see [`text_str`]).
struct Escaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        text_str(self.0, s);
        Ok(())
    }
}

/// Whether a byte may start a control character: C0, DEL, or the UTF-8 lead byte of C1
/// (U+0080..U+009F, which holds NEL and the 8-bit CSI).
fn may_be_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == 0xc2
}

/// Appends `s` for the text format with every control character (`char::is_control`: C0,
/// DEL, C1) escaped as `\n`, `\r`, `\t` or `\u{..}`, so a value never breaks the line. Text
/// without one (nearly every value) is copied as is after one scan; backslashes are not doubled,
/// so the text format is for reading (use JSON to parse records back).
fn text_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // A fold without early exit, so the scan vectorises: it runs on every value of every record.
    if !bytes
        .iter()
        .fold(false, |seen, &b| seen | may_be_control(b))
    {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if !c.is_control() {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match c {
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c => {
                let _ = write!(Bytes(out), "\\u{{{:x}}}", u32::from(c));
            }
        }
        start = i + c.len_utf8();
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Formats `args` for the text format, escaped; a literal without arguments is copied without
/// going through `fmt`.
fn text_args(out: &mut Vec<u8>, args: &fmt::Arguments<'_>) {
    match args.as_str() {
        Some(s) => text_str(out, s),
        None => {
            let _ = write!(Escaped(out), "{args}");
        }
    }
}

/// Escapes into JSON string syntax, quotes included.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(Bytes(out), "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn json_str_args(out: &mut Vec<u8>, args: &fmt::Arguments<'_>) {
    match args.as_str() {
        Some(s) => json_str(out, s),
        None => json_str(out, &args.to_string()),
    }
}

/// Integer emitters without going through `fmt`.
macro_rules! json_numbers {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(fn $name(&mut self, key: Key, val: $ty) -> slog::Result {
            self.number(key, val);
            Ok(())
        })*
    };
}

struct JsonFields<'a> {
    out: &'a mut Vec<u8>,
}

impl JsonFields<'_> {
    fn key(&mut self, key: Key) {
        self.out.push(b',');
        json_str(self.out, key);
        self.out.push(b':');
    }

    fn number(&mut self, key: Key, n: impl itoa::Integer) {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

impl Serializer for JsonFields<'_> {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        self.key(key);
        json_str_args(self.out, val);
        Ok(())
    }
    fn emit_str(&mut self, key: Key, val: &str) -> slog::Result {
        self.key(key);
        json_str(self.out, val);
        Ok(())
    }
    fn emit_bool(&mut self, key: Key, val: bool) -> slog::Result {
        self.key(key);
        self.out
            .extend_from_slice(if val { b"true" } else { b"false" });
        Ok(())
    }
    fn emit_unit(&mut self, key: Key) -> slog::Result {
        self.key(key);
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn emit_none(&mut self, key: Key) -> slog::Result {
        self.emit_unit(key)
    }
    json_numbers! {
        emit_u8: u8, emit_u16: u16, emit_u32: u32, emit_u64: u64, emit_usize: usize,
        emit_i8: i8, emit_i16: i16, emit_i32: i32, emit_i64: i64, emit_isize: isize,
    }
}

struct TextFields<'a> {
    out: &'a mut Vec<u8>,
}

impl TextFields<'_> {
    fn key(&mut self, key: Key) {
        // Keys are `&'static str` written in code, never input: copied as they are.
        self.out.extend_from_slice(b", ");
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b": ");
    }
}

impl Serializer for TextFields<'_> {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        self.key(key);
        text_args(self.out, val);
        Ok(())
    }
    fn emit_str(&mut self, key: Key, val: &str) -> slog::Result {
        self.key(key);
        text_str(self.out, val);
        Ok(())
    }
    fn emit_u16(&mut self, key: Key, val: u16) -> slog::Result {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(val).as_bytes());
        Ok(())
    }
    fn emit_u64(&mut self, key: Key, val: u64) -> slog::Result {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(val).as_bytes());
        Ok(())
    }
    fn emit_i64(&mut self, key: Key, val: i64) -> slog::Result {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(val).as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(&civil(0), b"1970-01-01T00:00:00");
        assert_eq!(&civil(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&civil(1_795_495_209), b"2026-11-24T04:40:09");
    }

    /// A drain that formats into a buffer, as the shared one does.
    struct Capture {
        format: Format,
        fixed: Vec<u8>,
        out: std::sync::Mutex<(Vec<u8>, Clock)>,
    }

    impl slog::Drain for Capture {
        type Ok = ();
        type Err = slog::Never;

        fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
            let mut guard = self.out.lock().unwrap();
            let (out, clock) = &mut *guard;
            write_record(out, clock, self.format, record, values, &self.fixed);
            Ok(())
        }
    }

    /// One record with `msg` as its message and `value` as a context value, a `&str` value and
    /// a `Display` value; returns the formatted bytes.
    fn format_one(format: Format, msg: &str, value: &str) -> String {
        let capture = std::sync::Arc::new(Capture {
            format,
            fixed: fixed_fields(format, &[("app", "go_example")]),
            out: std::sync::Mutex::new((Vec::new(), Clock::default())),
        });
        let logger = slog::Logger::root(
            slog::Drain::fuse(std::sync::Arc::clone(&capture)),
            slog::o!("env" => value.to_owned()),
        );
        slog::info!(logger, "{}", msg; "user" => value, "shown" => %value, "n" => 7u64);
        slog::info!(logger, "static message"; "user" => value);
        drop(logger);
        let out = std::mem::take(&mut capture.out.lock().unwrap().0);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_values_and_messages_cannot_forge_records() {
        let text = format_one(
            Format::Text,
            "login failed for alice\nINFO fake record",
            "alice\r\nINFO admin logged in\t\u{1b}[31m\u{7f}\u{85}",
        );
        assert_eq!(
            text.matches('\n').count(),
            2,
            "two records, two lines: {text}"
        );
        assert!(!text.contains('\r'), "{text}");
        let first = text.lines().next().unwrap();
        let escaped = "alice\\r\\nINFO admin logged in\\t\\u{1b}[31m\\u{7f}\\u{85}";
        // slog serialises a record's values last to first, then the logger's.
        let expected = format!(
            " INFO login failed for alice\\nINFO fake record, n: 7, shown: {escaped}, user: {escaped}, env: {escaped}, app: go_example"
        );
        assert!(first.ends_with(&expected), "{first}");
        // Plain text, non-ASCII included, is copied unchanged.
        let plain = format_one(Format::Text, "héllo ©", "bob é");
        assert!(
            plain.lines().next().unwrap().ends_with(
                " INFO héllo ©, n: 7, shown: bob é, user: bob é, env: bob é, app: go_example"
            ),
            "{plain}"
        );
    }

    #[test]
    fn json_records_stay_on_one_line() {
        let json = format_one(Format::Json, "a\nb", "c\r\nd");
        assert_eq!(json.matches('\n').count(), 2, "{json}");
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["msg"], "a\nb");
        assert_eq!(first["user"], "c\r\nd");
        assert_eq!(first["app"], "go_example");
    }

    proptest::proptest! {
        #[test]
        fn no_text_record_holds_a_raw_line_break_or_control(msg in "\\PC*|.*[\\x00-\\x1f\\x7f-\\u{9f}\\u{2028}].*", value in proptest::prelude::any::<String>()) {
            let text = format_one(Format::Text, &msg, &value);
            proptest::prop_assert!(text.ends_with('\n'));
            proptest::prop_assert_eq!(text.matches('\n').count(), 2, "{}", text);
            proptest::prop_assert!(!text.contains('\r'));
            let records: Vec<&str> = text.split_terminator('\n').collect();
            for record in records {
                proptest::prop_assert!(!record.chars().any(char::is_control), "{:?}", record);
            }
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
    }
}
