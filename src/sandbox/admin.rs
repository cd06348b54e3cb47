//! The handlers of the sandbox-only endpoints under `/_sandbox/` (listed in the documentation
//! of [`crate::sandbox`]), for tests and demos to look inside and steer the sandbox.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::Value;

use super::book::BookSummary;
use super::faults::Faults;
use super::problem::Problem;
use super::state::{App, RecordedWrite, SandboxStats, lock};
use super::tasks::{self, STATUSES, Task};
use super::writes::json_body;

pub async fn writes(State(app): State<Arc<App>>) -> Json<Vec<RecordedWrite>> {
    Json(lock(&app.writes).clone())
}

pub async fn faults(State(app): State<Arc<App>>) -> Json<Faults> {
    Json(app.faults())
}

pub async fn set_faults(
    State(app): State<Arc<App>>,
    bytes: Bytes,
) -> Result<Json<Faults>, Problem> {
    let faults: Faults = serde_json::from_slice(&bytes)
        .map_err(|error| Problem::validation(format!("faults: {error}")))?;
    faults.check().map_err(Problem::validation)?;
    tracing::info!(faults = ?faults, "sandbox faults set");
    app.set_faults(faults.clone());
    Ok(Json(faults))
}

pub async fn set_task_status(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    bytes: Bytes,
) -> Result<Json<Task>, Problem> {
    let body = json_body(&bytes)?;
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .filter(|status| STATUSES.contains(status))
        .ok_or_else(|| Problem::validation(format!("status must be one of {STATUSES:?}")))?;
    let task = lock(&app.tasks).set_status(&key, status, tasks::now());
    task.map(Json)
        .ok_or_else(|| Problem::not_found(format!("no task with key {key:?}")))
}

pub async fn stats(State(app): State<Arc<App>>) -> Json<SandboxStats> {
    Json(lock(&app.stats).clone())
}

pub async fn health(State(app): State<Arc<App>>) -> Json<Value> {
    let health = lock(&app.health);
    Json(Value::Object(
        health
            .iter()
            .map(|(id, item)| (id.clone(), item.clone()))
            .collect(),
    ))
}

pub async fn summary(State(app): State<Arc<App>>) -> Json<BookSummary> {
    Json(app.book.summary())
}
