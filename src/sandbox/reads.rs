//! The contract's read endpoints: one handler per list, each a few filters over a sorted list.
//!
//! Filters that follow the list's order (`updated_since`, and `since` on survey responses)
//! start the listing by binary search; the others (`account_id`, `types`, `status`, the
//! `occurred_at` window) are a [`Filter`] that skips rows as the page is filled.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::Value;

use super::book::{Filter, SortKey, Sorted, Start, UsageQuery, Window, rows_from};
use super::paging::ListRequest;
use super::problem::Problem;
use super::state::{App, lock};
use super::tasks::STATUSES;

type Page = Result<Json<Value>, Problem>;

const ACTIVITY_TYPES: [&str; 3] = ["call", "meeting", "webinar"];
/// The widest usage window, a leap year.
const MAX_WINDOW_DAYS: u32 = 366;

/// Serves one page of `list` for `request`, from `start` and through `filter`.
fn respond(
    app: &App,
    request: &ListRequest,
    list: &dyn Sorted,
    start: &Start,
    filter: &Filter,
) -> Page {
    let rows = rows_from(list, start, filter);
    Ok(Json(request.page(&app.cursors, &app.faults(), rows)))
}

pub async fn accounts(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "accounts", query.as_deref())?;
    let start = request.start(request.params.timestamp("updated_since")?);
    let list = app.book.accounts();
    respond(&app, &request, list, &start, &Filter::default())
}

pub async fn owners(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "owners", query.as_deref())?;
    let (list, start) = (app.book.owners(), request.start(None));
    respond(&app, &request, list, &start, &Filter::default())
}

pub async fn contacts(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "contacts", query.as_deref())?;
    let start = request.start(request.params.timestamp("updated_since")?);
    let filter = Filter {
        account_id: request.params.get("account_id").map(str::to_owned),
        ..Filter::default()
    };
    respond(&app, &request, app.book.contacts(), &start, &filter)
}

pub async fn activities(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "activities", query.as_deref())?;
    let params = &request.params;
    let start = request.start(params.timestamp("updated_since")?);
    let filter = Filter {
        types: params.list("types", &ACTIVITY_TYPES)?,
        window: window("occurred_at", &request)?,
        ..Filter::default()
    };
    respond(&app, &request, app.book.activities(), &start, &filter)
}

/// The `since`/`until` window on `field`, if either bound is given.
fn window(field: &'static str, request: &ListRequest) -> Result<Option<Window>, Problem> {
    let since = request.params.timestamp("since")?;
    let until = request.params.timestamp("until")?;
    Ok((since.is_some() || until.is_some()).then_some(Window {
        field,
        since,
        until,
    }))
}

pub async fn tasks(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "tasks", query.as_deref())?;
    let start = request.start(request.params.timestamp("updated_since")?);
    let filter = Filter {
        statuses: request.params.list("status", &STATUSES)?,
        ..Filter::default()
    };
    let snapshot = lock(&app.tasks).sorted();
    respond(&app, &request, &snapshot, &start, &filter)
}

/// Survey responses: the book's own, merged in order with those pushed by clients (a pushed
/// answer replaces a book answer with the same id).
pub async fn survey_responses(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Page {
    let request = ListRequest::new(&app.cursors, "survey_responses", query.as_deref())?;
    let start = request.start(request.params.timestamp("since")?);
    let filter = Filter {
        window: window("submitted_at", &request)?,
        ..Filter::default()
    };

    let (pushed, replaced) = pushed_from(&app, &start, &filter);
    let book_rows = rows_from(app.book.survey_responses(), &start, &filter)
        .filter(|(key, _)| !replaced.contains(&key.id));
    let rows = merge(book_rows, pushed.into_iter());
    Ok(Json(request.page(&app.cursors, &app.faults(), rows)))
}

/// The pushed answers from `start` on that pass `filter`, and the ids of every pushed answer.
fn pushed_from(
    app: &App,
    start: &Start,
    filter: &Filter,
) -> (Vec<(SortKey, Value)>, HashSet<String>) {
    let pushed = lock(&app.responses);
    let lower = match &start.after {
        Some(after) => Bound::Excluded(after.clone()),
        None => Bound::Unbounded,
    };
    let floor = start.not_before.map(|at| at.timestamp_micros());
    let rows = pushed
        .by_key
        .range((lower, Bound::Unbounded))
        .filter(|(key, row)| floor.is_none_or(|floor| key.at >= floor) && filter.passes(row))
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
        let everything = Filter::default();
        let rows = rows_from(list.as_ref(), &request.start(None), &everything);
        anyhow::Ok(request.page(&worker.cursors, &worker.faults(), rows))
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
