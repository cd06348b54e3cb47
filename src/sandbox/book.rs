//! The book the sandbox serves, seen as sorted lists.
//!
//! A book (generated or read from a CSV directory) hands each read endpoint a [`Sorted`] list:
//! rows in the contract's order, addressable by position, rendered to JSON only when served.
//! Paging resumes after the [`SortKey`] of the last row served, found by binary search, so no
//! request re-sorts the world; other conditions are a [`Filter`] that skips rows, cheaply when
//! the list can judge its compact records. This module does not own cursors or faults.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The position of a row in its list's order: a time (`updated_at` or `submitted_at`, in
/// microseconds; 0 for lists ordered by id alone), then the id, then a second name (the
/// feature of a usage row).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SortKey {
    pub at: i64,
    pub id: String,
    pub sub: String,
}

impl SortKey {
    pub fn timed(at: DateTime<Utc>, id: impl Into<String>) -> Self {
        Self {
            at: at.timestamp_micros(),
            id: id.into(),
            sub: String::new(),
        }
    }

    /// A key at a Unix second, for compact records.
    pub fn at_second(second: i64, id: impl Into<String>) -> Self {
        Self {
            at: second.saturating_mul(1_000_000),
            id: id.into(),
            sub: String::new(),
        }
    }

    pub fn named(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    pub fn pair(id: impl Into<String>, sub: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            sub: sub.into(),
            ..Self::default()
        }
    }
}

/// One list of the book in contract order.
pub trait Sorted: Send + Sync {
    fn len(&self) -> usize;

    fn key(&self, index: usize) -> SortKey;

    /// The row at `index`, or `None` when that position holds nothing to serve (a usage pair
    /// without use in the window, a feature not asked for).
    fn row(&self, index: usize) -> Option<Value>;

    /// Whether the row at `index` passes `filter`. Lists that can tell without rendering the
    /// row override this; they need only check the filters their endpoint takes.
    fn passes(&self, index: usize, filter: &Filter) -> bool {
        filter.is_empty() || self.row(index).is_some_and(|row| filter.passes(&row))
    }
}

/// Conditions on rows that do not follow a list's order, so rows are skipped one by one.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `account_id` is this one.
    pub account_id: Option<String>,
    /// `type` is one of these.
    pub types: Option<Vec<String>>,
    /// `status` is one of these.
    pub statuses: Option<Vec<String>>,
    /// A time field lies in a half-open window.
    pub window: Option<Window>,
}

/// `since <= field < until`, either bound optional.
#[derive(Debug, Clone)]
pub struct Window {
    pub field: &'static str,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.since.is_none_or(|since| at >= since) && self.until.is_none_or(|until| at < until)
    }

    /// The same test on Unix seconds, for compact records.
    pub fn contains_second(&self, second: i64) -> bool {
        DateTime::from_timestamp(second, 0).is_some_and(|at| self.contains(at))
    }
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.account_id.is_none()
            && self.types.is_none()
            && self.statuses.is_none()
            && self.window.is_none()
    }

    /// Checks a rendered row.
    pub fn passes(&self, row: &Value) -> bool {
        let text = |field: &str| row.get(field).and_then(Value::as_str);
        let one_of = |wanted: &Option<Vec<String>>, field: &str| {
            wanted
                .as_ref()
                .is_none_or(|wanted| text(field).is_some_and(|v| wanted.iter().any(|w| w == v)))
        };
        let in_window = self.window.as_ref().is_none_or(|window| {
            text(window.field)
                .and_then(|raw| crate::model::parse_timestamp(raw).ok())
                .is_some_and(|at| window.contains(at))
        });
        self.account_id
            .as_deref()
            .is_none_or(|id| text("account_id") == Some(id))
            && one_of(&self.types, "type")
            && one_of(&self.statuses, "status")
            && in_window
    }

    /// Whether `type` passes, for lists that hold it as a name.
    pub fn wants_type(&self, kind: &str) -> bool {
        self.types
            .as_ref()
            .is_none_or(|types| types.iter().any(|wanted| wanted == kind))
    }
}

/// Where a listing resumes: strictly after the last key served, and not before a time.
#[derive(Debug, Clone, Default)]
pub struct Start {
    pub after: Option<SortKey>,
    pub not_before: Option<DateTime<Utc>>,
}

