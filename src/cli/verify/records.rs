//! Records to verify, read from a JSONL or CSV file: recheck's, RAGAS's or DeepEval's
//! field names, detected from the first record, or any shape with `--field NAME=PATH`.
//! A CSV file's header names the fields; a contexts cell holds a JSON array.

use std::collections::HashSet;

use serde_json::Value;

use recheck::{
    files::Lines,
    orchestrator::{
        records::{detect, given, lookup, record_id},
        GivenAnswer,
    },
};

pub use recheck::orchestrator::records::{parse_field, Field, Format};

/// A record of the file as read.
#[derive(Debug, Clone)]
pub struct Record {
    /// The line it starts on.
    pub line: usize,
    /// Its id (the line's number when it has none).
    pub id: String,
    /// The answer, or why it cannot be verified.
    pub given: Result<GivenAnswer, String>,
    /// Its gold label, as written (a string), if it has one.
    pub label: Option<String>,
}

/// Every record of `file`, in the format the first record shows (with `fields`
/// applied over it). Bad records are error rows; only a file that cannot be read fails.
pub fn read(
    file: &std::path::Path,
    max_chars: usize,
    fields: &[(Field, String)],
) -> anyhow::Result<(Vec<Record>, Format)> {
    let records = Records::open(file, max_chars, fields)?;
    let format = records.format.clone();
    Ok((records.collect::<anyhow::Result<_>>()?, format))
}

/// The records of a file, read as they are taken (a JSONL file of any length is never
/// held whole; a CSV file is).
pub struct Records {
    values: Box<dyn Iterator<Item = anyhow::Result<Row>>>,
    /// Rows read before the format was known (the first JSON one and any bad lines).
    ahead: std::collections::VecDeque<Row>,
    /// The format, detected from the first record.
    pub format: Format,
    seen: HashSet<String>,
    max_chars: usize,
}

impl Records {
    /// Open `file` and read up to its first record, which shows the format.
    pub fn open(file: &std::path::Path, max_chars: usize, fields: &[(Field, String)]) -> anyhow::Result<Self> {
        let mut values: Box<dyn Iterator<Item = anyhow::Result<Row>>> =
            if file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
                Box::new(csv_values(file)?.into_iter().map(Ok))
            } else {
                Box::new(jsonl_values(file)?)
            };
        let mut ahead = std::collections::VecDeque::new();
        let mut first = None;
        for row in values.by_ref() {
            let row = row?;
            let json = row.1.as_ref().ok().cloned();
            ahead.push_back(row);
            if let Some(v) = json {
                first = Some(v);
                break;
            }
        }
        let format = detect(first.as_ref().unwrap_or(&Value::Null), fields);
        Ok(Self { values, ahead, format, seen: HashSet::new(), max_chars })
    }
}

impl Iterator for Records {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        let (n, value) = match self.ahead.pop_front() {
            Some(row) => row,
            None => match self.values.next()? {
                Ok(row) => row,
                Err(e) => return Some(Err(e)),
            },
        };
        let value = match value {
            Ok(v) => v,
            Err(why) => return Some(Ok(Record { line: n, id: n.to_string(), given: Err(why), label: None })),
        };
        let fmt = &self.format;
        let id = record_id(&value, fmt, n);
        let given = if self.seen.insert(id.clone()) {
            given(&value, fmt, &format!("line {n}"), self.max_chars).map(|g| GivenAnswer { id: Some(id.clone()), ..g })
        } else {
            Err(format!("line {n}: id {id:?} appears earlier in the file"))
        };
        let label = lookup(&value, &fmt.label).and_then(Value::as_str).map(String::from);
        Some(Ok(Record { line: n, id, given, label }))
    }
}

/// How many lines `file` has (blank ones too): the progress bar's length, found by
/// one fast pass over its bytes; `None` if it cannot be read.
pub fn count_lines(file: &std::path::Path) -> Option<u64> {
    use std::io::Read;
    let (mut f, _) = recheck::files::open(file).ok()?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Some(lines + u64::from(last != b'\n'))
}

