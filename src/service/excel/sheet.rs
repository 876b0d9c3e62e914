//! Reading an uploaded workbook without trusting it: the zip directory is held to the limits
//! before anything is unpacked, then the first sheet is streamed cell by cell (calamine's cell
//! reader: one row in memory, never the whole sheet), its columns found by their header.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};

use calamine::{DataRef, Reader, Xlsx};
use chrono::NaiveDateTime;

use crate::meta::config::ExcelConfig;

/// Zip-bomb limits (`excel.max_zip_entries`, `max_unpacked_size`, `max_compression_ratio`).
#[derive(Clone, Copy, Debug)]
pub struct ZipLimits {
    /// Entries at most.
    pub max_entries: usize,
    /// Unpacked bytes at most, all entries together.
    pub max_unpacked: u64,
    /// Unpacked/packed ratio at most, for entries over [`RATIO_FLOOR`] unpacked.
    pub max_ratio: u64,
    /// Unpacked bytes of `xl/sharedStrings.xml` at most: calamine holds every shared string in
    /// memory (about three times its XML).
    pub max_shared_strings: u64,
}

impl ZipLimits {
    /// The limits `excel.max_zip_entries`, `max_unpacked_size`, `max_compression_ratio` and
    /// `max_shared_strings_size` say.
    pub fn of(excel: &ExcelConfig) -> Self {
        ZipLimits {
            max_entries: excel.max_zip_entries,
            max_unpacked: excel.max_unpacked_size,
            max_ratio: excel.max_compression_ratio,
            max_shared_strings: excel.max_shared_strings_size,
        }
    }
}

/// Entries smaller than this unpacked are not held to the ratio: a few kilobytes of repeated
/// XML compress far, and cannot hurt.
pub const RATIO_FLOOR: u64 = 1 << 20;

/// Why a file cannot be read as a users sheet: 400 / 30002.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    /// Not a zip, or a zip without a workbook.
    #[error("not an xlsx workbook ({0})")]
    NotXlsx(String),
    /// The zip directory breaks a limit.
    #[error("{0}")]
    TooLarge(String),
    /// The header row lacks a required column or repeats one.
    #[error("bad header: {0}")]
    Header(String),
    /// The workbook's XML could not be read.
    #[error("unreadable workbook ({0})")]
    Unreadable(String),
}

/// The columns an import knows, by their header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// 用户Id: read, never used (ids are the database's).
    Id,
    /// 用户名 (required).
    Username,
    /// 密码.
    Password,
    /// 性别 (required).
    Gender,
    /// 创建时间.
    CreatedAt,
}

impl Column {
    /// Every column, in the export's order.
    pub const ALL: [Column; 5] = [
        Column::Id,
        Column::Username,
        Column::Password,
        Column::Gender,
        Column::CreatedAt,
    ];

    /// The header text (the original's names).
    pub fn header(self) -> &'static str {
        match self {
            Column::Id => "用户Id",
            Column::Username => "用户名",
            Column::Password => "密码",
            Column::Gender => "性别",
            Column::CreatedAt => "创建时间",
        }
    }

    /// The English header accepted for it too.
    fn english(self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::Username => "username",
            Column::Password => "password",
            Column::Gender => "gender",
            Column::CreatedAt => "created_at",
        }
    }

    fn of_header(text: &str) -> Option<Column> {
        let text = text.trim();
        Column::ALL
            .into_iter()
            .find(|c| c.header() == text || c.english().eq_ignore_ascii_case(text))
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A cell's value, owned, as the import reads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    /// No cell, or an empty one.
    #[default]
    Empty,
    /// Text (shared, inline or a formula's string result).
    Text(String),
    /// A number (Excel stores them as doubles).
    Number(f64),
    /// A true/false cell.
    Bool(bool),
    /// A date-formatted number or an ISO date, as a date-time.
    DateTime(NaiveDateTime),
    /// A date that cannot be a date (out of range).
    BadDate,
    /// An error cell (`#N/A`, ...).
    Error(String),
}

/// A data row: its number as a spreadsheet shows it, and its known columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// 1-based.
    pub number: u32,
    values: [Value; 5],
}

impl Row {
    /// The value under `column` (empty when the sheet has no such column).
    pub fn get(&self, column: Column) -> &Value {
        &self.values[column.index()]
    }

    /// Takes the value under `column`.
    pub fn take(&mut self, column: Column) -> Value {
        std::mem::take(&mut self.values[column.index()])
    }

