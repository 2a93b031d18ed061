//! CSV loading: separator detection, quoted fields, header detection, line
//! numbers, and the rules for skipping unusable rows.
//!
//! The last column is the label and every other column is a numeric feature.
//! Line numbers are 1-based physical lines of the file, where `\n`, `\r\n`
//! and a bare `\r` each end a line.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};

/// Maximum number of skip reasons kept for display; line numbers are all kept.
const MAX_SKIP_REASONS: usize = 20;

/// A parsed CSV file: features of the usable rows, their labels, and what was
/// skipped.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Feature column names, from the header or `x1`, `x2`, ... without one.
    pub feature_names: Vec<String>,
    /// Label column name, from the header or `label` without one.
    pub label_name: String,
    /// Row-major feature values, `rows() * feature_count()` finite numbers.
    pub features: Vec<f64>,
    /// Labels of the usable rows, in file order.
    pub labels: LabelColumn,
    /// Physical line numbers of the skipped data rows, ascending.
    pub skipped_lines: Vec<usize>,
    /// Skip reasons of the first `MAX_SKIP_REASONS` skipped rows.
    pub skip_reasons: Vec<String>,
    /// Field separator that was detected.
    pub separator: u8,
    /// Whether the first row was taken as a header.
    pub has_header: bool,
}

/// Label cells of the usable rows.
///
/// A cell that parses as a finite number goes to `numbers`, and its
/// `text_ids` entry is `NUMERIC_LABEL`. Any other cell is an index into
/// `texts`, and its `numbers` entry is NaN.
#[derive(Debug, Clone, Default)]
pub struct LabelColumn {
    pub numbers: Vec<f64>,
    pub text_ids: Vec<u32>,
    pub texts: Vec<String>,
}

/// Marker in `LabelColumn::text_ids` for a numeric label.
pub const NUMERIC_LABEL: u32 = u32::MAX;

impl LabelColumn {
    /// Returns the number of labels, one per usable row.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Returns true when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// Returns true when at least one label is text rather than a number.
    pub fn has_text(&self) -> bool {
        !self.texts.is_empty()
    }

    /// Returns the label of row `row` as text; numbers use their shortest
    /// decimal form, so `1.0` becomes `1`.
    pub fn text_of(&self, row: usize) -> String {
        match self.text_ids[row] {
            NUMERIC_LABEL => format_number(self.numbers[row]),
            id => self.texts[id as usize].clone(),
        }
    }
}

/// Formats a label number in its shortest decimal form (`1`, `2.5`).
pub fn format_number(value: f64) -> String {
    format!("{value}")
}

impl Dataset {
    /// Returns the number of usable rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Returns the number of feature columns.
    pub fn feature_count(&self) -> usize {
        self.feature_names.len()
    }

    /// Returns the features of one usable row.
    pub fn row(&self, index: usize) -> &[f64] {
        let width = self.feature_count();
        &self.features[index * width..(index + 1) * width]
    }
}

/// Reads and parses a CSV file.
pub fn load_csv(path: &Path) -> Result<Dataset> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    parse_csv(&bytes).map_err(|e| match e {
        Error::InvalidCsv(message) => Error::InvalidCsv(format!("{}: {message}", path.display())),
        other => other,
    })
}

