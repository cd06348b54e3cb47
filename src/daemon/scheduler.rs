//! When jobs run: their schedules, the scheduler lease, no overlap, and catch-up.
//!
//! Every decision to run goes through one gate, [`Scheduler::prompt`]: the job runs when
//!
//! 1. this instance holds the scheduler lease and is not stopping,
//! 2. a fire time of its schedule is due (the latest fire time at or before now) that the job
//!    has not covered yet (the store keeps, per job, the fire time of its last finished run),
//! 3. and the job is not running already. A fire time that comes while the previous run is
//!    still going is skipped and logged, never queued to run late.
//!
//! Two things prompt the gate. tokio-cron-scheduler ticks each job at its cron times, and the
//! heartbeat (every `daemon.lease.renew_every_secs`, right after renewing the lease) prompts
//! every job too. Because the gate compares with the *latest* due fire time, a run missed
//! while the daemon was down, the host asleep or another instance held the lease runs once
//! when the heartbeat next looks, not once per missed tick. A job met for the first time is
//! recorded as covered up to that moment, so a fresh install runs nothing until its first
//! fire time.
//!
//! tokio-cron-scheduler reads a job's time zone as the UTC offset in force when the job was
//! added, which would shift every schedule by an hour after a daylight-saving change. So the
//! heartbeat re-arms the ticker whenever the zone's offset changes, and the gate takes its
//! fire times from [`Schedule`], which computes them in the zone itself: a tick at a wrong
//! time finds nothing due, and a fire time the ticker missed is run by the heartbeat.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use secrecy::SecretString;
use tokio_cron_scheduler::{Job as CronJob, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::jobs::{Job, JobContext, JobOutcome, JobStatus};
use super::lease::Lease;
use super::metrics::Metrics;
use super::schedule::Schedule;
use crate::settings::{ConfigError, Settings};
use crate::store::{Store, timestamp};
use crate::surveys::Delivery;

/// A job with its schedule and what the scheduler knows of its runs.
struct Scheduled {
    job: Arc<dyn Job>,
    schedule: Schedule,
    state: Mutex<RunState>,
}

#[derive(Debug, Default)]
struct RunState {
    /// The fire time of the run in flight.
    running: Option<DateTime<Utc>>,
    /// The fire time of the last run this process finished.
    done: Option<DateTime<Utc>>,
    /// The latest fire time skipped because a run was still going.
    skipped: Option<DateTime<Utc>>,
}

/// What the gate decided for one job and fire time.
enum Claim {
    Run,
    /// Already covered, running or skipped: nothing to do or say.
    Nothing,
    /// A new fire time came while the run for an earlier one is still going.
    Overlap {
        running: DateTime<Utc>,
    },
}

impl Scheduled {
    fn name(&self) -> &'static str {
        self.job.name()
    }

    fn state(&self) -> MutexGuard<'_, RunState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn claim(&self, due: DateTime<Utc>) -> Claim {
        let mut state = self.state();
        if state.done.is_some_and(|done| due <= done) {
            return Claim::Nothing;
        }
        if let Some(running) = state.running {
            if running < due && state.skipped.is_none_or(|skipped| skipped < due) {
                state.skipped = Some(due);
                return Claim::Overlap { running };
            }
            return Claim::Nothing;
        }
        if state.skipped.is_some_and(|skipped| due <= skipped) {
            return Claim::Nothing;
        }
        state.running = Some(due);
        Claim::Run
    }

    fn finished(&self, due: DateTime<Utc>, covered: bool) {
        let mut state = self.state();
        state.running = None;
        if covered {
            state.done = state.done.max(Some(due));
        }
    }
}

/// The ticker: tokio-cron-scheduler with one cron job per scheduled job.
#[derive(Default)]
struct Ticker {
    cron: Option<JobScheduler>,
    ids: Vec<Uuid>,
    /// The zone's UTC offset the cron jobs were added with.
    offset: Option<i32>,
}

/// What the scheduler shares with every job run.
pub struct Scheduler {
    scheduled: Vec<Arc<Scheduled>>,
    settings: Arc<Settings>,
    store: Store,
    metrics: Arc<Metrics>,
    crm_token: Option<SecretString>,
    delivery: Option<Arc<Delivery>>,
    lease: Arc<Lease>,
    stop: CancellationToken,
    tracker: TaskTracker,
    ticker: tokio::sync::Mutex<Ticker>,
}

