//! The answer and unsubscribe pages that survey links open.
//!
//! [`router`] serves four routes; the daemon mounts it, and `touchpoint serve-answers` runs it
//! alone:
//!
//! - `GET /s/{token}`: the answer page, with the score (`?score=7`) or the goal answer
//!   (`?achieved=yes`) from the link preselected; `POST /s/{token}` records the answer.
//! - `GET /u/{token}`: asks to confirm; `POST /u/{token}` unsubscribes. The POST also serves
//!   RFC 8058 one-click requests (`List-Unsubscribe=One-Click`) from mail clients.
//!
//! **A GET records nothing**: corporate link scanners open every link of an email, and must
//! neither answer a survey nor unsubscribe anyone. A tampered, expired or unknown token gets a
//! plain error page and changes nothing. A second answer to the same email replaces the first
//! (see [`crate::surveys::answers`]). Pages carry no remote assets, are not cached, send no
//! referrer (the token is in the URL) and forbid everything but their own inline styles.

pub mod settings;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::model::SurveyKind;
use crate::settings::Settings;
use crate::store::Store;
use crate::surveys::answers::Answer;
use crate::surveys::outbox::{OutboxRow, State as OutboxState};
use crate::surveys::parse_survey;
use crate::surveys::templates::{MAX_COMMENT_CHARS, MAX_GOAL_CHARS, Templates};
use crate::surveys::token::{LinkSigner, Purpose, TokenError};
use crate::telemetry::mask_email;

/// Where the pages read the time: the clock in production, a fixed instant in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What the pages need.
#[derive(Clone)]
pub struct WebState {
    store: Store,
    signer: LinkSigner,
    templates: Arc<Templates>,
    product_name: String,
    clock: Clock,
}

impl WebState {
    pub fn new(settings: &Settings, store: Store, signer: LinkSigner) -> Self {
        Self {
            store,
            signer,
            templates: Arc::clone(&settings.templates),
            product_name: settings.surveys.product_name.clone(),
            clock: Arc::new(Utc::now),
        }
    }

    /// The same state reading the time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// The answer and unsubscribe routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/s/{token}", get(answer_page).post(answer_submit))
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe_submit))
        .with_state(state)
}

/// Serves the pages on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: WebState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("the answer pages stopped: {e}"))
}

/// A page that failed: its status and what the person reads.
struct Failure {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
        }
    }

    fn internal(error: anyhow::Error) -> Self {
        tracing::error!("an answer page failed: {error:#}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Please try the link again later.",
        )
    }

    fn token(error: TokenError) -> Self {
        let status = match error {
            TokenError::Expired => StatusCode::GONE,
            TokenError::Invalid | TokenError::WrongPurpose => StatusCode::BAD_REQUEST,
        };
        Self::new(status, "This link does not work", format!("{error}."))
    }
}

type PageResult = Result<Response, Failure>;

#[derive(Serialize)]
struct ErrorPage<'a> {
    product_name: &'a str,
    title: &'a str,
    message: &'a str,
}

async fn answer_page(
    State(state): State<WebState>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(&state, show_answer(&state, &token, &query).await)
}

async fn answer_submit(
    State(state): State<WebState>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    respond(&state, record_answer(&state, &token, &form).await)
}

async fn unsubscribe_page(State(state): State<WebState>, Path(token): Path<String>) -> Response {
    respond(&state, show_unsubscribe(&state, &token).await)
}

async fn unsubscribe_submit(State(state): State<WebState>, Path(token): Path<String>) -> Response {
    respond(&state, unsubscribe(&state, &token).await)
}

/// The outbox row a token names and the token's expiry, if the token holds and the email went
/// out.
async fn email_of(
    state: &WebState,
    token: &str,
    purpose: Purpose,
) -> Result<(OutboxRow, DateTime<Utc>), Failure> {
    let verified = state
        .signer
        .verify(token, purpose, (state.clock)())
        .map_err(Failure::token)?;
    let row = state
        .store
        .outbox_row(&verified.key)
        .await
        .map_err(Failure::internal)?;
    let went_out = |r: &OutboxRow| {
        matches!(
            OutboxState::parse(&r.state),
            Some(OutboxState::Sent | OutboxState::Sending)
        )
    };
    let row = row.filter(went_out).ok_or_else(|| {
        Failure::new(
            StatusCode::NOT_FOUND,
            "This link does not work",
            "We do not know the email this link came from.",
        )
    })?;
    Ok((row, verified.expires_at))
}

async fn show_answer(state: &WebState, token: &str, query: &HashMap<String, String>) -> PageResult {
    let (row, expires_at) = email_of(state, token, Purpose::Answer).await?;
    let survey = survey_of(&row)?;
    let previous = state
        .store
        .answer(&row.key)
        .await
        .map_err(Failure::internal)?;
    let score = query
        .get("score")
        .and_then(|s| parse_score(s))
        .or(previous.as_ref().and_then(|p| p.score));
    let achieved = query
        .get("achieved")
        .and_then(|a| parse_yes_no(a))
        .or(previous.as_ref().and_then(|p| p.goal_achieved))
        .map(|yes| if yes { "yes" } else { "no" });
    let context = serde_json::json!({
        "product_name": state.product_name,
        "title": "Your answer",
        "action": format!("/s/{token}"),
        "account_name": row.account_name,
        "expires_on": (expires_at - chrono::TimeDelta::seconds(1)).date_naive().to_string(),
        "max_comment": MAX_COMMENT_CHARS,
        "max_goal": MAX_GOAL_CHARS,
        "previous": previous.as_ref().map(|p| serde_json::json!({
            "submitted_on": p.submitted_at.date_naive().to_string(),
        })),
        "score": score,
        "achieved": achieved,
        "goal": previous.as_ref().and_then(|p| p.goal.clone()).unwrap_or_default(),
        "comment": previous.as_ref().and_then(|p| p.comment.clone()).unwrap_or_default(),
    });
    render(state, StatusCode::OK, survey.as_str(), &context)
}