/// Parses CSV bytes into a dataset.
pub fn parse_csv(bytes: &[u8]) -> Result<Dataset> {
    let text = decode_utf8(bytes)?;
    if text.trim().is_empty() {
        return Err(Error::InvalidCsv(
            "empty file: no header and no data rows".to_string(),
        ));
    }

    let separator = detect_separator(text);
    let mut reader = RecordReader::new(text, separator);
    let mut record = Record::default();
    let first_line = match next_nonblank(&mut reader, &mut record)? {
        Some(line) => line,
        None => unreachable!("a file with non-whitespace text has a record"),
    };

    let columns = record.len();
    if columns < 2 {
        return Err(Error::InvalidCsv(format!(
            "needs at least one feature column: line {first_line} has only one column, \
             and the last column is the label"
        )));
    }

    let mut builder = Builder::new(columns, separator);
    let has_header = builder.is_header(&record, &mut reader.clone())?;
    let (feature_names, label_name) = if has_header {
        let names: Vec<String> = (0..columns)
            .map(|i| record.field(i).trim().to_string())
            .collect();
        (names[..columns - 1].to_vec(), names[columns - 1].clone())
    } else {
        let names = (1..columns).map(|i| format!("x{i}")).collect();
        (names, "label".to_string())
    };

    builder.column_names = feature_names.iter().map(|n| format!("'{n}'")).collect();
    if !has_header {
        builder.add_row(first_line, &record);
    }
    let mut data_rows = usize::from(!has_header);
    while let Some(line) = next_nonblank(&mut reader, &mut record)? {
        data_rows += 1;
        builder.add_row(line, &record);
    }

    if data_rows == 0 {
        return Err(Error::InvalidCsv(format!(
            "no data rows: the file has a header at line {first_line} and no rows after it"
        )));
    }
    if builder.labels.is_empty() {
        return Err(Error::InvalidCsv(format!(
            "no usable row: all {data_rows} data rows were skipped (lines {}); first problem: {}",
            summarize_lines(&builder.skipped_lines),
            builder
                .skip_reasons
                .first()
                .map(String::as_str)
                .unwrap_or(""),
        )));
    }

    Ok(Dataset {
        feature_names,
        label_name,
        features: builder.features,
        labels: builder.labels,
        skipped_lines: builder.skipped_lines,
        skip_reasons: builder.skip_reasons,
        separator,
        has_header,
    })
}

/// Lists up to ten line numbers, then how many more there are.
pub fn summarize_lines(lines: &[usize]) -> String {
    let listed: Vec<String> = lines.iter().take(10).map(|l| l.to_string()).collect();
    let mut text = listed.join(", ");
    if lines.len() > 10 {
        text.push_str(&format!(" and {} more", lines.len() - 10));
    }
    text
}

/// Decodes UTF-8 and drops a leading byte-order mark.
fn decode_utf8(bytes: &[u8]) -> Result<&str> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = count_lines(&bytes[..e.valid_up_to()]) + 1;
        Error::InvalidCsv(format!(
            "invalid UTF-8 at line {line}; save the file as UTF-8"
        ))
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Counts line terminators (`\n`, `\r\n`, bare `\r`) in `bytes`.
fn count_lines(bytes: &[u8]) -> usize {
    let mut count = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let crlf = b == b'\r' && bytes.get(i + 1) == Some(&b'\n');
        if b == b'\n' || (b == b'\r' && !crlf) {
            count += 1;
        }
    }
    count
}

/// Picks the separator from the first non-blank line, outside quotes: a tab
/// if there is one, else `;` if there is one, else `,`.
///
/// `;` wins over `,` because a `;` file with decimal commas contains both,
/// while a `,` file rarely contains `;`.
fn detect_separator(text: &str) -> u8 {
    let line = text
        .split(['\n', '\r'])
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let mut in_quotes = false;
    let (mut tabs, mut semicolons) = (0, 0);
    for b in line.bytes() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\t' if !in_quotes => tabs += 1,
            b';' if !in_quotes => semicolons += 1,
            _ => {}
        }
    }
    if tabs > 0 {
        b'\t'
    } else if semicolons > 0 {
        b';'
    } else {
        b','
    }
}

/// Reads records until one that is not blank; returns its line number.
fn next_nonblank(reader: &mut RecordReader, record: &mut Record) -> Result<Option<usize>> {
    while let Some(line) = reader.next_record(record)? {
        if !record.is_blank() {
            return Ok(Some(line));
        }
    }
    Ok(None)
}