/// Whether this instance schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Starting,
    Active,
    Standby,
}

/// Everything [`Scheduler::new`] needs.
pub struct SchedulerParts {
    pub jobs: Vec<Arc<dyn Job>>,
    pub settings: Arc<Settings>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub crm_token: Option<SecretString>,
    pub delivery: Option<Arc<Delivery>>,
    pub lease: Arc<Lease>,
    pub stop: CancellationToken,
}

impl Scheduler {
    /// Pairs every job with its configured schedule; a job without one, or a schedule
    /// without a job, is a configuration error naming the key.
    pub fn new(parts: SchedulerParts) -> Result<Arc<Self>, ConfigError> {
        let scheduled = pair_jobs(&parts.jobs, &parts.settings)?;
        for job in &scheduled {
            parts.metrics.add_job(job.name());
        }
        Ok(Arc::new(Self {
            scheduled,
            settings: parts.settings,
            store: parts.store,
            metrics: parts.metrics,
            crm_token: parts.crm_token,
            delivery: parts.delivery,
            lease: parts.lease,
            stop: parts.stop,
            tracker: TaskTracker::new(),
            ticker: tokio::sync::Mutex::default(),
        }))
    }

    /// `(job, schedule, next fire time)` of every enabled job, for the start-up log.
    pub fn plan(&self, now: DateTime<Utc>) -> Vec<(&'static str, String, Option<DateTime<Utc>>)> {
        self.scheduled
            .iter()
            .map(|s| {
                let next = s.schedule.next_after(now);
                (s.name(), s.schedule.expression().to_owned(), next)
            })
            .collect()
    }

    /// Keeps the lease and prompts the jobs until the stop token is cancelled. Jobs in flight
    /// then go on: wait for them with [`Scheduler::drain`].
    pub async fn run_until_stopped(self: &Arc<Self>) {
        let mut role = Role::Starting;
        loop {
            role = self.heartbeat(role).await;
            tokio::select! {
                () = tokio::time::sleep(self.settings.daemon.lease_renew_every) => {}
                () = self.stop.cancelled() => break,
            }
        }
        self.stop_ticker().await;
    }

    /// Waits for the jobs in flight; true when they all finished.
    pub async fn drain(&self, deadline: tokio::time::Instant) -> bool {
        self.tracker.close();
        tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_ok()
    }

    /// Gives the lease up so a standby can take over at once.
    pub async fn release(&self) {
        self.metrics.scheduler_active.set(0);
        if let Err(e) = self.lease.release(&self.store).await {
            tracing::warn!("could not release the scheduler lease: {e:#}");
        }
    }

