//! A CSV book served by the sandbox (`--from-csv DIR`).
//!
//! Five lists are read once at start-up with the CSV readers of [`crate::source::csv_dir`];
//! a row that cannot be read is logged, skipped and counted in `GET /_sandbox/stats`. When an
//! id appears twice the later row wins, as a re-export would have it. Usage stays in its file
//! of daily rows: each distinct window a client asks for is aggregated once, by streaming the
//! file, and the last few windows are kept so that paging through one does not re-read it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::book::{Book, BookSummary, Records, SortKey, Sorted, UsageQuery};
use super::state::lock;
use crate::model::{Account, Activity, Contact, Owner, SurveyResponse, UsageDay};
use crate::source::csv_dir::{aggregate_usage, read_rows};

/// How many aggregated usage windows are kept.
const CACHED_WINDOWS: usize = 8;

type Cached = (UsageQuery, Arc<dyn Sorted>);

pub struct CsvBook {
    dir: PathBuf,
    anchor: NaiveDate,
    accounts: Records<Account>,
    owners: Records<Owner>,
    contacts: Records<Contact>,
    activities: Records<Activity>,
    responses: Records<SurveyResponse>,
    account_ids: HashSet<String>,
    owner_ids: HashSet<String>,
    windows: Mutex<Vec<Cached>>,
    rejected: BTreeMap<String, u64>,
}

impl CsvBook {
    /// Reads the book in `dir`; fails when one of its six files is absent, has no header row,
    /// lacks a column the contract requires, or cannot be read to its end (see
    /// [`crate::source::csv_dir::FileError`]).
    pub fn load(dir: &Path, anchor: NaiveDate) -> anyhow::Result<Self> {
        let mut rejected = BTreeMap::new();
        let accounts: Vec<Account> = load(
            dir,
            "accounts",
            |a: &Account| a.id.to_string(),
            &mut rejected,
        )?;
        let owners: Vec<Owner> = load(dir, "owners", |o: &Owner| o.id.to_string(), &mut rejected)?;
        let contacts = load(
            dir,
            "contacts",
            |c: &Contact| c.id.to_string(),
            &mut rejected,
        )?;
        let activities = load(
            dir,
            "activities",
            |a: &Activity| a.id.to_string(),
            &mut rejected,
        )?;
        let responses = load(
            dir,
            "survey_responses",
            |r: &SurveyResponse| r.id.to_string(),
            &mut rejected,
        )?;
        check_usage(dir, &mut rejected)?;

        Ok(Self {
            dir: dir.to_owned(),
            anchor,
            account_ids: accounts.iter().map(|a| a.id.to_string()).collect(),
            owner_ids: owners.iter().map(|o| o.id.to_string()).collect(),
            accounts: Records::new(accounts, |a| SortKey::timed(a.updated_at, a.id.as_str())),
            owners: Records::new(owners, |o| SortKey::named(o.id.as_str())),
            contacts: Records::new(contacts, |c| SortKey::timed(c.updated_at, c.id.as_str())),
            activities: Records::new(activities, |a| SortKey::timed(a.updated_at, a.id.as_str())),
            responses: Records::new(responses, |r| SortKey::timed(r.submitted_at, r.id.as_str())),
            windows: Mutex::default(),
            rejected,
        })
    }

    /// Rows skipped at load time, per list.
    pub fn rejected(&self) -> &BTreeMap<String, u64> {
        &self.rejected
    }

    fn cached(&self, query: &UsageQuery) -> Option<Arc<dyn Sorted>> {
        let windows = lock(&self.windows);
        windows
            .iter()
            .find(|(cached, _)| cached == query)
            .map(|(_, list)| Arc::clone(list))
    }
}

/// Reads one list, keeping the last row per id and counting the rows it skips.
fn load<T: DeserializeOwned + Serialize>(
    dir: &Path,
    dataset: &str,
    id: impl Fn(&T) -> String,
    rejected: &mut BTreeMap<String, u64>,
) -> anyhow::Result<Vec<T>> {
    let mut by_id = BTreeMap::new();
    let mut rows = read_rows::<T>(dir, dataset)?;
    for row in rows.by_ref() {
        match row? {
            Ok(record) => {
                if by_id.insert(id(&record), record).is_some() {
                    debug!(
                        dataset,
                        "a later row of the CSV book replaced one with the same id"
                    );
                }
            }
            Err(skipped) => {
                warn!(
                    dataset,
                    record.id = skipped.record_id.as_deref().unwrap_or("?"),
                    reason = %skipped.reason,
                    "skipped a row of the CSV book"
                );
                *rejected.entry(dataset.to_owned()).or_default() += 1;
            }
        }
    }
    for note in rows.notes() {
        warn!(dataset, "{note}");
    }
    Ok(by_id.into_values().collect())
}

/// Reads `usage.csv` through once, so that a missing file fails start-up and bad rows are
/// counted once rather than on every window.
fn check_usage(dir: &Path, rejected: &mut BTreeMap<String, u64>) -> anyhow::Result<()> {
    for row in read_rows::<UsageDay>(dir, "usage")? {
        if let Err(skipped) = row? {
            warn!(reason = %skipped.reason, "skipped a usage row of the CSV book");
            *rejected.entry("usage".to_owned()).or_default() += 1;
        }
    }
    Ok(())
}

impl Book for CsvBook {
    fn accounts(&self) -> &dyn Sorted {
        &self.accounts
    }

    fn owners(&self) -> &dyn Sorted {
        &self.owners
    }

    fn contacts(&self) -> &dyn Sorted {
        &self.contacts
    }

    fn activities(&self) -> &dyn Sorted {
        &self.activities
    }

    fn survey_responses(&self) -> &dyn Sorted {
        &self.responses
    }

    fn usage(self: Arc<Self>, query: &UsageQuery) -> anyhow::Result<Arc<dyn Sorted>> {
        if let Some(list) = self.cached(query) {
            return Ok(list);
        }
        let features = query.features.as_deref();
        let (rows, _) = aggregate_usage(&self.dir, query.window_end, query.window_days, features)?;
        let list: Arc<dyn Sorted> = Arc::new(Records::new(rows, |row| {
            SortKey::pair(row.account_id.as_str(), &row.feature)
        }));

        let mut windows = lock(&self.windows);
        if windows.len() >= CACHED_WINDOWS {
            windows.remove(0);
        }
        windows.push((query.clone(), Arc::clone(&list)));
        Ok(list)
    }

    fn has_account(&self, id: &str) -> bool {
        self.account_ids.contains(id)
    }

    fn has_owner(&self, id: &str) -> bool {
        self.owner_ids.contains(id)
    }

    fn summary(&self) -> BookSummary {
        let mut counts = BTreeMap::from([
            ("accounts".to_owned(), self.accounts.len() as u64),
            ("owners".to_owned(), self.owners.len() as u64),
            ("contacts".to_owned(), self.contacts.len() as u64),
            ("activities".to_owned(), self.activities.len() as u64),
            ("survey_responses".to_owned(), self.responses.len() as u64),
        ]);
        for (dataset, skipped) in &self.rejected {
            counts.insert(format!("rejected.{dataset}"), *skipped);
        }
        BookSummary {
            source: self.dir.display().to_string(),
            anchor: self.anchor,
            counts,
        }
    }
}