/// Fields of one record, stored in one reused buffer.
#[derive(Debug, Default)]
struct Record {
    buffer: String,
    ends: Vec<usize>,
}

impl Record {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn field(&self, index: usize) -> &str {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.buffer[start..self.ends[index]]
    }

    fn is_blank(&self) -> bool {
        self.len() == 1 && self.field(0).trim().is_empty()
    }

    fn clear(&mut self) {
        self.buffer.clear();
        self.ends.clear();
    }
}

/// Splits text into records, handling quotes and counting physical lines.
#[derive(Clone)]
struct RecordReader<'a> {
    text: &'a str,
    position: usize,
    /// Physical line number of the byte at `position`, 1-based.
    line: usize,
    separator: u8,
}

impl<'a> RecordReader<'a> {
    fn new(text: &'a str, separator: u8) -> Self {
        RecordReader {
            text,
            position: 0,
            line: 1,
            separator,
        }
    }

    /// Reads the next record into `record`; returns the line it starts on.
    fn next_record(&mut self, record: &mut Record) -> Result<Option<usize>> {
        if self.position >= self.text.len() {
            return Ok(None);
        }
        record.clear();
        let start_line = self.line;
        loop {
            let ended_line = self.read_field(record)?;
            record.ends.push(record.buffer.len());
            if ended_line {
                return Ok(Some(start_line));
            }
        }
    }

    /// Appends one field to the record's buffer. Returns true when the field
    /// ended the record (end of line or end of file).
    fn read_field(&mut self, record: &mut Record) -> Result<bool> {
        let bytes = self.text.as_bytes();
        let start_line = self.line;
        let mut in_quotes = false;
        let mut chunk_start = self.position;
        let first_content = bytes[self.position..]
            .iter()
            .position(|&b| b != b' ' && b != b'\t' || b == self.separator)
            .map(|offset| self.position + offset);
        if let Some(at) = first_content {
            if bytes[at] == b'"' {
                in_quotes = true;
                self.position = at + 1;
                chunk_start = self.position;
            }
        }

        while self.position < bytes.len() {
            let b = bytes[self.position];
            if in_quotes {
                match b {
                    b'"' if bytes.get(self.position + 1) == Some(&b'"') => {
                        record
                            .buffer
                            .push_str(&self.text[chunk_start..=self.position]);
                        self.position += 2;
                        chunk_start = self.position;
                    }
                    b'"' => {
                        record
                            .buffer
                            .push_str(&self.text[chunk_start..self.position]);
                        in_quotes = false;
                        self.position += 1;
                        chunk_start = self.position;
                    }
                    b'\n' | b'\r' => {
                        self.consume_line_end();
                    }
                    _ => self.position += 1,
                }
                continue;
            }
            if b == self.separator {
                record
                    .buffer
                    .push_str(&self.text[chunk_start..self.position]);
                self.position += 1;
                return Ok(false);
            }
            if b == b'\n' || b == b'\r' {
                record
                    .buffer
                    .push_str(&self.text[chunk_start..self.position]);
                self.consume_line_end();
                return Ok(true);
            }
            self.position += 1;
        }

        if in_quotes {
            return Err(Error::InvalidCsv(format!(
                "line {start_line}: quoted field has no closing quote"
            )));
        }
        record
            .buffer
            .push_str(&self.text[chunk_start..self.position]);
        Ok(true)
    }

    /// Steps over `\n`, `\r\n` or `\r` at the current position.
    fn consume_line_end(&mut self) {
        let bytes = self.text.as_bytes();
        if bytes[self.position] == b'\r' && bytes.get(self.position + 1) == Some(&b'\n') {
            self.position += 1;
        }
        self.position += 1;
        self.line += 1;
    }
}

/// Collects usable rows and skipped line numbers.
struct Builder {
    columns: usize,
    separator: u8,
    features: Vec<f64>,
    labels: LabelColumn,
    text_index: HashMap<String, u32>,
    skipped_lines: Vec<usize>,
    skip_reasons: Vec<String>,
    /// Scratch buffer for rewriting a decimal comma to a point.
    number_buffer: String,
    /// Feature column names as skip reasons quote them.
    column_names: Vec<String>,
}