/// The rows of `list` from `start` on that pass `filter`, each with its key.
pub fn rows_from<'a>(
    list: &'a dyn Sorted,
    start: &Start,
    filter: &'a Filter,
) -> impl Iterator<Item = (SortKey, Value)> + 'a {
    let after_cursor = start
        .after
        .as_ref()
        .map_or(0, |after| first_index(list, |key| key <= after));
    let after_time = start.not_before.map_or(0, |time| {
        let floor = time.timestamp_micros();
        first_index(list, |key| key.at < floor)
    });

    (after_cursor.max(after_time)..list.len())
        .filter(move |index| list.passes(*index, filter))
        .filter_map(move |index| list.row(index).map(|row| (list.key(index), row)))
}

/// The first index whose key is not `before`, for a predicate true on a prefix of the list.
fn first_index(list: &dyn Sorted, before: impl Fn(&SortKey) -> bool) -> usize {
    let (mut low, mut high) = (0, list.len());
    while low < high {
        let middle = low + (high - low) / 2;
        if before(&list.key(middle)) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// Records held as values, sorted once by their key: the CSV book's lists and snapshots of
/// the sandbox's own mutable lists.
pub struct Records<T> {
    rows: Vec<(SortKey, T)>,
}

impl<T: Serialize + Send + Sync> Records<T> {
    pub fn new(rows: impl IntoIterator<Item = T>, key: impl Fn(&T) -> SortKey) -> Self {
        let mut rows: Vec<_> = rows.into_iter().map(|row| (key(&row), row)).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        Self { rows }
    }
}

impl<T: Serialize + Send + Sync> Sorted for Records<T> {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn key(&self, index: usize) -> SortKey {
        self.rows[index].0.clone()
    }

    fn row(&self, index: usize) -> Option<Value> {
        serde_json::to_value(&self.rows[index].1).ok()
    }
}

/// The window and features of one `GET /v1/usage` listing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsageQuery {
    pub window_end: NaiveDate,
    pub window_days: u32,
    pub features: Option<Vec<String>>,
}

/// Counts that describe a book, for `GET /_sandbox/summary` and start-up logs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BookSummary {
    /// `generated` or the CSV directory.
    pub source: String,
    /// The "today" of the book.
    pub anchor: NaiveDate,
    /// Named counts such as `accounts`, `accounts.archived`, `contacts.no_email`.
    pub counts: BTreeMap<String, u64>,
}

/// A book the sandbox can serve.
pub trait Book: Send + Sync {
    fn accounts(&self) -> &dyn Sorted;
    fn owners(&self) -> &dyn Sorted;
    fn contacts(&self) -> &dyn Sorted;
    fn activities(&self) -> &dyn Sorted;
    fn survey_responses(&self) -> &dyn Sorted;

    /// Usage per (account, feature) over a window; may read files, so call it off the async
    /// threads.
    fn usage(self: Arc<Self>, query: &UsageQuery) -> anyhow::Result<Arc<dyn Sorted>>;

    fn has_account(&self, id: &str) -> bool;
    fn has_owner(&self, id: &str) -> bool;
    fn summary(&self) -> BookSummary;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Records<u32> {
        Records::new([5_u32, 1, 3, 3], |n| SortKey {
            at: i64::from(*n),
            id: format!("id-{n}"),
            sub: String::new(),
        })
    }

    #[test]
    fn rows_resume_after_the_last_key_and_not_before_a_time() {
        let list = list();
        let none = Filter::default();
        let all: Vec<_> = rows_from(&list, &Start::default(), &none)
            .map(|r| r.1)
            .collect();
        assert_eq!(all, vec![1, 3, 3, 5]);

        let after = Start {
            after: Some(list.key(1)),
            ..Start::default()
        };
        let rest: Vec<_> = rows_from(&list, &after, &none).map(|r| r.1).collect();
        assert_eq!(rest, vec![5]);

        let since = Start {
            not_before: DateTime::from_timestamp_micros(3),
            ..Start::default()
        };
        let recent: Vec<_> = rows_from(&list, &since, &none).map(|r| r.1).collect();
        assert_eq!(recent, vec![3, 3, 5]);
    }
}