/// A record as read, before its fields are looked at: its line, and its JSON or why it
/// has none.
type Row = (usize, Result<Value, String>);

/// The JSON values of a JSONL file's lines, by line number (blank lines left out).
fn jsonl_values(file: &std::path::Path) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Row>>> {
    let lines = Lines::open(file).map_err(|e| anyhow::anyhow!("cannot read records from {e}"))?;
    Ok(lines.filter_map(|line| {
        let (n, bytes) = match line {
            Ok(l) => l,
            Err(e) => return Some(Err(anyhow::anyhow!("cannot read records from {e}"))),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(Ok((n, serde_json::from_slice(&bytes).map_err(|e| format!("line {n} is not JSON: {e}")))))
    }))
}

/// The rows of a CSV file as JSON objects keyed by its header, by the line each row
/// starts on. A cell holding a JSON array (contexts) is that array.
fn csv_values(file: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let text = recheck::files::read_to_string(file, recheck::files::FileKind::Document)
        .map_err(|e| anyhow::anyhow!("cannot read records from {e}"))?;
    let mut rows = csv_rows(&text).into_iter();
    let Some((_, header)) = rows.next() else { return Ok(Vec::new()) };
    let header = header.map_err(|why| anyhow::anyhow!("{}: the header: {why}", file.display()))?;
    Ok(rows
        .map(|(line, cells)| {
            let cells = cells.and_then(|cells| {
                if cells.len() == header.len() {
                    Ok(cells)
                } else {
                    Err(format!("line {line} has {} cells, the header {}", cells.len(), header.len()))
                }
            });
            let value = cells.map(|cells| {
                let object = header.iter().zip(cells).map(|(name, cell)| {
                    let value = match cell.trim_start().starts_with('[') {
                        true => serde_json::from_str(&cell).unwrap_or(Value::String(cell)),
                        false => Value::String(cell),
                    };
                    (name.clone(), value)
                });
                Value::Object(object.collect())
            });
            (line, value)
        })
        .collect())
}

/// The rows of CSV `text` (RFC 4180: fields in double quotes may hold commas, newlines
/// and doubled quotes), each with the line it starts on; blank lines left out.
fn csv_rows(text: &str) -> Vec<(usize, Result<Vec<String>, String>)> {
    let mut rows = Vec::new();
    let (mut row, mut cell) = (Vec::new(), String::new());
    let (mut quoted, mut line, mut start, mut after_quote) = (false, 1, 1, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => {
                quoted = false;
                after_quote = true;
            }
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                cell.push(c);
            }
            (false, '"') if cell.is_empty() && !after_quote => quoted = true,
            (false, ',') => {
                row.push(std::mem::take(&mut cell));
                after_quote = false;
            }
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                if !(row.len() == 1 && row[0].is_empty()) {
                    rows.push((start, Ok(std::mem::take(&mut row))));
                }
                row.clear();
                line += 1;
                start = line;
                after_quote = false;
            }
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        rows.push((start, Err(format!("line {start}: a quoted field is never closed"))));
    } else if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push((start, Ok(row)));
    }
    rows
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn csv_fields_hold_commas_quotes_and_newlines() {
        let text = "id,answer,contexts\n1,\"Yes, \"\"quoted\"\"\nand on\",\"[\"\"a, b\"\"]\"\r\n\n2,plain,\n3,\"open";
        let rows = csv_rows(text);
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert_eq!(rows[1], (2, Ok(vec!["1".into(), "Yes, \"quoted\"\nand on".into(), "[\"a, b\"]".into()])));
        assert_eq!(rows[2], (5, Ok(vec!["2".into(), "plain".into(), String::new()])));
        assert!(rows[3].1.as_ref().is_err_and(|e| e.contains("never closed")), "{rows:?}");
    }
}