/// Result of reading a cell as a number.
enum Cell {
    Number(f64),
    Empty,
    NotFinite,
    Text,
}

impl Builder {
    fn new(columns: usize, separator: u8) -> Self {
        Builder {
            columns,
            separator,
            features: Vec::new(),
            labels: LabelColumn::default(),
            text_index: HashMap::new(),
            skipped_lines: Vec::new(),
            skip_reasons: Vec::new(),
            number_buffer: String::new(),
            column_names: Vec::new(),
        }
    }

    /// Decides whether the first record is a header.
    ///
    /// It is one when a feature cell is text. When only the label cell is
    /// text, it is a header only if the next record's label is a number, so
    /// that a file of text labels without a header keeps its first row.
    fn is_header(&mut self, first: &Record, rest: &mut RecordReader) -> Result<bool> {
        let feature_is_text =
            (0..self.columns - 1).any(|i| matches!(self.classify_cell(first.field(i)), Cell::Text));
        if feature_is_text {
            return Ok(true);
        }
        if !matches!(
            self.classify_cell(first.field(self.columns - 1)),
            Cell::Text
        ) {
            return Ok(false);
        }

        let mut next = Record::default();
        match next_nonblank(rest, &mut next)? {
            Some(_) if next.len() == self.columns => {
                let label = next.field(self.columns - 1);
                Ok(matches!(self.classify_cell(label), Cell::Number(_)))
            }
            _ => Ok(true),
        }
    }

    /// Adds a data row, or records why it was skipped.
    fn add_row(&mut self, line: usize, record: &Record) {
        if record.len() != self.columns {
            let reason = format!(
                "line {line}: has {} fields, expected {}",
                record.len(),
                self.columns
            );
            self.skip(line, reason);
            return;
        }

        let row_start = self.features.len();
        for i in 0..self.columns - 1 {
            let cell = record.field(i);
            match self.classify_cell(cell) {
                Cell::Number(value) => self.features.push(value),
                other => {
                    self.features.truncate(row_start);
                    let column = &self.column_names[i];
                    let reason =
                        format!("line {line}: column {column}: {}", describe(&other, cell));
                    self.skip(line, reason);
                    return;
                }
            }
        }

        let label = record.field(self.columns - 1);
        match self.classify_cell(label) {
            Cell::Number(value) => {
                self.labels.numbers.push(value);
                self.labels.text_ids.push(NUMERIC_LABEL);
            }
            Cell::Text => {
                let id = self.intern(label.trim());
                self.labels.numbers.push(f64::NAN);
                self.labels.text_ids.push(id);
            }
            other => {
                self.features.truncate(row_start);
                let reason = format!("line {line}: label: {}", describe(&other, label));
                self.skip(line, reason);
            }
        }
    }

    fn skip(&mut self, line: usize, reason: String) {
        self.skipped_lines.push(line);
        if self.skip_reasons.len() < MAX_SKIP_REASONS {
            self.skip_reasons.push(reason);
        }
    }

    fn intern(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.text_index.get(text) {
            return id;
        }
        let id = self.labels.texts.len() as u32;
        self.labels.texts.push(text.to_string());
        self.text_index.insert(text.to_string(), id);
        id
    }

    /// Reads a cell as a number, accepting spaces around it and, with the
    /// `;` separator, a decimal comma.
    fn classify_cell(&mut self, cell: &str) -> Cell {
        let trimmed = cell.trim();
        if trimmed.is_empty() {
            return Cell::Empty;
        }
        let parsed = if self.separator == b';' && trimmed.contains(',') {
            self.number_buffer.clear();
            let with_point = trimmed.chars().map(|c| if c == ',' { '.' } else { c });
            self.number_buffer.extend(with_point);
            self.number_buffer.parse::<f64>()
        } else {
            trimmed.parse::<f64>()
        };
        match parsed {
            Ok(value) if value.is_finite() => Cell::Number(value),
            Ok(_) => Cell::NotFinite,
            Err(_) => Cell::Text,
        }
    }
}

