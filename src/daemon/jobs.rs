//! The daemon's jobs: each a small struct with one `run(ctx)` method. The scheduler decides
//! *when* a job runs (its schedule, the lease, no overlap, catch-up); the job decides *what*
//! happens, and says how it went.
//!
//! [`standard_jobs`] lists the jobs that come with touchpoint: `pull_and_score` (one cycle,
//! surveys and tasks included), `reconcile_tasks` (task closings from the CRM between cycles)
//! and `push_answers` (collected answers to the CRM between cycles). More work plugs in the
//! same way: implement [`Job`], add it with [`super::Daemon::job`], and give it a schedule
//! under `daemon.jobs.<name>` in the configuration.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use secrecy::SecretString;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::cycle::{Cycle, CycleReport, Mode};
use crate::settings::{Settings, SourceKind};
use crate::source::{CsvSource, RestClient};
use crate::store::{RunStatus, Store};
use crate::surveys::{Delivery, SurveyReport, answers};

/// The `command` the daemon's cycles are recorded under in the run history.
pub const RUN_COMMAND: &str = "run";
/// The command a one-shot `touchpoint cycle` records its run under.
pub const CYCLE_COMMAND: &str = "cycle";

/// A unit of scheduled work.
pub trait Job: Send + Sync {
    /// The name its schedule is configured under (`daemon.jobs.<name>`) and logged with.
    fn name(&self) -> &'static str;

    /// Does the work once. An `Err` is logged with its cause chain and counted as failed;
    /// the next tick runs the job again.
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, anyhow::Result<JobOutcome>>;
}

/// What a job run gets from the daemon.
#[derive(Clone)]
pub struct JobContext {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// The CRM API token, read once at start-up; `None` for a CSV source.
    pub crm_token: Option<SecretString>,
    /// The mail backend and link signer when surveys are on; cycles send through it.
    pub delivery: Option<Arc<Delivery>>,
    /// Cancelled when the daemon is asked to stop: stop at the next safe point.
    pub stop: CancellationToken,
    /// The fire time this run is for.
    pub due: DateTime<Utc>,
}

impl JobContext {
    /// A fresh CRM client for this run (its counters then count this run alone), or `None`
    /// when the book comes from CSV files.
    pub fn crm(&self) -> anyhow::Result<Option<RestClient>> {
        let Some(token) = &self.crm_token else {
            return Ok(None);
        };
        let client = RestClient::new(&self.settings.source, token.clone())
            .context("failed to build the CRM client")?;
        Ok(Some(client))
    }
}

/// How a job run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Succeeded,
    /// Done, except for some records that were skipped with a reason.
    Partial,
    Failed,
    /// Stopped at a safe point because the daemon is stopping; the next start runs it again.
    Interrupted,
    /// Nothing to do in this configuration (for example, no CRM to reconcile with).
    Skipped,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Succeeded => "succeeded",
            JobStatus::Partial => "partial",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
            JobStatus::Skipped => "skipped",
        }
    }
}

/// What a job run reports back for its summary line and the job state.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub status: JobStatus,
    /// The run in the run history, for jobs that record one.
    pub run_id: Option<String>,
    pub detail: Option<String>,
}

impl JobOutcome {
    pub fn new(status: JobStatus, detail: impl Into<String>) -> Self {
        Self {
            status,
            run_id: None,
            detail: Some(detail.into()),
        }
    }

    fn of_cycle(report: &CycleReport) -> Self {
        let status = match report.status {
            RunStatus::Succeeded => JobStatus::Succeeded,
            RunStatus::Partial => JobStatus::Partial,
            RunStatus::Interrupted => JobStatus::Interrupted,
            RunStatus::Failed | RunStatus::Running => JobStatus::Failed,
        };
        let counts = format!(
            "{} scored, {} changed, {} written, {} task(s) opened",
            report.scored,
            report.changed().count(),
            report.writeback.as_ref().map_or(0, |w| w.stored_count),
            report.tasks.as_ref().map_or(0, |t| t.opened.len()),
        );
        Self {
            status,
            run_id: report.run_id.clone(),
            detail: Some(report.reason.clone().unwrap_or(counts)),
        }
    }
}

/// The jobs touchpoint schedules out of the box.
pub fn standard_jobs() -> Vec<Arc<dyn Job>> {
    vec![
        Arc::new(PullAndScore),
        Arc::new(ReconcileTasks),
        Arc::new(PushAnswers),
    ]
}

/// One cycle in act mode: pull, score, store, write back, send the surveys due, open tasks.
pub struct PullAndScore;

impl Job for PullAndScore {
    fn name(&self) -> &'static str {
        "pull_and_score"
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, anyhow::Result<JobOutcome>> {
        Box::pin(async move {
            let started = Instant::now();
            let report = match cycle(ctx).await {
                Ok(report) => report,
                Err(error) => {
                    ctx.metrics.observe_failed_cycle(started.elapsed());
                    return Err(error);
                }
            };
            ctx.metrics.observe_cycle(&report, started.elapsed());
            if let Some(surveys) = &report.surveys {
                count_emails(&ctx.metrics, surveys);
            }
            Ok(JobOutcome::of_cycle(&report))
        })
    }
}

