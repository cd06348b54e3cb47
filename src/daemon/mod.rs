//! `touchpoint run`: the daemon. One process runs the scheduled jobs and one HTTP server, and
//! stops cleanly when asked.
//!
//! - [`schedule`]: cron expressions read in a time zone, DST-safe (pure).
//! - [`jobs`]: the [`Job`] trait and the jobs that come with touchpoint.
//! - [`scheduler`]: when jobs run: the lease, no overlap, catch-up after downtime.
//! - [`lease`]: one active scheduler per database.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, and other modules' routers.
//! - [`metrics`]: the Prometheus metrics.
//! - [`settings`]: the `[daemon]` and `[http]` sections.
//!
//! A [`Daemon`] is assembled, then run until its stop token is cancelled (the binary cancels
//! it on SIGTERM or Ctrl-C; tests cancel it themselves). Stopping happens in this order:
//! no new job run starts and `/readyz` turns unready; a job in flight gets until
//! `daemon.shutdown_deadline_secs` to reach a safe point, while the HTTP server goes on
//! answering (a person submitting an answer page is not cut off); then the server finishes
//! the requests it is answering and closes; the lease is released so a standby takes over at
//! once. A job still running at the deadline is abandoned, which
//! is safe: every write touchpoint makes is idempotent and recorded before it is attempted,
//! and the next start runs the job again.

pub mod http;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod schedule;
pub mod scheduler;
pub mod settings;

use std::future::IntoFuture;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use chrono::Utc;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use jobs::{Job, JobContext, JobOutcome, JobStatus};
pub use metrics::Metrics;

use crate::settings::{Settings, SourceKind};
use crate::store::{Store, timestamp};
use crate::surveys::Delivery;
use crate::web::{self, WebState};
use lease::Lease;
use scheduler::{Scheduler, SchedulerParts};

/// The daemon, assembled: settings, store, jobs and extra routes.
pub struct Daemon {
    settings: Arc<Settings>,
    store: Store,
    metrics: Arc<Metrics>,
    crm_token: Option<SecretString>,
    delivery: Option<Arc<Delivery>>,
    jobs: Vec<Arc<dyn Job>>,
    routers: Vec<Router>,
}

impl Daemon {
    /// Opens the store (bringing its schema up to date) and reads the CRM token, so a
    /// problem stops start-up before anything is scheduled.
    pub async fn new(settings: Settings) -> anyhow::Result<Self> {
        let crm_token = match settings.source.kind {
            SourceKind::Rest => Some(Settings::source_token()?),
            SourceKind::Csv { .. } => None,
        };
        let store = Store::open(&settings.store).await?;
        let mut routers = Vec::new();
        let delivery = if settings.surveys.enabled {
            let delivery = Delivery::new(&settings, None)?;
            let pages = WebState::new(&settings, store.clone(), delivery.signer.clone());
            routers.push(web::router(pages));
            Some(Arc::new(delivery))
        } else {
            None
        };
        Ok(Self {
            settings: Arc::new(settings),
            store,
            metrics: Arc::new(Metrics::new()),
            crm_token,
            delivery,
            jobs: jobs::standard_jobs(),
            routers,
        })
    }

    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.settings)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The metrics, for a module that counts through them or registers its own.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Adds a job; it needs a schedule under `daemon.jobs.<name>`.
    pub fn job(mut self, job: Arc<dyn Job>) -> Self {
        self.jobs.push(job);
        self
    }

    /// Mounts a router (with its state applied) beside the daemon's own endpoints.
    pub fn router(mut self, router: Router) -> Self {
        self.routers.push(router);
        self
    }

    /// Serves and schedules until `stop` is cancelled, then stops as the module explains.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let settings = Arc::clone(&self.settings);
        let lease = Arc::new(Lease::new(settings.daemon.lease_ttl));
        let scheduler = Scheduler::new(SchedulerParts {
            jobs: self.jobs,
            settings: Arc::clone(&settings),
            store: self.store.clone(),
            metrics: Arc::clone(&self.metrics),
            crm_token: self.crm_token,
            delivery: self.delivery,
            lease: Arc::clone(&lease),
            stop: stop.clone(),
        })?;
        let listener = TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| {
                format!("failed to listen on {} (http.listen)", settings.http.listen)
            })?;
        let address = listener
            .local_addr()
            .context("failed to read the address the HTTP server listens on")?;
        log_start(&settings, &scheduler, lease.holder(), address);

        let state = http::HttpState {
            store: self.store.clone(),
            metrics: Arc::clone(&self.metrics),
            lease,
            ready_max_cycle_age: settings.http.ready_max_cycle_age,
            started_at: Utc::now(),
            stopping: stop.clone(),
        };
        let app = http::app(state, self.routers);
        let close_http = CancellationToken::new();
        let server = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(close_http.clone().cancelled_owned())
                .into_future(),
        );

        scheduler.run_until_stopped().await;
        tracing::info!("stopping: no new job runs; waiting for the work in flight");
        let deadline = tokio::time::Instant::now() + settings.daemon.shutdown_deadline;
        let drained = scheduler.drain(deadline).await;
        close_http.cancel();
        let served = tokio::time::timeout_at(
            deadline.max(tokio::time::Instant::now() + HTTP_CLOSE_GRACE),
            server,
        )
        .await;
        scheduler.release().await;
        report_stop(drained, served, settings.daemon.shutdown_deadline.as_secs())
    }
}