    /// Renews the lease, reacts to a change of role, and prompts every job.
    async fn heartbeat(self: &Arc<Self>, role: Role) -> Role {
        let held = match self.lease.renew(&self.store).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!("could not renew the scheduler lease: {e:#}");
                self.lease.is_held()
            }
        };
        let now_role = if held { Role::Active } else { Role::Standby };
        if now_role != role {
            self.changed_role(role, now_role).await;
        }
        if let Err(e) = self.arm_ticker().await {
            tracing::error!("could not arm the job schedules: {e:#}");
        }
        if held {
            for scheduled in &self.scheduled {
                self.prompt(scheduled).await;
            }
        }
        now_role
    }

    async fn changed_role(&self, from: Role, to: Role) {
        let holder = self.lease.holder();
        match (from, to) {
            (_, Role::Active) => {
                tracing::info!(instance = holder, "this instance is the active scheduler");
                self.metrics.scheduler_active.set(1);
                self.interrupt_abandoned_runs().await;
            }
            (Role::Starting, Role::Standby) => {
                tracing::info!(
                    instance = holder,
                    "another instance holds the scheduler lease; this one serves HTTP and \
                     stands by to take over"
                );
            }
            (_, Role::Standby) => {
                self.metrics.scheduler_active.set(0);
                tracing::warn!(
                    instance = holder,
                    "lost the scheduler lease to another instance; no new job runs start here"
                );
            }
            (_, Role::Starting) => {}
        }
    }

    /// A run left `running` by an instance that died can never finish: say so in the history.
    async fn interrupt_abandoned_runs(&self) {
        match self.store.interrupt_unfinished_runs(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "marked {n} unfinished run(s) as interrupted"),
            Err(e) => tracing::warn!("could not mark unfinished runs: {e:#}"),
        }
    }

    /// The gate: starts the job if a fire time is due that it has not covered, unless it is
    /// still running (then the fire time is skipped and logged).
    async fn prompt(self: &Arc<Self>, scheduled: &Arc<Scheduled>) {
        if self.stop.is_cancelled() || !self.lease.is_held() {
            return;
        }
        let now = Utc::now();
        let Some(due) = scheduled.schedule.last_at_or_before(now) else {
            return;
        };
        let covered = match self.store.job_covered(scheduled.name(), now).await {
            Ok(covered) => covered,
            Err(e) => {
                tracing::warn!(
                    job = scheduled.name(),
                    "could not read the job's state: {e:#}"
                );
                return;
            }
        };
        if due <= covered {
            return;
        }
        match scheduled.claim(due) {
            Claim::Run => {
                let this = Arc::clone(self);
                let scheduled = Arc::clone(scheduled);
                self.tracker
                    .spawn(async move { this.run_job(&scheduled, due).await });
            }
            Claim::Overlap { running } => {
                self.metrics.job_skipped(scheduled.name());
                tracing::warn!(
                    job = scheduled.name(),
                    due = %timestamp(due),
                    running_for = %timestamp(running),
                    "skipped a tick of {}: its previous run is still going",
                    scheduled.name()
                );
            }
            Claim::Nothing => {}
        }
    }

    /// Runs one job for one fire time and records how it went.
    async fn run_job(&self, scheduled: &Scheduled, due: DateTime<Utc>) {
        let name = scheduled.name();
        let started_at = Utc::now();
        let clock = Instant::now();
        let context = self.context(due);

        let run = AssertUnwindSafe(scheduled.job.run(&context)).catch_unwind();
        let outcome = match run.await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                tracing::error!(job = name, "{name} failed: {e:#}");
                JobOutcome::new(JobStatus::Failed, format!("{e:#}"))
            }
            Err(_) => {
                tracing::error!(job = name, "{name} panicked");
                JobOutcome::new(JobStatus::Failed, "the job panicked")
            }
        };
        let took = clock.elapsed();
        log_summary(name, due, &outcome, took);
        self.metrics
            .job_finished(name, outcome.status.as_str(), took);

        // An interrupted run is not covered: the next start runs its fire time again.
        let covered = outcome.status != JobStatus::Interrupted;
        if covered {
            let record = JobRunRecord {
                due,
                run_id: outcome.run_id.clone(),
                status: outcome.status.as_str().to_owned(),
                started_at,
                finished_at: Utc::now(),
                duration_ms: took.as_millis() as i64,
            };
            if let Err(e) = self.store.record_job_run(name, &record).await {
                tracing::warn!(job = name, "could not record the job's run: {e:#}");
            }
        }
        scheduled.finished(due, covered);
    }

    fn context(&self, due: DateTime<Utc>) -> JobContext {
        JobContext {
            settings: Arc::clone(&self.settings),
            store: self.store.clone(),
            metrics: Arc::clone(&self.metrics),
            crm_token: self.crm_token.clone(),
            delivery: self.delivery.clone(),
            stop: self.stop.clone(),
            due,
        }
    }

    /// Adds one cron job per scheduled job to the ticker, again whenever the zone's UTC
    /// offset has changed since the last time.
    async fn arm_ticker(self: &Arc<Self>) -> anyhow::Result<()> {
        let offset = self.settings.daemon.timezone_offset(Utc::now());
        let mut ticker = self.ticker.lock().await;
        if self.stop.is_cancelled() || ticker.offset == Some(offset) {
            return Ok(());
        }
        let cron = match &ticker.cron {
            Some(cron) => cron.clone(),
            None => start_cron().await?,
        };
        for id in std::mem::take(&mut ticker.ids) {
            cron.remove(&id).await.context("failed to remove a tick")?;
        }
        for scheduled in &self.scheduled {
            let job = self.cron_job(scheduled)?;
            ticker
                .ids
                .push(cron.add(job).await.context("failed to add a tick")?);
        }
        if ticker.offset.is_some() {
            tracing::info!(
                offset_secs = offset,
                "the zone's UTC offset changed; re-armed"
            );
        }
        ticker.cron = Some(cron);
        ticker.offset = Some(offset);
        Ok(())
    }

    fn cron_job(self: &Arc<Self>, scheduled: &Arc<Scheduled>) -> anyhow::Result<CronJob> {
        let this: Weak<Self> = Arc::downgrade(self);
        let target = Arc::clone(scheduled);
        let schedule = &scheduled.schedule;
        CronJob::new_async_tz(schedule.expression(), schedule.zone(), move |_, _| {
            let this = this.clone();
            let target = Arc::clone(&target);
            Box::pin(async move {
                if let Some(this) = this.upgrade() {
                    this.prompt(&target).await;
                }
            })
        })
        .with_context(|| format!("failed to schedule {}", scheduled.name()))
    }

    async fn stop_ticker(&self) {
        let mut ticker = self.ticker.lock().await;
        if let Some(mut cron) = ticker.cron.take()
            && let Err(e) = cron.shutdown().await
        {
            tracing::warn!("could not stop the ticker cleanly: {e}");
        }
    }
}

