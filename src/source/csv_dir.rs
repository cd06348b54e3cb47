//! A CSV book: a directory with one file per list of the REST contract.
//!
//! The six files are `accounts.csv`, `owners.csv`, `contacts.csv`, `activities.csv`,
//! `usage.csv` and `survey_responses.csv`. Columns carry the contract's field names; a cell
//! is read with the same lenient parsers as a JSON field (booleans `true`/`false`, an empty
//! cell is null, `contact_ids` separated by `;`). Every file is required: an absent file is
//! an error that names it, because a missing list would otherwise look like a book where
//! nothing happened.
//!
//! Files are streamed row by row, so a book of any size is read in constant memory. A row that
//! cannot be read (a bad value, a cell that is not UTF-8, too few cells) costs that row only:
//! it comes out as a [`Rejected`] naming its line and column, and reading goes on. What breaks
//! the file itself fails the list instead ([`FileError`]): no header row, a required column
//! missing, or a rejected row that runs over several lines (a stray quote that swallowed the
//! rows after it). Repeated ids and values the contract does not list are noted once each
//! ([`CsvRows::notes`]).
//!
//! `usage.csv` holds daily rows (`account_id, feature, date, event_count, active_users`);
//! [`aggregate_usage`] folds them into the per-window rows that `GET /v1/usage` serves.
//!
//! This module does not own what is done with the records (scoring, serving, storing).

mod cell;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::BTreeMap;
use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{Days, NaiveDate};
use serde::de::DeserializeOwned;
use serde::de::value::{Error as CellError, MapDeserializer};

use crate::model::{AccountId, Rejected, UsageDay, UsageRow};
use cell::Cell;
use watch::Watch;

/// The lists of a CSV book, each read from `<name>.csv`.
pub const DATASETS: [&str; 6] = [
    "accounts",
    "owners",
    "contacts",
    "activities",
    "usage",
    "survey_responses",
];

/// The columns the contract requires in each file. A file without one of them fails as a
/// whole: reading it anyway would give every row that field's default (an account without
/// `archived` is live, a contact without `email_opt_out` may be emailed).
fn required_columns(dataset: &str) -> &'static [&'static str] {
    match dataset {
        "accounts" => &["id", "name", "archived", "updated_at"],
        "owners" => &["id", "email", "name", "active"],
        "contacts" => &[
            "id",
            "account_id",
            "email_opt_out",
            "archived",
            "updated_at",
        ],
        "activities" => &[
            "id",
            "account_id",
            "type",
            "occurred_at",
            "outcome",
            "contact_ids",
            "updated_at",
        ],
        "usage" => &[
            "account_id",
            "feature",
            "date",
            "event_count",
            "active_users",
        ],
        "survey_responses" => &["id", "account_id", "survey", "submitted_at"],
        _ => &[],
    }
}

/// The path of one list's file inside a book, checking that the list is one of [`DATASETS`].
pub fn dataset_path(dir: &Path, dataset: &str) -> anyhow::Result<PathBuf> {
    if !DATASETS.contains(&dataset) {
        bail!("`{dataset}` is not a list of a CSV book (expected one of {DATASETS:?})");
    }
    Ok(dir.join(format!("{dataset}.csv")))
}

/// Why a file of a CSV book cannot be read as a list at all. The list then fails as a whole
/// (its data is missing, never empty), because going on would pass part of the file off as
/// all of it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(
        "{file} has no header row (the file is empty); a list with no records still needs \
         its header row"
    )]
    NoHeader { file: String },
    #[error("{file} has no {} column, which the contract requires", names(.columns))]
    MissingColumns {
        file: String,
        columns: Vec<&'static str>,
    },
    #[error(
        "{file}, line {line}: a quoted value opens here and runs on over the following lines of \
         a row that cannot be read, most likely a stray quote that swallowed the rows after it; \
         check the quotes on line {line}"
    )]
    UnbalancedQuote { file: String, line: u64 },
    #[error("failed to read {file} after line {line}: {source}")]
    Read {
        file: String,
        line: u64,
        source: csv::Error,
    },
}

