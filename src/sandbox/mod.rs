//! The sandbox CRM: an HTTP server that speaks touchpoint's REST contract over a deterministic
//! generated book or a CSV book, with switchable faults. It powers the demo, the tests and the
//! benchmarks; it is not a CRM and keeps everything in memory.
//!
//! Start one with [`spawn`] (tests: port 0, a [`SandboxHandle`] to steer it) or [`serve`]
//! (the `sandbox` command: a listener and a shutdown future; [`SandboxArgs`] are its flags).
//!
//! # The contract
//!
//! Reads (`GET /v1/accounts`, `owners`, `contacts`, `activities`, `usage`, `survey-responses`,
//! `tasks`) and writes (`PUT /v1/health`, `/v1/tasks/{key}`, `/v1/survey-responses/{id}`)
//! follow the contract: `Authorization: Bearer <token>`, `limit` 1-1000 (default 100), opaque
//! cursors, problem+json errors with a `code`. A cursor carries the filters of the first
//! request, so later pages may send the cursor alone (and filters sent beside a cursor are
//! ignored); a cursor the sandbox did not issue for that list is a 422. Lists resume strictly
//! after the last row served, so rows written meanwhile are not served twice.
//!
//! # Sandbox-only endpoints
//!
//! Under `/_sandbox/`, without a token and never subject to faults:
//!
//! - `GET /_sandbox/writes`: every non-GET request received on `/v1/`, in order: `method`,
//!   `path`, `body` (JSON; text when it was not JSON) and the `status` answered.
//! - `GET /_sandbox/faults`, `PUT /_sandbox/faults`: read or replace the [`Faults`] (a JSON
//!   object; absent fields are off, unknown fields a 422). Setting them restarts the request
//!   numbering the faults count with.
//! - `POST /_sandbox/tasks/{key}/status` with `{"status": "completed" | "canceled" | "open"}`:
//!   a CSM changing a task in the CRM; its `updated_at` moves forward.
//! - `GET /_sandbox/stats`: requests per endpoint, 429 and 5xx answers served, CSV rows skipped
//!   at load time ([`SandboxStats`]).
//! - `GET /_sandbox/health`: the latest health item per account.
//! - `GET /_sandbox/summary`: counts that describe the book ([`BookSummary`]).
//!
//! # Limits
//!
//! A generated book holds at most 999,999 accounts (ids have six digits). Writes, tasks and
//! pushed survey answers live in memory and are gone when the sandbox stops. A task's owner must
//! be an owner of the book. A CSV book is read once at start-up, except `usage.csv`, which is
//! streamed again for each new usage window (the last eight windows are kept).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use chrono::{Datelike, NaiveDate, Utc};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

mod admin;
mod book;
mod cli;
mod csv_book;
mod faults;
mod generate;
mod hash;
mod paging;
mod problem;
mod reads;
mod server;
mod state;
mod tasks;
mod writes;

pub use book::BookSummary;
pub use cli::SandboxArgs;
pub use faults::Faults;
pub use generate::usage::{FEATURES, KEY_FEATURES};
pub use state::{RecordedWrite, SandboxStats};

use book::Book;
use state::{App, lock};

/// What a sandbox serves and how.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Accounts in the generated book (ignored with `from_csv`).
    pub accounts: usize,
    pub seed: u64,
    /// The "today" of the generated book: everything on record happened before it.
    pub anchor: NaiveDate,
    /// Serve this CSV book instead of a generated one.
    pub from_csv: Option<PathBuf>,
    /// The bearer token `/v1/` requires.
    pub token: String,
    pub faults: Faults,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            accounts: 1000,
            seed: 42,
            anchor: Utc::now().date_naive(),
            from_csv: None,
            token: "sandbox-token".to_owned(),
            faults: Faults::default(),
        }
    }
}

/// A running sandbox, for tests and the demo. Dropping the handle stops the server as well,
/// without waiting for it; [`SandboxHandle::shutdown`] waits.
pub struct SandboxHandle {
    app: Arc<App>,
    base_url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Replaces the faults; invalid shares are clamped to 0..=1 with a warning.
    pub fn set_faults(&self, faults: Faults) {
        self.app.set_faults(clamped(faults));
    }

    pub fn writes(&self) -> Vec<RecordedWrite> {
        lock(&self.app.writes).clone()
    }