async fn start_cron() -> anyhow::Result<JobScheduler> {
    let cron = JobScheduler::new()
        .await
        .context("failed to create the ticker")?;
    cron.start().await.context("failed to start the ticker")?;
    Ok(cron)
}

/// The one line every job run ends with.
fn log_summary(name: &str, due: DateTime<Utc>, outcome: &JobOutcome, took: std::time::Duration) {
    let status = outcome.status.as_str();
    let run_id = outcome.run_id.as_deref().unwrap_or("-");
    let detail = outcome.detail.as_deref().unwrap_or("");
    let duration_ms = took.as_millis() as u64;
    let due = timestamp(due);
    if outcome.status == JobStatus::Failed {
        tracing::warn!(
            job = name,
            run.id = run_id,
            status,
            duration_ms,
            due,
            detail,
            "{name}: {status}"
        );
    } else {
        tracing::info!(
            job = name,
            run.id = run_id,
            status,
            duration_ms,
            due,
            detail,
            "{name}: {status}"
        );
    }
}

/// Checks that every job has a schedule and every schedule a job (for `check-config`).
pub fn check_jobs(jobs: &[Arc<dyn Job>], settings: &Settings) -> Result<(), ConfigError> {
    pair_jobs(jobs, settings).map(|_| ())
}

fn pair_jobs(
    jobs: &[Arc<dyn Job>],
    settings: &Settings,
) -> Result<Vec<Arc<Scheduled>>, ConfigError> {
    let configured = &settings.daemon.jobs;
    let names: Vec<&str> = jobs.iter().map(|job| job.name()).collect();
    if let Some(unknown) = configured.keys().find(|key| !names.contains(&key.as_str())) {
        return Err(ConfigError::new(
            format!("daemon.jobs.{unknown}"),
            format!("there is no such job; the jobs are {}", names.join(", ")),
        ));
    }
    let mut scheduled = Vec::new();
    for job in jobs {
        let Some(config) = configured.get(job.name()) else {
            return Err(ConfigError::new(
                format!("daemon.jobs.{}", job.name()),
                "is missing: give the job `enabled` and a `schedule`",
            ));
        };
        if config.enabled {
            scheduled.push(Arc::new(Scheduled {
                job: Arc::clone(job),
                schedule: config.schedule.clone(),
                state: Mutex::default(),
            }));
        }
    }
    Ok(scheduled)
}

/// One finished job run, as the job state keeps it.
#[derive(Debug, Clone)]
pub struct JobRunRecord {
    /// The fire time the run was for.
    pub due: DateTime<Utc>,
    pub run_id: Option<String>,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
}