/// Runs one cycle. When it fails with an error, the CRM requests it made are counted here
/// (a report would have carried them).
async fn cycle(ctx: &JobContext) -> anyhow::Result<CycleReport> {
    let crm = ctx.crm()?;
    let result = cycle_with(ctx, crm.as_ref()).await;
    if let (Err(_), Some(client)) = (&result, &crm) {
        ctx.metrics.observe_client(client.counts());
    }
    result
}

async fn cycle_with(ctx: &JobContext, crm: Option<&RestClient>) -> anyhow::Result<CycleReport> {
    let settings = ctx.settings.as_ref();
    let now = Utc::now();
    match (&settings.source.kind, crm) {
        (SourceKind::Rest, Some(client)) => {
            let cycle = Cycle {
                settings,
                source: client,
                crm: Some(client),
                store: Some(&ctx.store),
                delivery: ctx.delivery.as_deref(),
                command: RUN_COMMAND,
                stop: Some(&ctx.stop),
                replay: false,
            };
            cycle.run(now, Mode::Act).await
        }
        (SourceKind::Csv { dir }, _) => {
            let source = CsvSource::new(dir.clone());
            let cycle = Cycle {
                settings,
                source: &source,
                crm: None,
                store: Some(&ctx.store),
                delivery: ctx.delivery.as_deref(),
                command: RUN_COMMAND,
                stop: Some(&ctx.stop),
                replay: false,
            };
            cycle.run(now, Mode::Act).await
        }
        (SourceKind::Rest, None) => anyhow::bail!("the REST source needs a CRM token"),
    }
}

/// Adds a cycle's survey emails to the email counters. Deferred emails are not counted here:
/// the same email may wait several cycles, so `/metrics` reads how many wait now instead.
fn count_emails(metrics: &Metrics, surveys: &SurveyReport) {
    let emails = &metrics.emails;
    emails.sent.inc_by(surveys.sent as u64);
    emails.failed.inc_by(surveys.failures.len() as u64);
    emails.suppressed.inc_by(surveys.bounced as u64);
}

/// Pushes the answers collected by the answer pages to the CRM between cycles, so people see
/// them there (and a detractor's comment reaches the account team) without waiting for the
/// next cycle. The next cycle folds them into scores and tasks either way.
pub struct PushAnswers;

impl Job for PushAnswers {
    fn name(&self) -> &'static str {
        "push_answers"
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, anyhow::Result<JobOutcome>> {
        Box::pin(async move {
            if !ctx.settings.surveys.enabled {
                return Ok(JobOutcome::new(JobStatus::Skipped, "surveys are off"));
            }
            let Some(client) = ctx.crm()? else {
                return Ok(JobOutcome::new(JobStatus::Skipped, "the source has no CRM"));
            };
            // Safe to drop at any point: an answer is marked pushed only once the CRM has
            // confirmed it, and pushing one again replaces it with itself.
            let pushed = until_stopped(ctx, answers::push(&ctx.store, &client)).await;
            ctx.metrics.observe_client(client.counts());
            match pushed {
                Some(pushed) => Ok(push_outcome(&pushed?)),
                None => Ok(stopped()),
            }
        })
    }
}

/// Runs `work` until it ends or the daemon is asked to stop, whichever comes first, for jobs
/// that can be dropped at any await point without leaving anything half-recorded: a CRM that
/// does not answer then holds up no shutdown.
async fn until_stopped<T>(ctx: &JobContext, work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        () = ctx.stop.cancelled() => None,
    }
}

fn stopped() -> JobOutcome {
    JobOutcome::new(
        JobStatus::Interrupted,
        "stopped because the daemon is stopping; the next start runs it again",
    )
}

/// Succeeded when every answer reached the CRM, partial when some did, failed when none did.
fn push_outcome(pushed: &answers::PushReport) -> JobOutcome {
    let failed = pushed.failures.len();
    let status = match (pushed.pushed, failed) {
        (_, 0) => JobStatus::Succeeded,
        (0, _) => JobStatus::Failed,
        _ => JobStatus::Partial,
    };
    let detail = format!(
        "{} answer(s) pushed, {failed} failed (each failure is logged and tried again next time)",
        pushed.pushed
    );
    JobOutcome::new(status, detail)
}

/// Reads task closings from the CRM between cycles.
pub struct ReconcileTasks;

impl Job for ReconcileTasks {
    fn name(&self) -> &'static str {
        "reconcile_tasks"
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, anyhow::Result<JobOutcome>> {
        Box::pin(async move {
            let tasks = &ctx.settings.tasks;
            if !tasks.enabled {
                return Ok(JobOutcome::new(JobStatus::Skipped, "tasks are off"));
            }
            let Some(crm) = ctx.crm()? else {
                return Ok(JobOutcome::new(
                    JobStatus::Skipped,
                    "no CRM to reconcile with",
                ));
            };
            // Safe to drop at any point: each ledger row it updates records what the CRM said
            // of that task, and the next run reads the list again.
            let changed = until_stopped(
                ctx,
                crate::tasks::reconcile(tasks, &crm, &ctx.store, Utc::now()),
            )
            .await;
            ctx.metrics.observe_client(crm.counts());
            let Some(changed) = changed else {
                return Ok(stopped());
            };
            let changed = changed?;
            ctx.metrics.tasks_reconciled.inc_by(changed as u64);
            let detail = format!("{changed} task(s) changed in the CRM");
            Ok(JobOutcome::new(JobStatus::Succeeded, detail))
        })
    }
}