fn names(columns: &[&str]) -> String {
    let quoted: Vec<String> = columns.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

/// Opens one list of a CSV book and streams its rows.
///
/// Fails when the file is absent, has no header row, or lacks a column the contract requires
/// (a file with only its header row is a list with no records). After that, every row comes
/// out as a record or as a [`Rejected`] whose reason names its line (the file's own line
/// number, the header being line 1) and, when it can, its column; a row that breaks the file
/// itself (see [`FileError`]) ends the list with an error.
pub fn read_rows<T: DeserializeOwned>(dir: &Path, dataset: &str) -> anyhow::Result<CsvRows<T>> {
    let path = dataset_path(dir, dataset)?;
    let file = File::open(&path)
        .with_context(|| format!("failed to open {} of the CSV book", path.display()))?;
    let shown = path.display().to_string();

    let line_lag = u64::from(header_ends_in_crlf(&path)?);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let header = reader
        .byte_headers()
        .with_context(|| format!("failed to read the header row of {shown}"))?;
    let columns = column_names(header)
        .with_context(|| format!("the header row of {shown} is not UTF-8 text"))?;
    check_columns(&shown, dataset, &columns)?;

    Ok(CsvRows {
        watch: Watch::new(dataset),
        dataset: dataset.to_owned(),
        file: shown,
        columns,
        reader,
        record: csv::ByteRecord::new(),
        line_lag,
        done: false,
        row: PhantomData,
    })
}

/// Whether the file's first line ends in CR LF (as files written on Windows, or by Python's
/// csv module, do). The csv crate counts a CR LF line end only when it reads the next record,
/// so in such a file every record's line number comes out one short; [`CsvRows`] adds it back.
fn header_ends_in_crlf(path: &Path) -> anyhow::Result<bool> {
    use std::io::{BufRead, Read};
    let mut first = Vec::new();
    let file = File::open(path)
        .with_context(|| format!("failed to open {} of the CSV book", path.display()))?;
    std::io::BufReader::new(file)
        .take(1 << 16)
        .read_until(b'\n', &mut first)
        .with_context(|| format!("failed to read the header row of {}", path.display()))?;
    Ok(first.ends_with(b"\r\n"))
}

/// The header's column names, trimmed, without the byte-order mark spreadsheets put first.
fn column_names(header: &csv::ByteRecord) -> Result<Vec<String>, std::str::Utf8Error> {
    header
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let name = if index == 0 {
                name.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(name)
            } else {
                name
            };
            std::str::from_utf8(name).map(|name| name.trim().to_owned())
        })
        .collect()
}

fn check_columns(file: &str, dataset: &str, columns: &[String]) -> Result<(), FileError> {
    if columns.iter().all(String::is_empty) {
        return Err(FileError::NoHeader {
            file: file.to_owned(),
        });
    }
    let missing: Vec<&'static str> = required_columns(dataset)
        .iter()
        .copied()
        .filter(|required| !columns.iter().any(|name| name == required))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(FileError::MissingColumns {
        file: file.to_owned(),
        columns: missing,
    })
}

/// The rows of one CSV file, read one at a time. See [`read_rows`].
pub struct CsvRows<T> {
    dataset: String,
    /// The file as reasons and errors name it.
    file: String,
    columns: Vec<String>,
    reader: csv::Reader<File>,
    record: csv::ByteRecord,
    /// What to add to the csv crate's line numbers: 1 in a CR LF file, see
    /// [`header_ends_in_crlf`].
    line_lag: u64,
    /// Set once the file can no longer be read (an I/O error, a quote that never closed).
    done: bool,
    watch: Watch,
    row: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for CsvRows<T> {
    type Item = Result<Result<T, Rejected>, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let line = self.reader.position().line() + self.line_lag;
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {}
            Ok(false) => {
                self.done = true;
                return None;
            }
            Err(source) => {
                self.done = true;
                let file = self.file.clone();
                return Some(Err(FileError::Read { file, line, source }));
            }
        }

