//! The contract's writes: `PUT /v1/health`, `PUT /v1/tasks/{key}` and
//! `PUT /v1/survey-responses/{id}`. All are idempotent: replaying one changes nothing.
//!
//! Bodies are read as raw bytes and parsed here, so that a body that is not JSON gets the
//! contract's problem document instead of the framework's plain-text rejection.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde_json::{Value, json};

use super::book::{Book, SortKey};
use super::problem::Problem;
use super::state::{App, lock};
use super::tasks::{self, NewTask};
use crate::model::SurveyResponse;

/// The most health items one request may carry.
const MAX_HEALTH_ITEMS: usize = 100;
const BANDS: [&str; 4] = ["green", "yellow", "red", "na"];
const MEASURES: [&str; 4] = ["deployment", "engagement", "adoption", "roi"];

pub fn json_body(bytes: &Bytes) -> Result<Value, Problem> {
    serde_json::from_slice(bytes)
        .map_err(|error| Problem::validation(format!("body is not JSON: {error}")))
}

/// `PUT /v1/health`: stores each valid item and answers a status per item.
pub async fn put_health(State(app): State<Arc<App>>, bytes: Bytes) -> Result<Response, Problem> {
    let body = json_body(&bytes)?;
    let Some(items) = body.get("items").and_then(Value::as_array) else {
        return Err(Problem::validation("body must be {\"items\": [...]}"));
    };
    if items.len() > MAX_HEALTH_ITEMS {
        return Err(Problem::validation(format!(
            "{} items; at most {MAX_HEALTH_ITEMS} per request",
            items.len()
        )));
    }

    let results: Vec<Value> = items.iter().map(|item| store_health(&app, item)).collect();
    Ok(Json(json!({ "results": results })).into_response())
}

/// Checks and stores one health item, returning its result entry.
fn store_health(app: &App, item: &Value) -> Value {
    let account_id = item.get("account_id").and_then(Value::as_str);
    let outcome = check_health(item).and_then(|account| {
        if !app.book.has_account(account) {
            Err(Problem::not_found(format!("no account {account:?}")))
        } else if app.faults().refuses_health(account) {
            Err(Problem::validation(
                "refused on purpose (refuse_health_share)",
            ))
        } else {
            Ok(account)
        }
    });
    match outcome {
        Ok(account) => {
            keep_latest(app, account, item);
            json!({ "account_id": account, "status": 200 })
        }
        Err(problem) => json!({
            "account_id": account_id,
            "status": problem.status.as_u16(),
            "detail": problem.detail,
        }),
    }
}

/// Keeps the item with the latest `computed_at` per account, so that a replayed older write
/// does not undo a newer one.
fn keep_latest(app: &App, account: &str, item: &Value) {
    let computed_at = |value: &Value| {
        value
            .get("computed_at")
            .and_then(Value::as_str)
            .and_then(|raw| DateTime::parse_from_rfc3339(raw).ok())
    };
    let mut health = lock(&app.health);
    let newer = health
        .get(account)
        .is_none_or(|stored| computed_at(stored) <= computed_at(item));
    if newer {
        health.insert(account.to_owned(), item.clone());
    }
}

/// Checks one item against the contract and returns its account id.
fn check_health(item: &Value) -> Result<&str, Problem> {
    let text = |field: &str| item.get(field).and_then(Value::as_str).map(str::trim);
    let account = text("account_id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Problem::validation("account_id must be a non-empty string"))?;

    let band = text("band")
        .filter(|band| BANDS.contains(band))
        .ok_or_else(|| Problem::validation(format!("band must be one of {BANDS:?}")))?;
    let score = match item.get("score") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|score| *score <= 100)
                .ok_or_else(|| Problem::validation("score must be an integer 0-100 or null"))?,
        ),
    };
    if score.is_none() != (band == "na") {
        return Err(Problem::validation(
            "score is null exactly when band is \"na\"",
        ));
    }

    check_measures(item.get("measures"))?;
    text("computed_at")
        .and_then(|raw| DateTime::parse_from_rfc3339(raw).ok())
        .ok_or_else(|| Problem::validation("computed_at must be an RFC 3339 timestamp"))?;
    text("model_version")
        .filter(|version| !version.is_empty())
        .ok_or_else(|| Problem::validation("model_version must be a non-empty string"))?;
    Ok(account)
}

fn check_measures(measures: Option<&Value>) -> Result<(), Problem> {
    let measures = measures
        .and_then(Value::as_object)
        .ok_or_else(|| Problem::validation("measures must be an object"))?;
    for name in MEASURES {
        let colour = measures.get(name).and_then(Value::as_str);
        if !colour.is_some_and(|colour| BANDS.contains(&colour)) {
            return Err(Problem::validation(format!(
                "measures.{name} must be one of {BANDS:?}"
            )));
        }
    }
    Ok(())
}

/// `PUT /v1/tasks/{key}`: creates a task once per key.
pub async fn put_task(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    tasks::check_key(&key)?;
    let new = NewTask::parse(json_body(&bytes)?, app.book.as_ref())?;
    let (status, task) = lock(&app.tasks).put(&key, new, tasks::now())?;
    Ok((status, Json(task)).into_response())
}

/// `PUT /v1/survey-responses/{id}`: stores an answer collected by touchpoint, served by
/// `GET /v1/survey-responses` from then on. 201 when new, 200 when the id was already stored.
pub async fn put_survey_response(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let stored = check_response(&id, json_body(&bytes)?, app.book.as_ref())?;
    let key = SortKey::timed(stored.submitted_at, stored.id.as_str());
    let row = serde_json::to_value(&stored)
        .map_err(|error| Problem::validation(format!("survey response: {error}")))?;

    let mut pushed = lock(&app.responses);
    let status = match pushed.key_of.insert(id, key.clone()) {
        Some(previous) => {
            pushed.by_key.remove(&previous);
            StatusCode::OK
        }
        None => StatusCode::CREATED,
    };
    pushed.by_key.insert(key, row.clone());
    Ok((status, Json(row)).into_response())
}

fn check_response(id: &str, mut body: Value, book: &dyn Book) -> Result<SurveyResponse, Problem> {
    tasks::check_key(id).map_err(|_| Problem::validation("survey response id is not valid"))?;
    let Value::Object(fields) = &mut body else {
        return Err(Problem::validation("body must be a JSON object"));
    };
    match fields.get("id") {
        None | Some(Value::Null) => {}
        Some(given) if given.as_str() == Some(id) => {}
        Some(_) => return Err(Problem::validation("body id differs from the path's")),
    }
    fields.insert("id".to_owned(), json!(id));

    let response: SurveyResponse = serde_json::from_value(body)
        .map_err(|error| Problem::validation(format!("survey response: {error}")))?;
    if response.survey == crate::model::SurveyKind::Nps && response.score.is_none() {
        return Err(Problem::validation("an nps answer needs a score 0-10"));
    }
    if !book.has_account(response.account_id.as_str()) {
        return Err(Problem::not_found(format!(
            "no account {:?}",
            response.account_id.as_str()
        )));
    }
    Ok(response)
}