    /// A row holding `values` (for tests and callers that build rows themselves).
    pub fn with(number: u32, values: impl IntoIterator<Item = (Column, Value)>) -> Row {
        let mut row = Row {
            number,
            ..Row::default()
        };
        for (column, value) in values {
            row.values[column.index()] = value;
        }
        row
    }

    /// No value, or only empty or white-space text (a formula answering `""` included).
    fn is_blank(&self) -> bool {
        self.values.iter().all(|v| match v {
            Value::Empty => true,
            Value::Text(t) => t.trim().is_empty(),
            _ => false,
        })
    }
}

/// Holds the zip directory of `file` to `limits`: entry count, declared unpacked size (the zip
/// reader then fails any entry that unpacks to more than it declares) and ratio. Nothing is
/// unpacked.
///
/// # Errors
/// [`SheetError::NotXlsx`] or [`SheetError::TooLarge`].
pub fn check_zip(file: &mut File, limits: ZipLimits) -> Result<(), SheetError> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| SheetError::Unreadable(e.to_string()))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(&mut *file))
        .map_err(|e| SheetError::NotXlsx(e.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(SheetError::TooLarge(format!(
            "{} zip entries, more than excel.max_zip_entries ({})",
            archive.len(),
            limits.max_entries
        )));
    }
    let mut total: u64 = 0;
    let mut has_workbook = false;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| SheetError::NotXlsx(e.to_string()))?;
        let (unpacked, packed) = (entry.size(), entry.compressed_size());
        has_workbook |= entry.name().is_ok_and(|n| n == "xl/workbook.xml");
        total = total.saturating_add(unpacked);
        if total > limits.max_unpacked {
            return Err(SheetError::TooLarge(format!(
                "unpacks to more than excel.max_unpacked_size ({} bytes)",
                limits.max_unpacked
            )));
        }
        if unpacked > RATIO_FLOOR && unpacked / packed.max(1) > limits.max_ratio {
            return Err(SheetError::TooLarge(format!(
                "an entry unpacks {}-fold, more than excel.max_compression_ratio ({})",
                unpacked / packed.max(1),
                limits.max_ratio
            )));
        }
    }
    if !has_workbook {
        return Err(SheetError::NotXlsx("no xl/workbook.xml".into()));
    }
    check_shared_strings(&mut archive, limits.max_shared_strings)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| SheetError::Unreadable(e.to_string()))?;
    Ok(())
}

/// The fewest bytes of XML one shared string takes (`<si><t/></si>`).
const MIN_SHARED_STRING_XML: u64 = 13;

/// Bytes of `xl/sharedStrings.xml` read to find its `<sst>` tag.
const SST_HEAD: u64 = 64 * 1024;

/// calamine reserves room for the `<sst>` tag's `uniqueCount` strings before reading one: a
/// 5 KB file announcing 10^12 strings aborts the process (an allocation failure is not a panic
/// that `catch_unwind` sees). That count is held to what the entry's size can hold. `count` is
/// not: it counts the cells that use a shared string, so a sheet repeating a few values (a
/// gender column) announces far more than the entry holds, and calamine reserves nothing for
/// it.
fn check_shared_strings<R: std::io::Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    max_size: u64,
) -> Result<(), SheetError> {
    use std::io::Read;
    let Ok(entry) = archive.by_name("xl/sharedStrings.xml") else {
        return Ok(());
    };
    if entry.size() > max_size {
        return Err(SheetError::TooLarge(format!(
            "xl/sharedStrings.xml unpacks to more than excel.max_shared_strings_size ({max_size} bytes)"
        )));
    }
    let most = entry.size() / MIN_SHARED_STRING_XML + 1;
    let mut head = Vec::new();
    entry
        .take(SST_HEAD)
        .read_to_end(&mut head)
        .map_err(|e| SheetError::Unreadable(format!("xl/sharedStrings.xml: {e}")))?;
    let head = String::from_utf8_lossy(&head);
    let Some(start) = head.find("<sst") else {
        return Ok(());
    };
    let tag = &head[start..];
    let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
    if let Some(value) = attribute(tag, "uniqueCount") {
        match value.trim().parse::<u64>() {
            Ok(n) if n <= most => {}
            _ => {
                return Err(SheetError::TooLarge(format!(
                    "xl/sharedStrings.xml announces uniqueCount={value}, more strings than it can hold"
                )));
            }
        }
    }
    Ok(())
}

/// The value of attribute `name` in the start tag `tag` (either quote).
fn attribute<'t>(tag: &'t str, name: &str) -> Option<&'t str> {
    let mut rest = tag;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + name.len()..].trim_start();
        rest = &rest[at + name.len()..];
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start();
        let quote = after.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let value = &after[1..];
        return value.find(quote).map(|end| &value[..end]);
    }
    None
}