        let line = self
            .record
            .position()
            .map_or(line, |at| at.line() + self.line_lag);
        let row = self.parse(line);
        if row.is_err()
            && let Some(opened) = self.quote_opened_on(line)
        {
            self.done = true;
            let file = self.file.clone();
            return Some(Err(FileError::UnbalancedQuote { file, line: opened }));
        }
        if row.is_ok() {
            self.watch.row(&self.columns, &self.record, line);
        }
        Some(Ok(row))
    }
}

impl<T: DeserializeOwned> CsvRows<T> {
    /// Reads the current record as a `T`, or says why it cannot be one.
    fn parse(&self, line: u64) -> Result<T, Rejected> {
        let record = &self.record;
        if record.len() != self.columns.len() {
            let cells = match record.len() {
                1 => "1 value".to_owned(),
                n => format!("{n} values"),
            };
            let columns = self.columns.len();
            let reason = format!("line {line}: {cells} where the header names {columns} columns");
            return Err(self.rejected(reason));
        }
        let cells = match text_cells(record) {
            Ok(cells) => cells,
            Err(index) => {
                let reason = format!(
                    "line {line}, column `{}`: the text is not UTF-8 (save the file as UTF-8)",
                    self.columns[index]
                );
                return Err(self.rejected(reason));
            }
        };

        let fields = || {
            let names = self.columns.iter().map(String::as_str);
            MapDeserializer::<_, CellError>::new(names.zip(cells.iter().copied().map(Cell)))
        };
        T::deserialize(fields()).map_err(|_| {
            let explained = serde_path_to_error::deserialize::<_, T>(fields());
            let reason = match explained {
                Ok(_) => format!("line {line}: the row could not be read"),
                Err(error) => describe(line, &error),
            };
            self.rejected(reason)
        })
    }
}

impl<T> CsvRows<T> {
    /// What this file's rows said about the data beyond each row (ids on more than one row,
    /// values the contract does not list), for the run report. Complete once the rows are
    /// all read.
    pub fn notes(&self) -> Vec<String> {
        self.watch.notes(&self.file_name())
    }

    fn file_name(&self) -> String {
        format!("{}.csv", self.dataset)
    }

    /// A rejected row with the ids that can be read from it.
    fn rejected(&self, reason: String) -> Rejected {
        let record_id = self.cell("id").or_else(|| self.cell("key"));
        let account_id = if self.dataset == "accounts" {
            record_id.clone()
        } else {
            self.cell("account_id")
        };
        Rejected {
            dataset: self.dataset.clone(),
            record_id,
            account_id,
            reason,
        }
    }

    /// The current record's cell in `column`, when it holds readable text.
    fn cell(&self, column: &str) -> Option<String> {
        let index = self.columns.iter().position(|name| name == column)?;
        let value = std::str::from_utf8(self.record.get(index)?).ok()?.trim();
        (!value.is_empty()).then(|| value.to_owned())
    }

    /// The line on which a value of the current record (which starts on `line`) opened a
    /// quote that ran on over later lines, if one did. A rejected record that spans lines is
    /// almost always a stray quote that swallowed the rows after it.
    fn quote_opened_on(&self, line: u64) -> Option<u64> {
        let mut breaks_before = 0;
        for cell in &self.record {
            let breaks = cell.iter().filter(|&&byte| byte == b'\n').count() as u64;
            if breaks > 0 {
                return Some(line + breaks_before);
            }
            breaks_before += breaks;
        }
        None
    }
}

/// The record's cells as trimmed text, or the index of the first that is not UTF-8.
fn text_cells(record: &csv::ByteRecord) -> Result<Vec<&str>, usize> {
    record
        .iter()
        .enumerate()
        .map(|(index, cell)| std::str::from_utf8(cell).map(str::trim).map_err(|_| index))
        .collect()
}

