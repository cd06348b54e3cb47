//! The CSV-directory source: the contract's records read from exported files.
//!
//! The files are read line by line on a blocking-friendly thread ([`tokio::task::block_in_place`])
//! so the runtime keeps serving while a large export is read. Filtering (activity window and
//! types, answer dates) is applied here, exactly as the REST server applies it, so both
//! sources give the puller the same rows. What the files say about the data beyond each row
//! (an id on two rows, a value the contract does not list) is kept as notes for the run report.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::{ActivityQuery, Sink, Source, SourceError, UsageQuery, csv_dir};
use crate::model::{Account, Activity, Contact, Owner, Rejected, SurveyResponse, UsageRow};

/// A directory holding `accounts.csv`, `owners.csv`, `contacts.csv`, `activities.csv`,
/// `usage.csv` and `survey_responses.csv`.
#[derive(Debug, Clone)]
pub struct CsvSource {
    dir: PathBuf,
    notes: Arc<Mutex<Vec<String>>>,
}

impl CsvSource {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            notes: Arc::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn stream<T: DeserializeOwned>(
        &self,
        dataset: &str,
        sink: Sink<'_, T>,
        keep: impl Fn(&T) -> bool,
    ) -> Result<(), SourceError> {
        tokio::task::block_in_place(|| {
            let mut rows = csv_dir::read_rows::<T>(&self.dir, dataset)
                .map_err(|e| SourceError::Csv(format!("{e:#}")))?;
            for row in rows.by_ref() {
                match row.map_err(|e| SourceError::Csv(e.to_string()))? {
                    Ok(record) if !keep(&record) => {}
                    other => sink(other),
                }
            }
            self.note(rows.notes());
            Ok(())
        })
    }

    fn note(&self, notes: Vec<String>) {
        let mut kept = self.notes.lock().unwrap_or_else(PoisonError::into_inner);
        kept.extend(notes);
    }
}

impl Source for CsvSource {
    fn describe(&self) -> String {
        format!("CSV book in {}", self.dir.display())
    }

    fn take_notes(&self) -> Vec<String> {
        let mut kept = self.notes.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *kept)
    }

    async fn owners(&self, sink: Sink<'_, Owner>) -> Result<(), SourceError> {
        self.stream("owners", sink, |_| true)
    }

    async fn accounts(&self, sink: Sink<'_, Account>) -> Result<(), SourceError> {
        self.stream("accounts", sink, |_| true)
    }

    async fn contacts(&self, sink: Sink<'_, Contact>) -> Result<(), SourceError> {
        self.stream("contacts", sink, |_| true)
    }

    async fn activities(
        &self,
        query: &ActivityQuery,
        sink: Sink<'_, Activity>,
    ) -> Result<(), SourceError> {
        self.stream("activities", sink, |activity: &Activity| {
            (query.since..query.until).contains(&activity.occurred_at)
                && query.types.contains(&activity.kind)
        })
    }

    async fn usage(&self, query: &UsageQuery, sink: Sink<'_, UsageRow>) -> Result<(), SourceError> {
        let (rows, rejected) = tokio::task::block_in_place(|| {
            csv_dir::aggregate_usage(
                &self.dir,
                query.window_end,
                query.window_days,
                Some(&query.features),
            )
        })
        .map_err(|e| SourceError::Csv(format!("{e:#}")))?;
        rejected.into_iter().for_each(|r: Rejected| sink(Err(r)));
        rows.into_iter().for_each(|row| sink(Ok(row)));
        Ok(())
    }

    async fn survey_responses(
        &self,
        since: DateTime<Utc>,
        sink: Sink<'_, SurveyResponse>,
    ) -> Result<(), SourceError> {
        self.stream("survey_responses", sink, |answer: &SurveyResponse| {
            answer.submitted_at >= since
        })
    }
}