async fn record_answer(
    state: &WebState,
    token: &str,
    form: &HashMap<String, String>,
) -> PageResult {
    let (row, _) = email_of(state, token, Purpose::Answer).await?;
    let survey = survey_of(&row)?;
    let answer = read_form(&row, survey, form, (state.clock)())?;
    state
        .store
        .save_answer(&answer)
        .await
        .map_err(Failure::internal)?;
    tracing::info!(outbox.key = %row.key, survey = survey.as_str(), "recorded a survey answer");
    let context = serde_json::json!({
        "product_name": state.product_name,
        "title": "Thank you",
        "survey": survey.as_str(),
        "score": answer.score,
        "achieved": answer.goal_achieved.unwrap_or(false),
        "goal": answer.goal,
        "comment": answer.comment,
    });
    render(state, StatusCode::OK, "thanks", &context)
}

/// Checks the submitted form into an answer.
fn read_form(
    row: &OutboxRow,
    survey: SurveyKind,
    form: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Answer, Failure> {
    let invalid = |message: &str| {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Your answer was not recorded",
            message.to_owned(),
        )
    };
    let text = |name: &str, max: usize| -> Result<Option<String>, Failure> {
        let value = form
            .get(name)
            .map(|v| printable(v))
            .filter(|v| !v.is_empty());
        match value {
            Some(v) if v.chars().count() > max => Err(invalid(&format!(
                "The {name} is longer than {max} characters."
            ))),
            other => Ok(other),
        }
    };
    let mut answer = Answer {
        key: row.key.clone(),
        survey,
        account_id: row.account_id.clone(),
        contact_id: row.contact_id.clone(),
        score: None,
        goal_achieved: None,
        goal: None,
        comment: text("comment", MAX_COMMENT_CHARS)?,
        submitted_at: now,
    };
    match survey {
        SurveyKind::Nps => {
            let score = form.get("score").and_then(|s| parse_score(s));
            answer.score = Some(score.ok_or_else(|| invalid("Choose a score from 0 to 10."))?);
        }
        SurveyKind::Goal => {
            let achieved = form.get("achieved").and_then(|a| parse_yes_no(a));
            answer.goal_achieved = Some(achieved.ok_or_else(|| invalid("Choose yes or not yet."))?);
            answer.goal = text("goal", MAX_GOAL_CHARS)?;
        }
    }
    Ok(answer)
}

/// A text field as it is stored: trimmed, with control characters other than line breaks and
/// tabs (a NUL pasted from somewhere, an escape) removed. They mean nothing to the people who
/// read the answer, and a NUL cuts the text short in tools that treat it as its end; the rest
/// of what the person wrote is kept.
fn printable(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .collect();
    kept.trim().to_owned()
}

async fn show_unsubscribe(state: &WebState, token: &str) -> PageResult {
    let (row, _) = email_of(state, token, Purpose::Unsubscribe).await?;
    let context = serde_json::json!({
        "product_name": state.product_name,
        "title": "Unsubscribe",
        "action": format!("/u/{token}"),
        "recipient": mask_email(&row.recipient),
    });
    render(state, StatusCode::OK, "unsubscribe", &context)
}

async fn unsubscribe(state: &WebState, token: &str) -> PageResult {
    let (row, _) = email_of(state, token, Purpose::Unsubscribe).await?;
    state
        .store
        .suppress(
            &row.recipient,
            "unsubscribed",
            Some(&row.key),
            (state.clock)(),
        )
        .await
        .map_err(Failure::internal)?;
    tracing::info!(outbox.key = %row.key, recipient = %mask_email(&row.recipient),
        "an address unsubscribed from surveys");
    let context = serde_json::json!({
        "product_name": state.product_name,
        "title": "Unsubscribed",
        "recipient": mask_email(&row.recipient),
    });
    render(state, StatusCode::OK, "unsubscribed", &context)
}

fn survey_of(row: &OutboxRow) -> Result<SurveyKind, Failure> {
    parse_survey(&row.survey)
        .ok_or_else(|| Failure::internal(anyhow::anyhow!("outbox row {} names no survey", row.key)))
}

fn parse_score(text: &str) -> Option<u8> {
    text.trim().parse::<u8>().ok().filter(|s| *s <= 10)
}

fn parse_yes_no(text: &str) -> Option<bool> {
    match text.trim() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn render(
    state: &WebState,
    status: StatusCode,
    page: &str,
    context: &impl Serialize,
) -> PageResult {
    let html = state
        .templates
        .page(page, context)
        .map_err(|e| Failure::internal(anyhow::anyhow!("page {page}: {e}")))?;
    Ok(html_response(status, html))
}

fn respond(state: &WebState, result: PageResult) -> Response {
    let failure = match result {
        Ok(response) => return response,
        Err(failure) => failure,
    };
    let context = ErrorPage {
        product_name: &state.product_name,
        title: failure.title,
        message: &failure.message,
    };
    match state.templates.page("error", &context) {
        Ok(html) => html_response(failure.status, html),
        Err(e) => {
            tracing::error!("the error page failed: {e}");
            (failure.status, failure.message).into_response()
        }
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    response
}
