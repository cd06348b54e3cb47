//! The HTTP client for touchpoint's REST contract: paged reads and idempotent writes.
//!
//! It owns transport concerns only: timeouts, gzip, a cap on response size, a client-side
//! request rate, retries with capped exponential backoff and jitter (5xx, 423, timeouts),
//! `Retry-After` on 429 (the same request, and so the same cursor, is sent again), a daily
//! limit that stops every later request of the run, and the detection of a cursor that
//! repeats. What the rows mean is the puller's business; a row that does not parse is handed
//! on as a [`Rejected`] record so that one bad row costs one record.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use url::Url;

use super::SourceError;
use crate::model::{Page, Rejected};
use crate::settings::SourceSettings;

/// Counters an operator (and the run report) reads to see how hard a pull had to work.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub bytes: AtomicU64,
}

/// A snapshot of [`ClientStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientCounts {
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
    pub bytes: u64,
}

/// A client for one CRM (or bridge) that speaks the contract.
#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
    limiter: Arc<DefaultDirectRateLimiter>,
    settings: SourceSettings,
    stats: Arc<ClientStats>,
    /// The `Retry-After` of the first 429 with `"policy": "daily"`. From then on every request
    /// of this client (and its clones) fails at once with that error instead of being sent:
    /// the CRM's quota is spent for the day, and each further write would only cost another
    /// refusal. A client lives for one cycle or job run, so the next one asks the CRM again.
    daily_limit: Arc<OnceLock<Duration>>,
}

/// The RFC 9457 problem body, as far as the client needs it.
#[derive(Debug, Default, Deserialize)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    policy: Option<String>,
}