/// What [`read_rows`] was told by its callback.
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop reading (the caller has what it needs, or gave up).
    Stop,
}

/// Reads the first sheet of the checked workbook `file`: the first non-blank row is the header
/// (用户名 and 性别 required, 用户Id, 密码 and 创建时间 optional, in any order; other columns
/// ignored), and every later non-blank row goes to `on_row` with its cells mapped by header.
///
/// # Errors
/// [`SheetError`] for a file that is not a workbook, has no sheet, or has a bad header;
/// `on_row`'s own errors as `Err(Ok(e))`... see [`ReadError`].
pub fn read_rows<E>(
    file: File,
    mut on_row: impl FnMut(Row) -> Result<Flow, E>,
) -> Result<(), ReadError<E>> {
    let unreadable =
        |e: calamine::XlsxError| ReadError::Sheet(SheetError::Unreadable(e.to_string()));
    let mut workbook: Xlsx<_> = Xlsx::new(BufReader::new(file))
        .map_err(|e| ReadError::Sheet(SheetError::NotXlsx(e.to_string())))?;
    let first = workbook
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| ReadError::Sheet(SheetError::NotXlsx("no sheet".into())))?;
    let mut cells = workbook
        .worksheet_cells_reader(&first)
        .map_err(unreadable)?;
    // Columns of the sheet (0-based) to ours, once the header is read.
    let mut columns: Option<Vec<(u32, Column)>> = None;
    let mut header_cells: Vec<(u32, String)> = Vec::new();
    let mut current: Option<u32> = None;
    let mut row = Row::default();
    loop {
        let cell = cells.next_cell().map_err(unreadable)?;
        let position = cell.as_ref().map(|c| c.get_position());
        // A new row (or the end) finishes the one being read.
        if position.map(|(r, _)| r) != current
            && let Some(done) = current.take()
        {
            match &columns {
                None => {
                    if !header_cells.is_empty() {
                        columns = Some(header(&header_cells).map_err(ReadError::Sheet)?);
                    }
                }
                Some(_) => {
                    let finished = std::mem::take(&mut row);
                    if !finished.is_blank() {
                        let mut finished = finished;
                        finished.number = done + 1;
                        if let Flow::Stop = on_row(finished).map_err(ReadError::Row)? {
                            return Ok(());
                        }
                    }
                }
            }
        }
        let Some(cell) = cell else { break };
        let (r, c) = cell.get_position();
        current = Some(r);
        match &columns {
            None => {
                if let Some(text) = header_text(cell.get_value()) {
                    header_cells.push((c, text));
                }
            }
            Some(columns) => {
                if let Some((_, column)) = columns.iter().find(|(at, _)| *at == c) {
                    row.values[column.index()] = value_of(cell.get_value());
                }
            }
        }
    }
    if columns.is_none() {
        return Err(ReadError::Sheet(SheetError::Header(
            "the first sheet is empty".into(),
        )));
    }
    Ok(())
}

/// [`read_rows`]'s failure: the sheet's, or the callback's.
#[derive(Debug)]
pub enum ReadError<E> {
    /// The file.
    Sheet(SheetError),
    /// The callback.
    Row(E),
}

