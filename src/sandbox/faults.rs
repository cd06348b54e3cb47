//! Switchable faults: the trouble a real CRM gives a client, on demand and reproducibly.
//!
//! This module owns the fault settings, the middleware that applies the request-level faults
//! to `/v1/` and the way a malformed row is broken. See [`Faults`] for what each fault does.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::book::SortKey;
use super::hash;
use super::problem::Problem;
use super::state::App;

/// The faults the sandbox injects; all off by default.
///
/// Faults apply to `/v1/` only, never to `/_sandbox/`. Every `/v1/` request takes the next
/// number of a counter that starts at 1 and restarts at 1 whenever the faults are set, so a
/// test can tell which request gets which answer:
///
/// - `hang`: the request is accepted and never answered (until the sandbox shuts down, when it
///   gets a 503), for client time-out tests.
/// - `delay_ms`: every answer waits this long first.
/// - `rate_limit_every = N`: requests N, 2N, 3N… get 429 `rate_limited` with `Retry-After:
///   retry_after_secs` and `"policy": "burst"` in the body.
/// - `error_share = p`: request n gets a 5xx `unavailable` when `floor(n·p) > floor((n-1)·p)`,
///   so exactly a share p, evenly spread (p = 0.25 fails requests 4, 8, 12…). The statuses
///   cycle 503, 500, 502. A request picked for a 429 gets the 429 instead.
/// - `malformed_share = p`: about a share p of the rows in list pages are broken (a timestamp
///   `"not-a-date"`, an `id` that is an object, a `days_active` that is text), still JSON
///   objects inside `data`. Which rows is decided by a hash of the row's key, so the same row is
///   broken on every read.
/// - `repeat_cursor_on_page = K`: page K of any listing (K ≥ 2; smaller values mean 2) answers
///   with the very `next_cursor` it was called with, so a client that does not notice loops.
/// - `write_error_share = p`: like `error_share`, for writes (`PUT`) only, numbered by a
///   counter of their own: write n gets a 5xx when `floor(n·p) > floor((n-1)·p)`, so
///   `1.0` fails every write and reads are untouched.
/// - `refuse_health_share = p`: about a share p of the items of `PUT /v1/health` are answered
///   `422` (invalid item) while the others are stored. Which accounts is decided by a hash of
///   the account id, so the same account is refused every time.
/// - `lost_answer_share = p`: a share p of writes (numbered like `write_error_share`'s) is
///   carried out and then answered with a 502, as when the answer is lost on its way back:
///   the CRM has the write and the client does not know it.
/// - `daily_write_limit = N`: a daily quota of writes. Writes 1 to N (numbered like
///   `write_error_share`'s) are served; every later one gets 429 `rate_limited` with
///   `"policy": "daily"` and `Retry-After: retry_after_secs` (at least 1), until the faults
///   are set again, which is the sandbox's "next day".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of `/v1/` requests answered with a 5xx, 0.0 to 1.0.
    pub error_share: f64,
    /// Every Nth `/v1/` request gets a 429.
    pub rate_limit_every: Option<u32>,
    /// The `Retry-After` of those 429s, in seconds.
    pub retry_after_secs: u32,
    /// Added to every `/v1/` answer.
    pub delay_ms: u64,
    /// Share of list rows served broken, 0.0 to 1.0.
    pub malformed_share: f64,
    /// The page number (from 2) whose `next_cursor` repeats the cursor it was called with.
    pub repeat_cursor_on_page: Option<u32>,
    /// Accept `/v1/` requests and never answer them.
    pub hang: bool,
    /// Share of `/v1/` writes (`PUT`) answered with a 5xx, 0.0 to 1.0.
    pub write_error_share: f64,
    /// Share of health items refused with a 422, 0.0 to 1.0.
    pub refuse_health_share: f64,
    /// Writes served before every further one gets a daily-limit 429.
    pub daily_write_limit: Option<u32>,
    /// Share of writes carried out and then answered with a 502, 0.0 to 1.0.
    pub lost_answer_share: f64,
}