    /// The latest health item per account id.
    pub fn health(&self) -> HashMap<String, Value> {
        lock(&self.app.health).clone()
    }

    pub fn tasks(&self) -> Vec<Value> {
        let tasks = lock(&self.app.tasks).all();
        tasks
            .iter()
            .filter_map(|task| serde_json::to_value(task).ok())
            .collect()
    }

    /// Changes a task's status as a CSM would; false when there is no such task or the status
    /// is not `open`, `completed` or `canceled`.
    pub fn set_task_status(&self, key: &str, status: &str) -> bool {
        if !tasks::STATUSES.contains(&status) {
            return false;
        }
        lock(&self.app.tasks)
            .set_status(key, status, tasks::now())
            .is_some()
    }

    pub fn stats(&self) -> SandboxStats {
        lock(&self.app.stats).clone()
    }

    pub fn summary(&self) -> BookSummary {
        self.app.book.summary()
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => info!("sandbox CRM stopped"),
            Ok(Err(error)) => warn!(error = format!("{error:#}"), "sandbox CRM failed"),
            Err(error) => warn!(error = %error, "sandbox CRM task ended abnormally"),
        }
    }
}

fn clamped(mut faults: Faults) -> Faults {
    if let Err(problem) = faults.check() {
        warn!(problem, "sandbox faults out of range; clamping them");
        faults.error_share = faults.error_share.clamp(0.0, 1.0);
        faults.malformed_share = faults.malformed_share.clamp(0.0, 1.0);
        faults.write_error_share = faults.write_error_share.clamp(0.0, 1.0);
        faults.refuse_health_share = faults.refuse_health_share.clamp(0.0, 1.0);
        faults.rate_limit_every = faults.rate_limit_every.filter(|every| *every > 0);
    }
    faults
}

/// Starts a sandbox on `127.0.0.1` and a free port, serving in a background task.
pub async fn spawn(options: SandboxOptions) -> anyhow::Result<SandboxHandle> {
    let app = Arc::new(build_app(options).await?);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("failed to bind the sandbox CRM to a local port")?;
    let address = listener
        .local_addr()
        .context("failed to read the sandbox CRM's address")?;

    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(server::serve_app(Arc::clone(&app), listener, shutdown));
    Ok(SandboxHandle {
        app,
        base_url: format!("http://{address}"),
        stop,
        task,
    })
}

/// Serves a sandbox on `listener` until `shutdown` resolves.
pub async fn serve(
    options: SandboxOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Arc::new(build_app(options).await?);
    if let Ok(address) = listener.local_addr() {
        tracing::debug!(address = %address, "sandbox CRM listening");
    }
    server::serve_app(app, listener, shutdown).await
}

/// Checks the options and loads the book (off the async threads: a large book takes seconds).
async fn build_app(options: SandboxOptions) -> anyhow::Result<App> {
    options
        .faults
        .check()
        .map_err(|problem| anyhow!("sandbox faults: {problem}"))?;
    if !(2000..=2100).contains(&options.anchor.year()) {
        bail!("sandbox anchor {} is outside 2000-2100", options.anchor);
    }

    let started = std::time::Instant::now();
    let source = options.clone();
    let (book, rejected) = tokio::task::spawn_blocking(move || load_book(&source))
        .await
        .context("failed to load the sandbox book")??;
    let summary = book.summary();
    info!(
        source = %summary.source,
        anchor = %summary.anchor,
        accounts = summary.counts.get("accounts").copied().unwrap_or(0),
        duration_ms = started.elapsed().as_millis() as u64,
        "sandbox book ready"
    );

    let app = App::new(book, options.token, options.seed, options.faults);
    lock(&app.stats).rejected_rows = rejected;
    Ok(app)
}

type Loaded = (Arc<dyn Book>, BTreeMap<String, u64>);

fn load_book(options: &SandboxOptions) -> anyhow::Result<Loaded> {
    match &options.from_csv {
        Some(dir) => {
            let book = csv_book::CsvBook::load(dir, options.anchor)
                .with_context(|| format!("failed to load the CSV book in {}", dir.display()))?;
            let rejected = book.rejected().clone();
            Ok((Arc::new(book), rejected))
        }
        None => {
            let book = generate::Generated::build(options.accounts, options.seed, options.anchor)?;
            Ok((Arc::new(book), BTreeMap::new()))
        }
    }
}
