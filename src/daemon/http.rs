//! The daemon's HTTP endpoints: `/healthz`, `/readyz` and `/metrics`, and the place where
//! other modules' routers (survey answer pages, unsubscribe links) are mounted, so that the
//! process serves everything from one server.
//!
//! `/readyz` judges the shared store, not this process: an instance standing by reports the
//! same readiness as the active one, since both serve the same answer links.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, http::HeaderValue};
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::lease::Lease;
use super::metrics::{self, Metrics};
use crate::runs::RunRecord;
use crate::store::Store;

/// What the endpoints read.
#[derive(Clone)]
pub struct HttpState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub lease: Arc<Lease>,
    pub ready_max_cycle_age: Duration,
    pub started_at: DateTime<Utc>,
    /// Cancelled when the daemon is asked to stop: the pages keep being served while the
    /// work in flight finishes, but `/readyz` says not ready, so a load balancer sends new
    /// visitors elsewhere.
    pub stopping: CancellationToken,
}

/// The daemon's own routes, merged with `extra` routers. Two routers that claim the same
/// path are a programming error, and axum stops the process at start-up saying which.
pub fn app(state: HttpState, extra: Vec<Router>) -> Router {
    let own = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(serve_metrics))
        .with_state(Arc::new(state));
    extra.into_iter().fold(own, Router::merge)
}

/// The process is up and its HTTP server answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    let now = Utc::now();
    let (mut verdict, last) = verdict(&state, now).await;
    if state.stopping.is_cancelled() {
        verdict = Err("stopping: no new job runs start; the work in flight is finishing".into());
    }
    let last_cycle = last.map(|run| {
        json!({
            "run_id": run.id,
            "status": run.status,
            "finished_at": run.finished_at,
            "age_secs": run.finished_at.map(|at| (now - at).num_seconds()),
        })
    });
    let role = if state.lease.is_held() {
        "active"
    } else {
        "standby"
    };
    let status = match verdict {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = json!({
        "ready": verdict.is_ok(),
        "reason": verdict.err(),
        "role": role,
        "last_cycle": last_cycle,
    });
    (status, Json(body)).into_response()
}

/// Reads the run history and judges it; a store that does not answer is not ready.
async fn verdict(state: &HttpState, now: DateTime<Utc>) -> (Result<(), String>, Option<RunRecord>) {
    let read = async {
        let last = state.store.last_finished_run().await?;
        let success = state.store.last_successful_run().await?;
        anyhow::Ok((last, success))
    };
    match read.await {
        Ok((last, success)) => {
            let bounds = Bounds {
                max_age: state.ready_max_cycle_age,
                started_at: state.started_at,
            };
            (judge(last.as_ref(), success.as_ref(), &bounds, now), last)
        }
        Err(e) => (Err(format!("the store does not answer: {e:#}")), None),
    }
}

/// The limits `/readyz` holds the run history to.
pub struct Bounds {
    /// The last successful cycle must have finished within this.
    pub max_age: Duration,
    /// With no successful cycle yet, the daemon is given `max_age` from its start.
    pub started_at: DateTime<Utc>,
}

/// Ready, or why not: the last finished cycle must not have failed, and the last successful
/// one must be recent.
pub fn judge(
    last: Option<&RunRecord>,
    last_success: Option<&RunRecord>,
    bounds: &Bounds,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if let Some(run) = last.filter(|run| run.status == "failed") {
        let why = run.reason.as_deref().unwrap_or("no reason recorded");
        return Err(format!("the last cycle, {}, failed: {why}", run.id));
    }
    let max_age = chrono::TimeDelta::from_std(bounds.max_age).unwrap_or(chrono::TimeDelta::MAX);
    match last_success.and_then(|run| run.finished_at) {
        Some(finished) if now - finished > max_age => Err(format!(
            "the last successful cycle finished {} s ago, more than \
             http.ready_max_cycle_age_secs ({} s)",
            (now - finished).num_seconds(),
            bounds.max_age.as_secs()
        )),
        Some(_) => Ok(()),
        None if now - bounds.started_at > max_age => Err(format!(
            "no cycle has succeeded in the {} s since start-up \
             (http.ready_max_cycle_age_secs)",
            (now - bounds.started_at).num_seconds()
        )),
        None => Ok(()),
    }
}

async fn serve_metrics(State(state): State<Arc<HttpState>>) -> Response {
    match state.store.book_gauges().await {
        Ok(book) => state.metrics.set_book(Some(&book)),
        Err(e) => {
            tracing::warn!("could not read the book's gauges for /metrics: {e:#}");
            state.metrics.set_book(None);
        }
    }
    let content_type = HeaderValue::from_static(metrics::CONTENT_TYPE);
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: &str, finished: &str) -> RunRecord {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("a test time")
                .with_timezone(&Utc)
        };
        RunRecord {
            id: format!("run-{status}"),
            command: "run".into(),
            started_at: at(finished) - chrono::TimeDelta::seconds(30),
            finished_at: Some(at(finished)),
            duration_ms: Some(30_000),
            as_of: finished.into(),
            status: status.into(),
            reason: (status == "failed").then(|| "the pull failed".to_owned()),
            source: "test".into(),
            accounts_pulled: None,
            summary: serde_json::Value::Null,
        }
    }

    fn bounds(started: &str) -> Bounds {
        Bounds {
            max_age: Duration::from_secs(3600),
            started_at: DateTime::parse_from_rfc3339(started)
                .expect("a test time")
                .with_timezone(&Utc),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-02T12:00:00Z")
            .expect("a test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_recent_success_is_ready_and_a_failure_after_it_is_not() {
        let good = run("succeeded", "2025-06-02T11:30:00Z");
        let failed = run("failed", "2025-06-02T11:50:00Z");
        let fresh = bounds("2025-06-02T08:00:00Z");

        assert_eq!(judge(Some(&good), Some(&good), &fresh, now()), Ok(()));

        let verdict = judge(Some(&failed), Some(&good), &fresh, now());
        let reason = verdict.expect_err("a failed last cycle");
        assert!(
            reason.contains("run-failed") && reason.contains("the pull failed"),
            "{reason}"
        );
    }

    #[test]
    fn a_stale_success_is_not_ready() {
        let old = run("partial", "2025-06-02T10:30:00Z");
        let verdict = judge(
            Some(&old),
            Some(&old),
            &bounds("2025-06-01T00:00:00Z"),
            now(),
        );
        assert!(verdict.expect_err("stale").contains("5400 s ago"));
    }

    #[test]
    fn a_new_daemon_gets_one_max_age_to_run_its_first_cycle() {
        assert_eq!(
            judge(None, None, &bounds("2025-06-02T11:30:00Z"), now()),
            Ok(())
        );
        let verdict = judge(None, None, &bounds("2025-06-02T10:00:00Z"), now());
        assert!(
            verdict
                .expect_err("too long")
                .contains("no cycle has succeeded")
        );
    }
}