impl Store {
    /// The latest fire time `job` has covered. A job met for the first time is recorded as
    /// covered up to `now`, so that a fresh install does not run every job at once.
    pub async fn job_covered(
        &self,
        job: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<DateTime<Utc>> {
        if let Some(covered) = self.job_last_due(job).await? {
            return Ok(covered);
        }
        sqlx::query(
            "INSERT INTO job_state (job, last_due, updated_at) VALUES ($1, $2, $2)
             ON CONFLICT (job) DO NOTHING",
        )
        .bind(job)
        .bind(timestamp(now))
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to register job {job}"))?;
        let covered = self.job_last_due(job).await?;
        covered.with_context(|| format!("job {job} was registered but cannot be read back"))
    }

    async fn job_last_due(&self, job: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT last_due FROM job_state WHERE job = $1")
                .bind(job)
                .fetch_optional(self.pool())
                .await
                .with_context(|| format!("failed to read the state of job {job}"))?;
        let Some((last_due,)) = row else {
            return Ok(None);
        };
        let covered = DateTime::parse_from_rfc3339(&last_due)
            .with_context(|| format!("job {job} has an unreadable last_due {last_due:?}"))?;
        Ok(Some(covered.with_timezone(&Utc)))
    }

    /// Records a finished run; the covered fire time only ever moves forward.
    pub async fn record_job_run(&self, job: &str, run: &JobRunRecord) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO job_state (job, last_due, last_run_id, last_status, last_started_at,
                 last_finished_at, last_duration_ms, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $6)
             ON CONFLICT (job) DO UPDATE SET
                 last_due = CASE WHEN job_state.last_due < excluded.last_due
                     THEN excluded.last_due ELSE job_state.last_due END,
                 last_run_id = excluded.last_run_id, last_status = excluded.last_status,
                 last_started_at = excluded.last_started_at,
                 last_finished_at = excluded.last_finished_at,
                 last_duration_ms = excluded.last_duration_ms, updated_at = excluded.updated_at",
        )
        .bind(job)
        .bind(timestamp(run.due))
        .bind(&run.run_id)
        .bind(&run.status)
        .bind(timestamp(run.started_at))
        .bind(timestamp(run.finished_at))
        .bind(run.duration_ms)
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to record a run of job {job}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures_util::future::BoxFuture;

    use super::*;

    struct Idle;

    impl Job for Idle {
        fn name(&self) -> &'static str {
            "idle"
        }

        fn run<'a>(&'a self, _: &'a JobContext) -> BoxFuture<'a, anyhow::Result<JobOutcome>> {
            Box::pin(async { Ok(JobOutcome::new(JobStatus::Succeeded, "nothing")) })
        }
    }

    fn scheduled() -> Scheduled {
        Scheduled {
            job: Arc::new(Idle),
            schedule: "*/2 * * * * *".parse().expect("a schedule"),
            state: Mutex::default(),
        }
    }

    fn second(n: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + n, 0).expect("a time")
    }

    #[test]
    fn a_fire_time_runs_once_and_a_tick_during_the_run_is_skipped_not_queued() {
        let job = scheduled();

        assert!(matches!(job.claim(second(0)), Claim::Run));
        assert!(
            matches!(job.claim(second(0)), Claim::Nothing),
            "already running"
        );
        let overlap = job.claim(second(2));
        assert!(matches!(overlap, Claim::Overlap { running } if running == second(0)));
        assert!(
            matches!(job.claim(second(2)), Claim::Nothing),
            "logged once"
        );

        job.finished(second(0), true);
        assert!(matches!(job.claim(second(0)), Claim::Nothing), "done");
        assert!(
            matches!(job.claim(second(2)), Claim::Nothing),
            "skipped, not run late"
        );
        assert!(
            matches!(job.claim(second(4)), Claim::Run),
            "the next tick runs"
        );
    }

    #[test]
    fn an_interrupted_run_leaves_its_fire_time_to_run_again() {
        let job = scheduled();
        assert!(matches!(job.claim(second(0)), Claim::Run));

        job.finished(second(0), false);

        assert!(matches!(job.claim(second(0)), Claim::Run));
    }

    #[tokio::test]
    async fn the_covered_fire_time_starts_at_first_sight_and_only_moves_forward() {
        let dir = tempfile::TempDir::new().expect("a temporary folder");
        let settings = crate::settings::StoreSettings {
            path: dir.path().join("jobs.db"),
            busy_timeout: std::time::Duration::from_secs(5),
        };
        let store = Store::open(&settings).await.expect("the store opens");
        let record = |due: DateTime<Utc>| JobRunRecord {
            due,
            run_id: None,
            status: "succeeded".into(),
            started_at: due,
            finished_at: due,
            duration_ms: 1,
        };

        let first = store.job_covered("idle", second(10)).await.expect("state");
        assert_eq!(first, second(10), "met now: covered up to now");
        store
            .record_job_run("idle", &record(second(20)))
            .await
            .expect("recorded");
        store
            .record_job_run("idle", &record(second(15)))
            .await
            .expect("recorded");

        let covered = store.job_covered("idle", second(30)).await.expect("state");
        assert_eq!(covered, second(20));
    }
}