/// How long the HTTP server gets to finish the requests it is answering once the jobs are done,
/// when the shutdown deadline is already spent.
const HTTP_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn log_start(
    settings: &Settings,
    scheduler: &Scheduler,
    instance: &str,
    address: std::net::SocketAddr,
) {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        instance,
        address = %address,
        store = %settings.store.path.display(),
        timezone = %settings.daemon.timezone,
        "touchpoint daemon started; HTTP on http://{address}"
    );
    for (job, schedule, next) in scheduler.plan(Utc::now()) {
        let next = next.map_or("never".to_owned(), timestamp);
        tracing::info!(
            job,
            schedule,
            next,
            "scheduled {job}: \"{schedule}\", next at {next}"
        );
    }
}

type Served =
    Result<Result<std::io::Result<()>, tokio::task::JoinError>, tokio::time::error::Elapsed>;

fn report_stop(drained: bool, served: Served, deadline_secs: u64) -> anyhow::Result<()> {
    if !drained {
        tracing::warn!(
            deadline_secs,
            "a job was still running at the shutdown deadline and was abandoned; nothing is \
             half-recorded, and the next start runs it again"
        );
    }
    match served {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("the HTTP server failed"),
        Ok(Err(e)) => return Err(e).context("the HTTP server task ended abnormally"),
        Err(_) => tracing::warn!("HTTP requests were still open at the shutdown deadline"),
    }
    tracing::info!("touchpoint daemon stopped");
    Ok(())
}

/// A stop token cancelled by the first SIGTERM or SIGINT (Ctrl-C). A second signal ends the
/// process at once, for an operator who does not want to wait for the work in flight.
pub fn stop_on_signals() -> anyhow::Result<CancellationToken> {
    let stop = CancellationToken::new();
    let mut signals = Signals::new()?;
    let token = stop.clone();
    tokio::spawn(async move {
        let name = signals.next().await;
        tracing::info!("received {name}: stopping cleanly (a second signal stops at once)");
        token.cancel();
        let name = signals.next().await;
        tracing::warn!("received {name} again: stopping now");
        std::process::exit(130);
    });
    Ok(stop)
}

/// The signals that ask the daemon to stop.
struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?,
        })
    }

    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }

    #[cfg(not(unix))]
    fn new() -> anyhow::Result<Self> {
        Ok(Self {})
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