/// The text of a header cell (numbers included: a header may be anything), or `None` if empty.
fn header_text(value: &DataRef<'_>) -> Option<String> {
    match value_of(value) {
        Value::Empty => None,
        Value::Text(t) if t.trim().is_empty() => None,
        Value::Text(t) => Some(t),
        Value::Number(n) => Some(number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        Value::DateTime(d) => Some(d.to_string()),
        Value::BadDate | Value::Error(_) => Some(String::from("#")),
    }
}

/// Maps the header's cells to columns.
fn header(cells: &[(u32, String)]) -> Result<Vec<(u32, Column)>, SheetError> {
    let mut columns: Vec<(u32, Column)> = Vec::new();
    for (at, text) in cells {
        if let Some(column) = Column::of_header(text) {
            if columns.iter().any(|(_, c)| *c == column) {
                return Err(SheetError::Header(format!(
                    "column {} appears twice",
                    column.header()
                )));
            }
            columns.push((*at, column));
        }
    }
    let missing: Vec<&str> = [Column::Username, Column::Gender]
        .into_iter()
        .filter(|c| !columns.iter().any(|(_, have)| have == c))
        .map(Column::header)
        .collect();
    if !missing.is_empty() {
        return Err(SheetError::Header(format!(
            "missing column {} (the header needs 用户名 and 性别; 用户Id, 密码 and 创建时间 \
             are optional)",
            missing.join(", ")
        )));
    }
    Ok(columns)
}

/// Excel's largest date, 9999-12-31, as a serial number.
const MAX_SERIAL_DATE: f64 = 2_958_465.0;

fn value_of(value: &DataRef<'_>) -> Value {
    match value {
        DataRef::Empty => Value::Empty,
        DataRef::String(s) => Value::Text(s.clone()),
        DataRef::SharedString(s) => Value::Text((*s).to_owned()),
        DataRef::Int(i) => Value::Number(*i as f64),
        DataRef::Float(f) => Value::Number(*f),
        DataRef::Bool(b) => Value::Bool(*b),
        DataRef::DateTime(d) => {
            // calamine's conversion panics far outside Excel's range: checked first.
            let serial = d.as_f64();
            if !(0.0..=MAX_SERIAL_DATE + 1.0).contains(&serial) || d.is_duration() {
                return Value::BadDate;
            }
            d.as_datetime().map_or(Value::BadDate, Value::DateTime)
        }
        DataRef::DateTimeIso(s) => parse_date_time(s).map_or(Value::BadDate, Value::DateTime),
        DataRef::DurationIso(_) => Value::BadDate,
        DataRef::Error(e) => Value::Error(e.to_string()),
    }
}

/// A number as a person would type it: integers without `.0`.
pub fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// A date-time written as text: `2026-01-02 03:04:05` (seconds optional, fractions allowed),
/// `2026-01-02T03:04:05`, or a day `2026-01-02` (midnight); `/` works for `-`.
pub fn parse_date_time(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim().replace('/', "-");
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&text, format) {
            return Some(t);
        }
    }
    chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(chrono::NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_map_by_name_in_any_order() {
        let cells = |names: &[&str]| -> Vec<(u32, String)> {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (i as u32 + 3, (*n).to_owned()))
                .collect()
        };
        let columns = header(&cells(&["性别", "备注", " 用户名 ", "用户Id"])).unwrap();
        assert_eq!(
            columns,
            vec![(3, Column::Gender), (5, Column::Username), (6, Column::Id)]
        );
        let columns = header(&cells(&["Username", "GENDER", "password"])).unwrap();
        assert_eq!(columns.len(), 3);
        let e = header(&cells(&["用户名", "密码"])).unwrap_err().to_string();
        assert!(e.contains("missing column 性别"), "{e}");
        let e = header(&cells(&["用户名", "性别", "username"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("用户名 appears twice"), "{e}");
    }

    #[test]
    fn dates_written_as_text() {
        let t = |s: &str| parse_date_time(s).map(|d| d.to_string());
        assert_eq!(
            t("2026-01-02 03:04:05").as_deref(),
            Some("2026-01-02 03:04:05")
        );
        assert_eq!(t("2026/01/02").as_deref(), Some("2026-01-02 00:00:00"));
        assert_eq!(
            t("2026-01-02T03:04").as_deref(),
            Some("2026-01-02 03:04:00")
        );
        assert_eq!(t("02.01.2026"), None);
        assert_eq!(t("2026-13-01"), None);
    }

    #[test]
    fn dates_far_outside_excels_range_are_bad_dates_not_panics() {
        use calamine::{ExcelDateTime, ExcelDateTimeType};
        let date = |serial: f64| {
            value_of(&DataRef::DateTime(ExcelDateTime::new(
                serial,
                ExcelDateTimeType::DateTime,
                false,
            )))
        };
        // calamine's own conversion panics on these (a TimeDelta out of bounds).
        for serial in [-1e300, 1e300, f64::NAN, f64::NEG_INFINITY, -1.0] {
            assert_eq!(date(serial), Value::BadDate, "{serial}");
        }
        assert_eq!(
            date(45720.5),
            Value::DateTime(parse_date_time("2025-03-04 12:00:00").unwrap())
        );
    }

    #[test]
    fn numbers_read_as_typed() {
        assert_eq!(number_text(123456.0), "123456");
        assert_eq!(number_text(1.5), "1.5");
        assert_eq!(number_text(-3.0), "-3");
    }
}

#[cfg(test)]
mod zip_tests {
    use std::io::Write;

    use super::*;

    /// A workbook with one user, plus `extra` entries of `size` zero bytes each.
    fn workbook(extra: usize, size: usize) -> File {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "用户名").unwrap();
        sheet.write_string(0, 1, "性别").unwrap();
        sheet.write_string(1, 0, "someone1").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let mut out = zip::ZipWriter::new_append(std::io::Cursor::new(bytes)).unwrap();
        for i in 0..extra {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            out.start_file(format!("extra/{i}.bin"), options).unwrap();
            out.write_all(&vec![0u8; size]).unwrap();
        }
        let bytes = out.finish().unwrap().into_inner();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        file
    }

    const ROOMY: ZipLimits = ZipLimits {
        max_entries: 1000,
        max_unpacked: 1 << 30,
        max_ratio: 10_000,
        max_shared_strings: 1 << 30,
    };

    #[test]
    fn each_zip_limit_is_held_before_anything_is_unpacked() {
        assert!(check_zip(&mut workbook(5, 10), ROOMY).is_ok());
        let entries = ZipLimits {
            max_entries: 12,
            ..ROOMY
        };
        let e = check_zip(&mut workbook(5, 10), entries)
            .unwrap_err()
            .to_string();
        assert!(e.contains("excel.max_zip_entries"), "{e}");
        let unpacked = ZipLimits {
            max_unpacked: 100_000,
            ..ROOMY
        };
        assert!(check_zip(&mut workbook(3, 20_000), unpacked).is_ok());
        let e = check_zip(&mut workbook(6, 20_000), unpacked)
            .unwrap_err()
            .to_string();
        assert!(e.contains("excel.max_unpacked_size"), "{e}");
        let ratio = ZipLimits {
            max_ratio: 50,
            ..ROOMY
        };
        // Zeros deflate about a thousandfold; under RATIO_FLOOR they are let be.
        assert!(check_zip(&mut workbook(1, 1 << 19), ratio).is_ok());
        let e = check_zip(&mut workbook(1, 2 << 20), ratio)
            .unwrap_err()
            .to_string();
        assert!(e.contains("excel.max_compression_ratio"), "{e}");
    }

    /// A real workbook with its sharedStrings.xml's `<sst>` tag rewritten.
    fn with_sst_tag(tag: &str) -> File {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "用户名").unwrap();
        sheet.write_string(0, 1, "性别").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let mut source = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for i in 0..source.len() {
            let name = source.by_index_raw(i).unwrap().name().unwrap().into_owned();
            if name == "xl/sharedStrings.xml" {
                out.start_file(name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                let xml = format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?>{tag}<si><t>用户名</t></si><si><t>性别</t></si></sst>"#
                );
                out.write_all(xml.as_bytes()).unwrap();
            } else {
                out.raw_copy_file(source.by_index_raw(i).unwrap()).unwrap();
            }
        }
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&out.finish().unwrap().into_inner()).unwrap();
        file
    }

    #[test]
    fn shared_string_counts_past_what_the_entry_holds_are_refused() {
        let ns = r#"xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main""#;
        let ok = format!(r#"<sst {ns} count="2" uniqueCount='2'>"#);
        assert!(check_zip(&mut with_sst_tag(&ok), ROOMY).is_ok());
        // `count` is the cells that use the strings: a column repeating one value makes it
        // larger than the entry holds, and calamine reserves nothing for it.
        let repeated = format!(r#"<sst {ns} count="802" uniqueCount="2">"#);
        assert!(check_zip(&mut with_sst_tag(&repeated), ROOMY).is_ok());
        // calamine would reserve 48 TB for this one and abort the process.
        for tag in [
            format!(r#"<sst {ns} count="2" uniqueCount="2000000000000">"#),
            format!(r#"<sst {ns} uniqueCount = '99999999999999999999999'>"#),
            format!(r#"<sst {ns} uniqueCount="-1">"#),
        ] {
            let e = check_zip(&mut with_sst_tag(&tag), ROOMY).unwrap_err();
            assert!(matches!(e, SheetError::TooLarge(_)), "{tag}: {e}");
        }
        assert_eq!(
            attribute(r#"<sst xcount="5" count="7""#, "count"),
            Some("7")
        );
        let small = ZipLimits {
            max_shared_strings: 100,
            ..ROOMY
        };
        let e = check_zip(&mut with_sst_tag(&ok), small)
            .unwrap_err()
            .to_string();
        assert!(e.contains("excel.max_shared_strings_size"), "{e}");
    }

    #[test]
    fn a_zip_without_a_workbook_is_not_xlsx() {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        out.start_file("hello.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        let bytes = out.finish().unwrap().into_inner();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let e = check_zip(&mut file, ROOMY).unwrap_err();
        assert!(matches!(e, SheetError::NotXlsx(_)), "{e}");
    }
}
