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
//! cannot be read costs that row only: it comes out as a [`Rejected`] naming its line, and
//! reading goes on.
//!
//! `usage.csv` holds daily rows (`account_id, feature, date, event_count, active_users`);
//! [`aggregate_usage`] folds them into the per-window rows that `GET /v1/usage` serves.
//!
//! This module does not own what is done with the records (scoring, serving, storing).

use std::collections::BTreeMap;
use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{Days, NaiveDate};
use serde::de::DeserializeOwned;

use crate::model::{AccountId, Rejected, UsageDay, UsageRow};

/// The lists of a CSV book, each read from `<name>.csv`.
pub const DATASETS: [&str; 6] = [
    "accounts",
    "owners",
    "contacts",
    "activities",
    "usage",
    "survey_responses",
];

/// The path of one list's file inside a book, checking that the list is one of [`DATASETS`].
pub fn dataset_path(dir: &Path, dataset: &str) -> anyhow::Result<PathBuf> {
    if !DATASETS.contains(&dataset) {
        bail!("`{dataset}` is not a list of a CSV book (expected one of {DATASETS:?})");
    }
    Ok(dir.join(format!("{dataset}.csv")))
}

/// Opens one list of a CSV book and streams its rows.
///
/// Fails when the file is absent or its header cannot be read; after that, every row comes out
/// as a record or as a [`Rejected`] whose reason names the line.
pub fn read_rows<T: DeserializeOwned>(dir: &Path, dataset: &str) -> anyhow::Result<CsvRows<T>> {
    let path = dataset_path(dir, dataset)?;
    let file = File::open(&path)
        .with_context(|| format!("failed to open {} of the CSV book", path.display()))?;

    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file);
    let headers = reader
        .headers()
        .with_context(|| format!("failed to read the header line of {}", path.display()))?
        .clone();

    Ok(CsvRows {
        dataset: dataset.to_owned(),
        headers,
        records: reader.into_records(),
        done: false,
        row: PhantomData,
    })
}

/// The rows of one CSV file, read one at a time. See [`read_rows`].
pub struct CsvRows<T> {
    dataset: String,
    headers: csv::StringRecord,
    records: csv::StringRecordsIntoIter<File>,
    /// Set after an I/O error: the reader cannot be trusted to move past it.
    done: bool,
    row: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for CsvRows<T> {
    type Item = Result<T, Rejected>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let record = match self.records.next()? {
            Ok(record) => record,
            Err(error) => {
                self.done = error.is_io_error();
                return Some(Err(self.unreadable(&error)));
            }
        };
        let parsed = record.deserialize(Some(&self.headers));
        Some(parsed.map_err(|error| self.rejected(&record, &error)))
    }
}

impl<T> CsvRows<T> {
    /// A line the CSV reader itself could not split (wrong number of cells, bad UTF-8).
    fn unreadable(&self, error: &csv::Error) -> Rejected {
        let line = error.position().map_or(0, csv::Position::line);
        Rejected {
            dataset: self.dataset.clone(),
            record_id: None,
            account_id: None,
            reason: format!("line {line}: {}", plain_message(error)),
        }
    }

    /// A row whose cells were read but do not make a record, with its ids salvaged.
    fn rejected(&self, record: &csv::StringRecord, error: &csv::Error) -> Rejected {
        let line = record.position().map_or(0, csv::Position::line);
        let record_id = self.cell(record, "id").or_else(|| self.cell(record, "key"));
        let account_id = if self.dataset == "accounts" {
            record_id.clone()
        } else {
            self.cell(record, "account_id")
        };
        Rejected {
            dataset: self.dataset.clone(),
            record_id,
            account_id,
            reason: format!("line {line}: {}", self.describe(error)),
        }
    }

    fn cell(&self, record: &csv::StringRecord, column: &str) -> Option<String> {
        let index = self.headers.iter().position(|name| name == column)?;
        let value = record.get(index)?.trim();
        (!value.is_empty()).then(|| value.to_owned())
    }

    /// Names the column a deserialisation error is about, when the reader says which.
    fn describe(&self, error: &csv::Error) -> String {
        let csv::ErrorKind::Deserialize { err, .. } = error.kind() else {
            return plain_message(error);
        };
        let column = err
            .field()
            .and_then(|index| self.headers.get(usize::try_from(index).ok()?));
        match column {
            Some(name) => format!("column `{name}`: {}", err.kind()),
            None => err.kind().to_string(),
        }
    }
}