/// A reason naming the column a value failed in, when serde could tell.
fn describe(line: u64, error: &serde_path_to_error::Error<CellError>) -> String {
    let message = crate::model::plain_message(&error.inner().to_string());
    let column = error
        .path()
        .iter()
        .next()
        .and_then(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.as_str()),
            _ => None,
        });
    match column {
        Some(name) => format!("line {line}, column `{name}`: {message}"),
        None => format!("line {line}: {message}"),
    }
}

/// The per-day totals of one (account, feature) pair inside a window.
#[derive(Default)]
struct DayTotals {
    by_date: BTreeMap<NaiveDate, (u64, u64)>,
}

impl DayTotals {
    /// Two rows for the same date are one day: their counts are summed.
    fn add(&mut self, day: &UsageDay) {
        let (events, users) = self.by_date.entry(day.date).or_default();
        *events += u64::from(day.event_count);
        *users += u64::from(day.active_users);
    }

    fn into_row(self, account_id: AccountId, feature: String) -> UsageRow {
        let days_active = self.by_date.values().filter(|(events, _)| *events > 0);
        let event_count: u64 = self.by_date.values().map(|(events, _)| events).sum();
        let active_users = self.by_date.values().map(|(_, users)| *users).max();
        UsageRow {
            account_id,
            feature,
            days_active: saturate(days_active.count() as u64),
            event_count: saturate(event_count),
            active_users: saturate(active_users.unwrap_or(0)),
        }
    }
}

fn saturate(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Folds the daily rows of `usage.csv` into one [`UsageRow`] per (account, feature) over the
/// half-open window `[window_end - window_days, window_end)`.
///
/// `days_active` counts the distinct dates with events, `event_count` sums the events and
/// `active_users` is the largest daily value; rows for the same (account, feature, date) are
/// first summed into one day. Only pairs with at least one row in the window appear, ordered by
/// (account_id, feature). `features`, when given, keeps only those features, matched as
/// scoring matches them (trimmed, case ignored) and named as the list spells them. Rows that
/// cannot be read are returned beside the result, one [`Rejected`] each.
pub fn aggregate_usage(
    dir: &Path,
    window_end: NaiveDate,
    window_days: u32,
    features: Option<&[String]>,
) -> anyhow::Result<(Vec<UsageRow>, Vec<Rejected>)> {
    let window_start = window_end
        .checked_sub_days(Days::new(u64::from(window_days)))
        .with_context(|| format!("a window of {window_days} days before {window_end}"))?;

    let mut pairs: BTreeMap<(AccountId, String), DayTotals> = BTreeMap::new();
    let mut rejected = Vec::new();
    for row in read_rows::<UsageDay>(dir, "usage")? {
        match row? {
            Ok(day) if day.date >= window_start && day.date < window_end => {
                if let Some(feature) = wanted_name(features, &day.feature) {
                    let key = (day.account_id.clone(), feature);
                    pairs.entry(key).or_default().add(&day);
                }
            }
            Ok(_) => {}
            Err(reason) => rejected.push(reason),
        }
    }

    let rows = pairs
        .into_iter()
        .map(|((account_id, feature), totals)| totals.into_row(account_id, feature))
        .collect();
    Ok((rows, rejected))
}

/// The name a usage row is kept under, if it is kept: with a list of features, the list's
/// spelling of the one it names, matched the way scoring matches key features (trimmed, case
/// ignored), so `Dashboards` and `dashboards` are one feature; without a list, its own name.
fn wanted_name(features: Option<&[String]>, feature: &str) -> Option<String> {
    let Some(list) = features else {
        return Some(feature.to_owned());
    };
    let feature = feature.trim();
    list.iter()
        .find(|name| name.trim().eq_ignore_ascii_case(feature))
        .cloned()
}