impl Faults {
    /// Checks the shares, so that a typo does not silently turn a fault off.
    pub fn check(&self) -> Result<(), String> {
        for (name, share) in [
            ("error_share", self.error_share),
            ("malformed_share", self.malformed_share),
            ("write_error_share", self.write_error_share),
            ("lost_answer_share", self.lost_answer_share),
            ("refuse_health_share", self.refuse_health_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} must be between 0 and 1, not {share}"));
            }
        }
        if self.rate_limit_every == Some(0) {
            return Err("rate_limit_every must be 1 or more".to_owned());
        }
        Ok(())
    }

    /// Whether request number `n` (from 1) falls in the error share.
    fn errs(&self, n: u64) -> bool {
        evenly_picked(self.error_share, n)
    }

    /// Whether write number `n` (from 1) falls in the write error share.
    fn write_errs(&self, n: u64) -> bool {
        evenly_picked(self.write_error_share, n)
    }

    /// Whether the health item of this account is refused.
    pub fn refuses_health(&self, account_id: &str) -> bool {
        self.refuse_health_share > 0.0
            && hash::unit(hash::hash_text(&format!("health\u{0}{account_id}")))
                < self.refuse_health_share
    }

    /// Whether write number `n` (from 1) is past the daily quota.
    fn over_daily_limit(&self, n: u64) -> bool {
        self.daily_write_limit
            .is_some_and(|limit| n > u64::from(limit))
    }

    fn rate_limits(&self, n: u64) -> bool {
        self.rate_limit_every
            .is_some_and(|every| every > 0 && n.is_multiple_of(u64::from(every)))
    }

    /// Whether the row with this key is served broken.
    pub fn breaks_row(&self, list: &str, key: &SortKey) -> bool {
        if self.malformed_share <= 0.0 {
            return false;
        }
        let text = format!("{list}\u{0}{}\u{0}{}\u{0}{}", key.at, key.id, key.sub);
        hash::unit(hash::hash_text(&text)) < self.malformed_share
    }

    /// The page whose next cursor repeats the incoming one, if that fault is on.
    pub fn repeating_page(&self) -> Option<u32> {
        self.repeat_cursor_on_page.map(|page| page.max(2))
    }
}

/// Whether number `n` (from 1) of a sequence falls in `share`, spread evenly: exactly a share
/// of any run of numbers from 1.
fn evenly_picked(share: f64, n: u64) -> bool {
    let share = share.clamp(0.0, 1.0);
    (n as f64 * share).floor() > ((n - 1) as f64 * share).floor()
}

/// Breaks one row the way real bridges do, keeping it a JSON object.
pub fn break_row(row: &mut Value, key: &SortKey) {
    let Value::Object(fields) = row else {
        return;
    };
    let time_field = ["updated_at", "submitted_at"]
        .into_iter()
        .find(|name| fields.contains_key(*name));
    let prefer_time = hash::hash_text(&key.id).is_multiple_of(2);
    let id = fields.get("id").cloned();
    match (time_field, id) {
        (Some(name), None) => {
            fields.insert(name.to_owned(), json!("not-a-date"));
        }
        (Some(name), Some(_)) if prefer_time => {
            fields.insert(name.to_owned(), json!("not-a-date"));
        }
        (_, Some(id)) => {
            fields.insert("id".to_owned(), json!({ "value": id }));
        }
        (None, None) => {
            fields.insert("days_active".to_owned(), json!("several"));
        }
    }
}

