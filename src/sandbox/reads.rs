//! The contract's read endpoints: one handler per list, each a few filters over a sorted list.
//!
//! Filters that follow the list's order (`updated_since`, and `since` on survey responses)
//! start the listing by binary search; the others (`account_id`, `types`, `status`, the
//! `occurred_at` window) skip rows as the page is filled.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::book::{SortKey, Sorted, Start, UsageQuery, rows_from};
use super::paging::ListRequest;
use super::problem::Problem;
use super::state::{App, lock};
use super::tasks::STATUSES;

type Page = Result<Json<Value>, Problem>;

const ACTIVITY_TYPES: [&str; 3] = ["call", "meeting", "webinar"];
/// The widest usage window, a leap year.
const MAX_WINDOW_DAYS: u32 = 366;

fn text<'a>(row: &'a Value, field: &str) -> Option<&'a str> {
    row.get(field).and_then(Value::as_str)
}

fn time(row: &Value, field: &str) -> Option<DateTime<Utc>> {
    text(row, field).and_then(|raw| crate::model::parse_timestamp(raw).ok())
}

/// Serves a page of `list` where rows only need `updated_since`.
fn incremental(app: &App, name: &'static str, list: &dyn Sorted, query: Option<&str>) -> Page {
    let request = ListRequest::new(&app.cursors, name, query)?;
    let since = request.params.timestamp("updated_since")?;
    let rows = rows_from(list, &request.start(since));
    Ok(Json(request.page(
        &app.cursors,
        &app.faults(),
        rows,
        |_| true,
    )))
}

pub async fn accounts(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    incremental(&app, "accounts", app.book.accounts(), query.as_deref())
}

pub async fn owners(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "owners", query.as_deref())?;
    let rows = rows_from(app.book.owners(), &request.start(None));
    Ok(Json(request.page(
        &app.cursors,
        &app.faults(),
        rows,
        |_| true,
    )))
}

pub async fn contacts(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "contacts", query.as_deref())?;
    let since = request.params.timestamp("updated_since")?;
    let account = request.params.get("account_id");

    let rows = rows_from(app.book.contacts(), &request.start(since));
    let keep = |row: &Value| account.is_none_or(|id| text(row, "account_id") == Some(id));
    Ok(Json(request.page(&app.cursors, &app.faults(), rows, keep)))
}

pub async fn activities(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "activities", query.as_deref())?;
    let params = &request.params;
    let updated_since = params.timestamp("updated_since")?;
    let since = params.timestamp("since")?;
    let until = params.timestamp("until")?;
    let types = params.list("types", &ACTIVITY_TYPES)?;

    let rows = rows_from(app.book.activities(), &request.start(updated_since));
    let keep = |row: &Value| {
        let typed = types
            .as_ref()
            .is_none_or(|types| text(row, "type").is_some_and(|t| types.iter().any(|w| w == t)));
        let occurred = time(row, "occurred_at");
        let after = since.is_none_or(|since| occurred.is_some_and(|at| at >= since));
        let before = until.is_none_or(|until| occurred.is_some_and(|at| at < until));
        typed && after && before
    };
    Ok(Json(request.page(&app.cursors, &app.faults(), rows, keep)))
}

pub async fn tasks(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "tasks", query.as_deref())?;
    let since = request.params.timestamp("updated_since")?;
    let statuses = request.params.list("status", &STATUSES)?;

    let snapshot = lock(&app.tasks).sorted();
    let rows = rows_from(&snapshot, &request.start(since));
    let keep = |row: &Value| {
        statuses
            .as_ref()
            .is_none_or(|wanted| text(row, "status").is_some_and(|s| wanted.iter().any(|w| w == s)))
    };
    Ok(Json(request.page(&app.cursors, &app.faults(), rows, keep)))
}

/// Survey responses: the book's own, merged in order with those pushed by clients (a pushed
/// answer replaces a book answer with the same id).
pub async fn survey_responses(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "survey_responses", query.as_deref())?;
    let since = request.params.timestamp("since")?;
    let until = request.params.timestamp("until")?;
    let start = request.start(since);

    let (pushed, replaced) = pushed_from(&app, &start);
    let book_rows = rows_from(app.book.survey_responses(), &start)
        .filter(|(key, _)| !replaced.contains(&key.id));
    let rows = merge(book_rows, pushed.into_iter());
    let keep = |row: &Value| {
        until.is_none_or(|until| time(row, "submitted_at").is_some_and(|at| at < until))
    };
    Ok(Json(request.page(&app.cursors, &app.faults(), rows, keep)))
}

/// The pushed answers from `start` on, and the ids of every pushed answer.
fn pushed_from(app: &App, start: &Start) -> (Vec<(SortKey, Value)>, HashSet<String>) {
    let pushed = lock(&app.responses);
    let lower = match &start.after {
        Some(after) => Bound::Excluded(after.clone()),
        None => Bound::Unbounded,
    };
    let floor = start.not_before.map(|at| at.timestamp_micros());
    let rows = pushed
        .by_key
        .range((lower, Bound::Unbounded))
        .filter(|(key, _)| floor.is_none_or(|floor| key.at >= floor))
        .map(|(key, row)| (key.clone(), row.clone()))
        .collect();
    (rows, pushed.key_of.keys().cloned().collect())
}

/// Merges two lists that are each in key order into one.
fn merge(
    first: impl Iterator<Item = (SortKey, Value)>,
    second: impl Iterator<Item = (SortKey, Value)>,
) -> impl Iterator<Item = (SortKey, Value)> {
    let (mut first, mut second) = (first.peekable(), second.peekable());
    std::iter::from_fn(move || match (first.peek(), second.peek()) {
        (Some(a), Some(b)) if a.0 <= b.0 => first.next(),
        (Some(_), Some(_)) | (None, _) => second.next(),
        (Some(_), None) => first.next(),
    })
}

/// Usage per (account, feature) over a window; aggregation runs off the async threads.
pub async fn usage(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "usage", query.as_deref())?;
    let window = usage_query(&request)?;

    let worker = Arc::clone(&app);
    let page = tokio::task::spawn_blocking(move || {
        let list = Arc::clone(&worker.book).usage(&window)?;
        let rows = rows_from(list.as_ref(), &request.start(None));
        anyhow::Ok(request.page(&worker.cursors, &worker.faults(), rows, |_| true))
    })
    .await;

    match page {
        Ok(Ok(page)) => Ok(Json(page)),
        Ok(Err(error)) => {
            tracing::error!(error = format!("{error:#}"), "failed to aggregate usage");
            Err(Problem::unavailable(format!(
                "usage could not be read: {error:#}"
            )))
        }
        Err(_) => Err(Problem::unavailable("usage aggregation stopped")),
    }
}

fn usage_query(request: &ListRequest) -> Result<UsageQuery, Problem> {
    let params = &request.params;
    let window_end = params
        .date("window_end")?
        .ok_or_else(|| Problem::validation("window_end (YYYY-MM-DD) is required"))?;
    let raw_days = params
        .get("window_days")
        .ok_or_else(|| Problem::validation("window_days is required"))?;
    let window_days = raw_days
        .parse::<u32>()
        .ok()
        .filter(|days| (1..=MAX_WINDOW_DAYS).contains(days))
        .ok_or_else(|| {
            Problem::validation(format!(
                "window_days must be a whole number from 1 to {MAX_WINDOW_DAYS}, not {raw_days:?}"
            ))
        })?;
    let features = params.list("features", &[])?;
    Ok(UsageQuery {
        window_end,
        window_days,
        features,
    })
}