impl RestClient {
    pub fn new(settings: &SourceSettings, token: SecretString) -> Result<Self, SourceError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .gzip(true)
            .user_agent(concat!("touchpoint/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Transport(e.to_string()))?;
        let per_second = NonZeroU32::new(settings.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::direct(Quota::per_second(per_second));
        Ok(Self {
            http,
            base: settings.base_url.clone(),
            token,
            limiter: Arc::new(limiter),
            settings: settings.clone(),
            stats: Arc::default(),
            daily_limit: Arc::default(),
        })
    }

    /// Whether the CRM answered this client with a daily limit (see `daily_limit`).
    pub fn daily_limit_reached(&self) -> bool {
        self.daily_limit.get().is_some()
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    pub fn counts(&self) -> ClientCounts {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientCounts {
            requests: read(&self.stats.requests),
            retries: read(&self.stats.retries),
            rate_limited: read(&self.stats.rate_limited),
            bytes: read(&self.stats.bytes),
        }
    }

    /// Walks every page of a list, handing each row to `sink` as it is read.
    ///
    /// The next page is asked for as soon as the current one names it, and its rows are parsed
    /// while the server prepares that page: at most two pages are held at a time. A cursor the
    /// server already handed out ends the walk with [`SourceError::RepeatingCursor`]: following
    /// it would loop forever or count rows twice.
    pub async fn for_each<T: DeserializeOwned>(
        &self,
        dataset: &str,
        path: &str,
        params: &[(&str, String)],
        sink: &mut (dyn FnMut(Result<T, Rejected>) + Send),
    ) -> Result<u64, SourceError> {
        let started = std::time::Instant::now();
        let mut seen = HashSet::new();
        let mut pages = 0;
        let mut body = self.page(path, params, None).await?;

        loop {
            let page: Page<Box<RawValue>> =
                serde_json::from_slice(&body).map_err(|e| SourceError::Malformed {
                    what: format!("{path} page {}", pages + 1),
                    reason: e.to_string(),
                })?;
            pages += 1;
            let mut take_rows = || {
                for row in &page.data {
                    sink(parse_row(dataset, row));
                }
            };

            let next = match page.next_cursor.as_deref() {
                None => {
                    take_rows();
                    tracing::debug!(
                        dataset,
                        pages,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "read the {dataset} list"
                    );
                    return Ok(pages);
                }
                Some(next) if !seen.insert(next.to_owned()) => {
                    return Err(SourceError::RepeatingCursor {
                        path: path.to_owned(),
                        page: pages,
                    });
                }
                Some(next) => next.to_owned(),
            };
            let (fetched, ()) =
                tokio::join!(self.page(path, params, Some(&next)), async { take_rows() });
            body = fetched?;
        }
    }

    /// Reads one page of a list.
    async fn page(
        &self,
        path: &str,
        params: &[(&str, String)],
        cursor: Option<&str>,
    ) -> Result<Vec<u8>, SourceError> {
        let mut query: Vec<(&str, String)> = params.to_vec();
        query.push(("limit", self.settings.page_size.to_string()));
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        let (_, body) = self.send(Method::GET, path, &query, None).await?;
        Ok(body)
    }

    /// Sends an idempotent `PUT` with a JSON body and returns the parsed answer.
    pub async fn put<B: serde::Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, SourceError> {
        self.put_with_status(path, body)
            .await
            .map(|(_, answer)| answer)
    }

    /// Like [`RestClient::put`], with the success status (`200` or `201`) as well.
    pub async fn put_with_status<B: serde::Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(u16, R), SourceError> {
        let payload = serde_json::to_vec(body).map_err(|e| SourceError::Malformed {
            what: format!("request body for {path}"),
            reason: e.to_string(),
        })?;
        let (status, answer) = self.send(Method::PUT, path, &[], Some(payload)).await?;
        let parsed = serde_json::from_slice(&answer).map_err(|e| SourceError::Malformed {
            what: format!("answer of PUT {path}"),
            reason: e.to_string(),
        })?;
        Ok((status, parsed))
    }

    /// One logical request: retried as the contract says, under the client-side rate limit.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), SourceError> {
        let url = self.base.join(path).map_err(|e| SourceError::Malformed {
            what: format!("url for {path}"),
            reason: e.to_string(),
        })?;
        if let Some(wait) = self.daily_limit.get() {
            return Err(SourceError::RateLimited {
                retry_after: *wait,
                daily: true,
            });
        }
        let attempt = || self.attempt(method.clone(), url.clone(), query, body.clone());
        let longest_wait = self.settings.max_retry_after;

        attempt
            .retry(self.backoff())
            .when(|e: &SourceError| e.is_retryable(longest_wait))
            .adjust(|e: &SourceError, planned: Option<Duration>| {
                let planned = planned?;
                Some(e.retry_after().map_or(planned, |wait| wait.max(planned)))
            })
            .notify(|e: &SourceError, wait: Duration| {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    http.path = path,
                    wait_ms = wait.as_millis() as u64,
                    "retrying a CRM request: {e}"
                );
            })
            .await
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.settings.backoff_base)
            .with_max_delay(self.settings.backoff_max)
            .with_max_times(self.settings.max_retries as usize)
            .with_jitter()
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), SourceError> {
        self.limiter.until_ready().await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);

        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.token.expose_secret())
            .header(header::ACCEPT, "application/json")
            .query(query);
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(transport_error)?;

        let status = response.status();
        if status.is_success() {
            return Ok((status.as_u16(), self.read_capped(response).await?));
        }
        Err(self.error_for(status, response).await)
    }

    /// Reads a body chunk by chunk and stops as soon as it passes the configured cap, so a
    /// runaway server cannot exhaust memory.
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, SourceError> {
        let limit = self.settings.max_body_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(SourceError::BodyTooLarge { limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(SourceError::BodyTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        self.stats
            .bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(body)
    }

    async fn error_for(&self, status: StatusCode, response: reqwest::Response) -> SourceError {
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let problem: Problem = match self.read_capped(response).await {
            Ok(body) => serde_json::from_slice(&body).unwrap_or_default(),
            Err(_) => Problem::default(),
        };
        let title = problem
            .title
            .or(problem.code)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());

        match status.as_u16() {
            429 => {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                let retry_after = retry_after.unwrap_or(Duration::from_secs(1));
                let daily = problem.policy.as_deref() == Some("daily");
                if daily && self.daily_limit.set(retry_after).is_ok() {
                    tracing::warn!(
                        retry_after_secs = retry_after.as_secs(),
                        "the CRM's daily request limit is reached: no further request is sent \
                         in this run"
                    );
                }
                SourceError::RateLimited { retry_after, daily }
            }
            401 => SourceError::Unauthorized,
            403 => SourceError::Forbidden,
            404 => SourceError::NotFound,
            423 | 500..=599 => SourceError::Unavailable {
                status: status.as_u16(),
                title,
            },
            other => SourceError::Refused {
                status: other,
                title,
            },
        }
    }
}

fn transport_error(error: reqwest::Error) -> SourceError {
    if error.is_timeout() {
        SourceError::Timeout
    } else {
        SourceError::Transport(without_url(error))
    }
}

/// Describes a transport error without its URL: query strings can carry ids and cursors.
fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Parses one row straight from its bytes. Only a row that fails is parsed a second time, into
/// a generic value, to salvage its id for the rejection.
fn parse_row<T: DeserializeOwned>(dataset: &str, row: &RawValue) -> Result<T, Rejected> {
    let text = row.get();
    let salvage = || serde_json::from_str(text).unwrap_or_default();
    if !text.starts_with('{') {
        return Err(Rejected::from_json(
            dataset,
            &salvage(),
            "row is not a JSON object",
        ));
    }
    serde_json::from_str(text)
        .map_err(|_| Rejected::from_json(dataset, &salvage(), explain::<T>(text)))
}

/// Why a row does not parse, in words for the person who fixes the data: the field, what it
/// expected and what came. The row is parsed a second time with its path tracked, which only
/// a failing row pays for.
fn explain<T: DeserializeOwned>(text: &str) -> String {
    let mut json = serde_json::Deserializer::from_str(text);
    let Err(error) = serde_path_to_error::deserialize::<_, T>(&mut json) else {
        return "the row could not be read".to_owned();
    };
    let message = crate::model::plain_message(&without_position(error.inner()));
    match error.path().to_string().as_str() {
        "." => message,
        field => format!("field `{field}`: {message}"),
    }
}

/// serde_json's message without the " at line 1 column 57" it adds: that is a position
/// inside the one row, which reads like a line of a file that does not exist.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(message) => message.to_owned(),
        None => text,
    }
}