/// The reader's message without its own position prefix (the line is reported separately).
fn plain_message(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} cells where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!("not UTF-8 ({err})"),
        _ => error.to_string(),
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
        match row {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, Activity, Contact, Outcome, Persona};

    fn book(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("a CSV file");
        }
        dir
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a test date")
    }

    const ACCOUNTS: &str = "\
id,name,domain,owner_id,basic_setup_done,contract_start_date,timezone,archived,updated_at
A-1,Kalo Labs,kalo.example.com,O-1,true,2024-02-29,Europe/Berlin,false,2024-12-01T10:00:00Z
A-2,Miren Group,,,,2023-05-31,,true,2024-11-30
A-3,Broken Co,,O-1,perhaps,2023-01-01,,false,2024-11-30T00:00:00Z
A-4,Short Row,,O-1
";

    #[test]
    fn accounts_are_read_with_nulls_and_bad_rows_cost_one_row() {
        let dir = book(&[("accounts.csv", ACCOUNTS)]);
        let rows: Vec<_> = read_rows::<Account>(dir.path(), "accounts")
            .expect("accounts.csv opens")
            .collect();

        assert_eq!(rows.len(), 4);
        let first = rows[0].as_ref().expect("first row parses");
        assert_eq!(first.basic_setup_done, Some(true));
        assert_eq!(first.contract_start_date, Some(date("2024-02-29")));
        let second = rows[1].as_ref().expect("second row parses");
        assert_eq!(second.domain, None);
        assert_eq!(second.owner_id, None);
        assert_eq!(second.basic_setup_done, None);
        assert!(second.archived);

        let bad = rows[2].as_ref().expect_err("a bad boolean rejects the row");
        assert_eq!(bad.record_id.as_deref(), Some("A-3"));
        assert_eq!(
            bad.reason,
            "line 4: expected true or false, found \"perhaps\""
        );
        let short = rows[3].as_ref().expect_err("a short row is rejected");
        assert!(short.reason.starts_with("line 5:"), "{}", short.reason);
    }

    #[test]
    fn contacts_and_activities_keep_lists_and_personas() {
        let contacts = "\
id,account_id,email,name,persona,timezone,email_opt_out,merged_into,archived,updated_at
P-1,A-1,ana@kalo.example.com,Ana Kalo,executive_sponsor,,false,,false,2024-10-18T11:00:00Z
P-2,A-1,,,,Asia/Tokyo,true,P-1,false,2024-10-18T11:00:00Z
";
        let activities = "\
id,account_id,type,series,occurred_at,outcome,contact_ids,updated_at
AC-1,A-1,webinar,office_hours,2024-12-10T16:00:00Z,attended,P-1;P-2,2024-12-10T17:00:00Z
";
        let dir = book(&[("contacts.csv", contacts), ("activities.csv", activities)]);

        let people: Vec<Contact> = read_rows(dir.path(), "contacts")
            .expect("contacts.csv opens")
            .collect::<Result<_, _>>()
            .expect("both contacts parse");
        assert_eq!(people[0].persona, Some(Persona::ExecutiveSponsor));
        assert_eq!(people[1].email, None);
        assert!(people[1].email_opt_out && !people[1].is_live());

        let calls: Vec<Activity> = read_rows(dir.path(), "activities")
            .expect("activities.csv opens")
            .collect::<Result<_, _>>()
            .expect("the activity parses");
        assert_eq!(calls[0].outcome, Outcome::Attended);
        assert_eq!(calls[0].contact_ids.len(), 2);
    }

    #[test]
    fn an_absent_file_is_an_error_naming_it() {
        let dir = book(&[]);
        let error = read_rows::<Account>(dir.path(), "survey_responses")
            .err()
            .expect("an absent file fails");
        assert!(format!("{error:#}").contains("survey_responses.csv"));
        assert!(read_rows::<Account>(dir.path(), "deals").is_err());
    }

    const USAGE: &str = "\
account_id,feature,date,event_count,active_users
A-1,alerts,2024-11-30,9,9
A-1,alerts,2024-12-01,5,2
A-1,alerts,2024-12-01,3,1
A-1,alerts,2024-12-02,0,4
A-1,alerts,2024-12-31,7,1
A-1,reports,2024-12-15,1,1
A-2,alerts,2024-12-20,2,1
A-2,alerts,not-a-date,2,1
A-0,alerts,2025-01-01,2,1
";

    #[test]
    fn usage_is_aggregated_over_a_half_open_window() {
        let dir = book(&[("usage.csv", USAGE)]);
        let (rows, rejected) = aggregate_usage(dir.path(), date("2025-01-01"), 31, None)
            .expect("usage.csv aggregates");

        let summary: Vec<_> = rows
            .iter()
            .map(|row| {
                let key = (row.account_id.as_str(), row.feature.as_str());
                (key, row.days_active, row.event_count, row.active_users)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (("A-1", "alerts"), 2, 15, 4),
                (("A-1", "reports"), 1, 1, 1),
                (("A-2", "alerts"), 1, 2, 1),
            ]
        );
        assert_eq!(rejected.len(), 1);
        assert!(rejected[0].reason.starts_with("line 9:"));
    }

    #[test]
    fn usage_can_be_narrowed_to_some_features() {
        let dir = book(&[("usage.csv", USAGE)]);
        let only = vec!["reports".to_owned()];
        let (rows, _) = aggregate_usage(dir.path(), date("2025-01-01"), 31, Some(&only))
            .expect("usage.csv aggregates");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].feature, "reports");
    }

    #[test]
    fn a_feature_filter_ignores_case_and_spaces_as_scoring_does() {
        let usage = "\
account_id,feature,date,event_count,active_users
A-1,Dashboards,2024-12-02,3,1
A-1,\" DASHBOARDS\",2024-12-03,2,1
A-1,dashboards,2024-12-04,1,1
A-1,Alerts,2024-12-05,1,1
";
        let dir = book(&[("usage.csv", usage)]);
        let only = vec!["dashboards".to_owned()];

        let (rows, rejected) = aggregate_usage(dir.path(), date("2025-01-01"), 31, Some(&only))
            .expect("usage.csv aggregates");

        assert!(rejected.is_empty(), "{rejected:?}");
        let summary: Vec<_> = rows
            .iter()
            .map(|row| (row.feature.as_str(), row.days_active, row.event_count))
            .collect();
        assert_eq!(
            summary,
            vec![("dashboards", 3, 6)],
            "one feature, three days"
        );
    }
}