fn describe(cell: &Cell, text: &str) -> String {
    match cell {
        Cell::Empty => "missing value".to_string(),
        Cell::NotFinite => format!("'{}' is not a finite number", text.trim()),
        Cell::Text => format!("'{}' is not a number", text.trim()),
        Cell::Number(_) => "valid number".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Dataset {
        parse_csv(text.as_bytes()).expect("valid CSV")
    }

    fn error_of(text: &str) -> String {
        parse_csv(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn bare_cr_line_endings_count_lines() {
        let data = parse("a,b,y\r1,2,0\rx,2,1\r3,4,1\r");
        assert_eq!(data.rows(), 2);
        assert_eq!(data.skipped_lines, vec![3]);
    }

    #[test]
    fn tab_separator_is_detected() {
        let data = parse("a\tb\ty\n1\t2\t0\n3\t4\t1\n");
        assert_eq!(data.separator, b'\t');
        assert_eq!(data.features, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn semicolon_with_decimal_comma() {
        let data = parse("x;y;c\n1,5;-2,25;1\n0,5;3;0\n");
        assert_eq!(data.separator, b';');
        assert_eq!(data.features, vec![1.5, -2.25, 0.5, 3.0]);
    }

    #[test]
    fn quoted_fields_keep_commas_quotes_and_newlines() {
        let data = parse("a,b,label\n1,2,\"x, \"\"y\"\"\"\n3,4,\"two\nlines\"\n5,6,z\n");
        assert_eq!(data.labels.texts, vec!["x, \"y\"", "two\nlines", "z"]);
        assert_eq!(data.rows(), 3);
    }

    #[test]
    fn skipped_row_after_multiline_field_has_its_line() {
        let data = parse("a,label\n1,\"p\nq\"\nbad,r\n");
        assert_eq!(data.skipped_lines, vec![4]);
    }

    #[test]
    fn headerless_numeric_file_keeps_first_row() {
        let data = parse("1,2,0\n3,4,1\n");
        assert!(!data.has_header);
        assert_eq!(data.rows(), 2);
        assert_eq!(data.feature_names, vec!["x1", "x2"]);
    }

    #[test]
    fn headerless_text_labels_keep_first_row() {
        let data = parse("1,2,cat\n3,4,dog\n");
        assert!(!data.has_header);
        assert_eq!(data.rows(), 2);
    }

    #[test]
    fn header_with_only_text_label_name() {
        let data = parse("1,2,label\n3,4,0\n5,6,1\n");
        assert!(data.has_header);
        assert_eq!(data.rows(), 2);
    }

    #[test]
    fn unterminated_quote_names_its_line() {
        let error = error_of("a,b\n1,\"open\n2,3\n");
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("closing quote"), "{error}");
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let error = parse_csv(b"a,b\n1,2\n\xff,3\n").unwrap_err().to_string();
        assert!(error.contains("line 3"), "{error}");
    }

    #[test]
    fn whitespace_only_file_is_empty() {
        let error = error_of("\u{feff}  \n\n \r\n");
        assert!(error.contains("empty file"), "{error}");
    }

    #[test]
    fn no_usable_row_lists_lines() {
        let error = error_of("a,b\nx,1\n,2\n");
        assert!(error.contains("no usable row"), "{error}");
        assert!(error.contains("lines 2, 3"), "{error}");
        assert!(error.contains("column 'a'"), "{error}");
    }

    #[test]
    fn nonfinite_label_is_skipped() {
        let data = parse("a,b\n1,NaN\n2,3\n");
        assert_eq!(data.skipped_lines, vec![2]);
    }
}