/// Middleware for `/v1/`: numbers the request and applies the request-level faults.
pub async fn apply(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let faults = app.faults();
    let n = app.fault_counter.fetch_add(1, Ordering::SeqCst) + 1;

    if faults.hang {
        app.until_closing().await;
        return Problem::unavailable("the sandbox is shutting down").into_response();
    }
    if faults.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
    }
    if faults.rate_limits(n) {
        let detail = format!(
            "request {n} hit the sandbox's burst limit; retry after {} s",
            faults.retry_after_secs
        );
        return too_many_requests("burst", faults.retry_after_secs, detail);
    }
    if faults.errs(n) {
        return server_error(n, faults.error_share);
    }
    if request.method() == Method::PUT {
        let write = app.write_counter.fetch_add(1, Ordering::SeqCst) + 1;
        if faults.over_daily_limit(write) {
            let detail = format!("write {write} is over the sandbox's daily write quota");
            return too_many_requests("daily", faults.retry_after_secs.max(1), detail);
        }
        if faults.write_errs(write) {
            return server_error(write, faults.write_error_share);
        }
        if evenly_picked(faults.lost_answer_share, write) {
            let carried_out = next.run(request).await;
            tracing::debug!(status = %carried_out.status(), "lost the answer to write {write}");
            let detail = format!("write {write} was carried out and its answer lost on purpose");
            return Problem::new(StatusCode::BAD_GATEWAY, "unavailable", detail).into_response();
        }
    }
    next.run(request).await
}

/// A `429` under the contract's `policy` (`burst` or `daily`), with `Retry-After`.
fn too_many_requests(policy: &str, retry_after: u32, detail: String) -> Response {
    let mut problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail)
        .with("policy", json!(policy));
    problem.retry_after = Some(retry_after);
    problem.into_response()
}

fn server_error(n: u64, share: f64) -> Response {
    let statuses = [
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::BAD_GATEWAY,
    ];
    let nth_error = (n as f64 * share).floor() as usize;
    let status = statuses[nth_error.saturating_sub(1) % statuses.len()];
    let detail = format!("request {n} failed on purpose (error share {share})");
    Problem::new(status, "unavailable", detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_share_picks_evenly_spread_requests() {
        let faults = Faults {
            error_share: 0.25,
            ..Faults::default()
        };
        let failing: Vec<u64> = (1..=12).filter(|n| faults.errs(*n)).collect();
        assert_eq!(failing, vec![4, 8, 12]);
    }

    #[test]
    fn broken_rows_stay_objects() {
        let key = SortKey::named("A-000001");
        for mut row in [
            json!({"id": "A-1", "updated_at": "2024-01-01T00:00:00Z"}),
            json!({"id": "O-1"}),
            json!({"account_id": "A-1", "feature": "alerts", "days_active": 3}),
        ] {
            let before = row.clone();
            break_row(&mut row, &key);
            assert!(row.is_object());
            assert_ne!(row, before);
        }
    }

    #[test]
    fn a_write_error_share_of_one_fails_every_write() {
        let faults = Faults {
            write_error_share: 1.0,
            ..Faults::default()
        };
        assert!((1..=20).all(|n| faults.write_errs(n)));
        assert!((1..=20).all(|n| !faults.errs(n)), "reads are untouched");
    }

    #[test]
    fn a_daily_write_limit_serves_that_many_writes_and_no_more() {
        let faults = Faults {
            daily_write_limit: Some(3),
            ..Faults::default()
        };
        let limited: Vec<u64> = (1..=6).filter(|n| faults.over_daily_limit(*n)).collect();
        assert_eq!(limited, vec![4, 5, 6]);
        assert!(!Faults::default().over_daily_limit(1_000_000));
    }

    #[test]
    fn refused_health_items_are_a_stable_share_of_accounts() {
        let faults = Faults {
            refuse_health_share: 0.2,
            ..Faults::default()
        };
        let accounts: Vec<String> = (0..1000).map(|n| format!("A-{n:06}")).collect();
        let refused = accounts.iter().filter(|a| faults.refuses_health(a)).count();
        assert!((150..250).contains(&refused), "{refused} of 1000");
        assert!(
            accounts
                .iter()
                .all(|a| faults.refuses_health(a) == faults.refuses_health(a))
        );
        assert!(!Faults::default().refuses_health("A-000001"));
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        let faults = Faults {
            malformed_share: 1.5,
            ..Faults::default()
        };
        assert!(faults.check().unwrap_err().contains("malformed_share"));
    }
}
