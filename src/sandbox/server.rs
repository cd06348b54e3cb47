//! The sandbox's HTTP server: routes, the layers every request passes, and graceful shutdown.
//!
//! A `/v1/` request passes, outermost first: the counters of `/_sandbox/stats`, the write log
//! (non-GET requests), the faults, the bearer token check, then its handler. `/_sandbox/`
//! requests pass the counters only.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::Value;
use tokio::net::TcpListener;

use super::problem::Problem;
use super::state::{App, RecordedWrite, lock};
use super::{admin, faults, reads, writes};

/// The largest request body kept by the write log (100 health items fit easily).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Every route, as `/_sandbox/stats` names them.
const ROUTES: [&str; 16] = [
    "/v1/accounts",
    "/v1/owners",
    "/v1/contacts",
    "/v1/activities",
    "/v1/usage",
    "/v1/survey-responses",
    "/v1/survey-responses/{id}",
    "/v1/tasks",
    "/v1/tasks/{key}",
    "/v1/health",
    "/_sandbox/writes",
    "/_sandbox/faults",
    "/_sandbox/tasks/{key}/status",
    "/_sandbox/stats",
    "/_sandbox/health",
    "/_sandbox/summary",
];

pub fn router(app: Arc<App>) -> Router {
    let contract = Router::new()
        .route(ROUTES[0], get(reads::accounts))
        .route(ROUTES[1], get(reads::owners))
        .route(ROUTES[2], get(reads::contacts))
        .route(ROUTES[3], get(reads::activities))
        .route(ROUTES[4], get(reads::usage))
        .route(ROUTES[5], get(reads::survey_responses))
        .route(ROUTES[6], put(writes::put_survey_response))
        .route(ROUTES[7], get(reads::tasks))
        .route(ROUTES[8], put(writes::put_task))
        .route(ROUTES[9], put(writes::put_health))
        .layer(from_fn_with_state(Arc::clone(&app), require_token))
        .layer(from_fn_with_state(Arc::clone(&app), faults::apply))
        .layer(from_fn_with_state(Arc::clone(&app), record_writes));

    let sandbox = Router::new()
        .route(ROUTES[10], get(admin::writes))
        .route(ROUTES[11], get(admin::faults).put(admin::set_faults))
        .route(ROUTES[12], post(admin::set_task_status))
        .route(ROUTES[13], get(admin::stats))
        .route(ROUTES[14], get(admin::health))
        .route(ROUTES[15], get(admin::summary));

    contract
        .merge(sandbox)
        .fallback(unrouted)
        .layer(from_fn_with_state(Arc::clone(&app), count_requests))
        .with_state(app)
}

async fn unrouted() -> Problem {
    Problem::not_found("no such endpoint")
}

/// Serves `app` on `listener` until `shutdown` resolves; requests that hang on purpose are then
/// answered 503 so that the server can stop.
pub async fn serve_app(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let closing = Arc::clone(&app);
    let stop = async move {
        shutdown.await;
        closing.close();
    };
    axum::serve(listener, router(app))
        .with_graceful_shutdown(stop)
        .await
        .context("failed to serve the sandbox CRM")
}

async fn require_token(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if given == Some(app.token.as_str()) {
        return next.run(request).await;
    }
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Keeps every non-GET request on `/v1/` with the status it was answered with.
async fn record_writes(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        let detail = format!("request bodies are limited to {MAX_BODY_BYTES} bytes");
        return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "validation_failed", detail)
            .into_response();
    };
    let method = parts.method.to_string();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let body = recorded_body(&bytes);

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    lock(&app.writes).push(RecordedWrite {
        method,
        path,
        body,
        status: response.status().as_u16(),
    });
    response
}

fn recorded_body(bytes: &Bytes) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Counts requests per endpoint, and the 429 and 5xx answers.
async fn count_requests(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let endpoint = endpoint_name(request.method(), request.uri().path());
    *lock(&app.stats).requests.entry(endpoint).or_default() += 1;

    let response = next.run(request).await;
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let mut stats = lock(&app.stats);
        if status.is_server_error() {
            stats.server_errors += 1;
        } else {
            stats.rate_limited += 1;
        }
    }
    response
}

/// `METHOD /route`, with path parameters shown as in the route (`/v1/tasks/{key}`).
fn endpoint_name(method: &Method, path: &str) -> String {
    let route = ROUTES
        .iter()
        .find(|route| same_route(route, path))
        .copied()
        .unwrap_or("(no such route)");
    format!("{method} {route}")
}

fn same_route(route: &str, path: &str) -> bool {
    let (route, path): (Vec<_>, Vec<_>) = (route.split('/').collect(), path.split('/').collect());
    route.len() == path.len()
        && route
            .iter()
            .zip(&path)
            .all(|(want, got)| want == got || (want.starts_with('{') && !got.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_named_by_their_route() {
        assert_eq!(
            endpoint_name(&Method::PUT, "/v1/tasks/risk:A-1"),
            "PUT /v1/tasks/{key}"
        );
        assert_eq!(endpoint_name(&Method::GET, "/v1/tasks"), "GET /v1/tasks");
        assert_eq!(endpoint_name(&Method::GET, "/v2/x"), "GET (no such route)");
    }
}
