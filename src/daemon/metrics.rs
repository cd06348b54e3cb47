//! The daemon's Prometheus metrics, served at `/metrics` in the OpenMetrics text format.
//!
//! Two kinds live here. Counters and histograms of this process (job runs, cycle durations,
//! CRM requests, tasks opened, emails sent and failed) grow as jobs run, and restart at 0 with
//! the process, as Prometheus expects. Gauges that describe the book (accounts by band, the
//! last cycle's status and time, the survey emails deferred now) are read from the store at
//! each scrape, so every instance on the same database, active or standby, reports the same
//! values, and an email deferred cycle after cycle is one email, not one more each time.
//!
//! Other modules may register metrics of their own with [`Metrics::register`].

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

use crate::cycle::CycleReport;
use crate::runs::BookGauges;
use crate::source::rest::ClientCounts;

/// The bands accounts are counted in.
const BANDS: [&str; 4] = ["green", "yellow", "red", "na"];

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobStatusLabels {
    pub job: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BandLabels {
    pub band: String,
}

type JobHistograms = Family<JobLabels, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Counters of survey emails; the cycle job counts what each cycle's survey step did.
#[derive(Debug, Clone, Default)]
pub struct EmailCounters {
    /// Emails the mail backend accepted.
    pub sent: Counter,
    /// Send attempts that failed, or emails that could not be recorded to be sent.
    pub failed: Counter,
    /// Addresses suppressed after a hard bounce.
    pub suppressed: Counter,
}

/// Every metric the daemon serves, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    pub scheduler_active: Gauge,
    pub job_runs: Family<JobStatusLabels, Counter>,
    pub job_skipped: Family<JobLabels, Counter>,
    pub job_duration: JobHistograms,
    pub cycles: Family<StatusLabels, Counter>,
    pub cycle_duration: Histogram,
    pub records_rejected: Counter,
    pub tasks_opened: Counter,
    pub tasks_held: Gauge,
    pub tasks_reconciled: Counter,
    pub source_requests: Counter,
    pub source_retries: Counter,
    pub source_rate_limited: Counter,
    pub emails: EmailCounters,
    store_up: Gauge,
    accounts: Family<BandLabels, Gauge>,
    emails_deferred: Gauge,
    last_cycle_ok: Gauge,
    last_cycle_finished: FloatGauge,
    last_success_finished: FloatGauge,
}

/// Buckets from half a second to about an hour: a job is a small scan or a whole-book cycle.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Self {
            registry: Mutex::new(Registry::with_prefix("touchpoint")),
            scheduler_active: Gauge::default(),
            job_runs: Family::default(),
            job_skipped: Family::default(),
            job_duration: Family::new_with_constructor(duration_histogram),
            cycles: Family::default(),
            cycle_duration: duration_histogram(),
            records_rejected: Counter::default(),
            tasks_opened: Counter::default(),
            tasks_held: Gauge::default(),
            tasks_reconciled: Counter::default(),
            source_requests: Counter::default(),
            source_retries: Counter::default(),
            source_rate_limited: Counter::default(),
            emails: EmailCounters::default(),
            store_up: Gauge::default(),
            accounts: Family::default(),
            emails_deferred: Gauge::default(),
            last_cycle_ok: Gauge::default(),
            last_cycle_finished: FloatGauge::default(),
            last_success_finished: FloatGauge::default(),
        };
        metrics.register_own();
        metrics.show_zeros();
        metrics
    }

    /// Creates the labelled series that should read 0 before anything happens, so that a
    /// dashboard or an alert sees them from the first scrape.
    fn show_zeros(&self) {
        for status in ["succeeded", "partial", "failed", "interrupted"] {
            let labels = StatusLabels {
                status: status.to_owned(),
            };
            self.cycles.get_or_create_owned(&labels);
        }
        for band in BANDS {
            let labels = BandLabels {
                band: band.to_owned(),
            };
            self.accounts.get_or_create_owned(&labels);
        }
    }

    /// Creates a job's series at 0 (the scheduler calls it for every scheduled job).
    pub fn add_job(&self, job: &str) {
        let labels = JobLabels {
            job: job.to_owned(),
        };
        self.job_skipped.get_or_create_owned(&labels);
    }

    fn register_own(&self) {
        self.register_process_metrics();
        self.register_book_metrics();
        let emails = &self.emails;
        let sent = "Survey emails the mail backend accepted";
        self.register("emails_sent", sent, emails.sent.clone());
        let failed = "Survey email send attempts that failed (each retry of a temporary failure \
            counts again), and emails that could not be recorded to be sent";
        self.register("emails_failed", failed, emails.failed.clone());
        let suppressed = "Addresses suppressed after a hard bounce";
        self.register("emails_suppressed", suppressed, emails.suppressed.clone());
        let deferred = "Survey emails waiting in the outbox because a per-cycle or per-day \
            budget was reached, now";
        self.register("emails_deferred", deferred, self.emails_deferred.clone());
    }

    fn register_process_metrics(&self) {
        let active = "1 when this instance holds the scheduler lease";
        self.register("scheduler_active", active, self.scheduler_active.clone());
        self.register(
            "job_runs",
            "Job runs by job and status",
            self.job_runs.clone(),
        );
        let skipped = "Ticks skipped because the job's previous run was still going";
        self.register("job_skipped", skipped, self.job_skipped.clone());
        let took = "How long job runs took";
        self.register("job_duration_seconds", took, self.job_duration.clone());
        self.register(
            "cycles",
            "Cycles run by this process, by status",
            self.cycles.clone(),
        );
        let took = "How long cycles took";
        self.register("cycle_duration_seconds", took, self.cycle_duration.clone());
        let rejected = "Source records rejected by cycles";
        self.register("records_rejected", rejected, self.records_rejected.clone());
        self.register_task_and_source_metrics();
    }

    fn register_task_and_source_metrics(&self) {
        let opened = "Follow-up tasks cycles decided to open (recorded in the ledger, then \
            written to the CRM; a write that fails is retried by the next cycle)";
        self.register("tasks_opened", opened, self.tasks_opened.clone());
        let held = "Tasks held in the last cycle (no owner, or the mass-change breaker)";
        self.register("tasks_held", held, self.tasks_held.clone());
        let reconciled = "Tasks whose CRM status changed, as reconciliation found";
        self.register(
            "tasks_reconciled",
            reconciled,
            self.tasks_reconciled.clone(),
        );
        let requests = "Requests sent to the CRM by cycles and the other jobs";
        self.register("source_requests", requests, self.source_requests.clone());
        let retries = "CRM requests retried";
        self.register("source_retries", retries, self.source_retries.clone());
        let limited = "429 answers from the CRM";
        self.register(
            "source_rate_limited",
            limited,
            self.source_rate_limited.clone(),
        );
        let up = "1 when the store answered the last scrape";
        self.register("store_up", up, self.store_up.clone());
    }

    fn register_book_metrics(&self) {
        self.register(
            "accounts",
            "Accounts by the band of their latest score",
            self.accounts.clone(),
        );
        self.register(
            "last_cycle_success",
            "1 when the last finished cycle succeeded (fully or partly), 0 when it failed",
            self.last_cycle_ok.clone(),
        );
        self.register(
            "last_cycle_finished_timestamp_seconds",
            "When the last finished cycle ended (Unix time)",
            self.last_cycle_finished.clone(),
        );
        self.register(
            "last_success_finished_timestamp_seconds",
            "When the last successful cycle ended (Unix time)",
            self.last_success_finished.clone(),
        );
    }

    /// Adds a metric of another module; its name gets the `touchpoint_` prefix.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry().register(name, help, metric);
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one finished job run.
    pub fn job_finished(&self, job: &str, status: &str, took: Duration) {
        let labels = JobStatusLabels {
            job: job.to_owned(),
            status: status.to_owned(),
        };
        self.job_runs.get_or_create(&labels).inc();
        let job = JobLabels {
            job: job.to_owned(),
        };
        self.job_duration
            .get_or_create(&job)
            .observe(took.as_secs_f64());
    }

    pub fn job_skipped(&self, job: &str) {
        let labels = JobLabels {
            job: job.to_owned(),
        };
        self.job_skipped.get_or_create(&labels).inc();
    }

    /// Counts what a cycle did.
    pub fn observe_cycle(&self, report: &CycleReport, took: Duration) {
        let status = StatusLabels {
            status: report.status.as_str().to_owned(),
        };
        self.cycles.get_or_create(&status).inc();
        self.cycle_duration.observe(took.as_secs_f64());
        self.records_rejected.inc_by(report.rejected.len() as u64);
        if let Some(tasks) = &report.tasks {
            self.tasks_opened.inc_by(tasks.opened.len() as u64);
            self.tasks_held.set(tasks.held.len() as i64);
        }
        if let Some(client) = report.client {
            self.observe_client(client);
        }
    }

    /// Counts a cycle that ended with an error (its run is recorded as failed).
    pub fn observe_failed_cycle(&self, took: Duration) {
        let status = StatusLabels {
            status: "failed".to_owned(),
        };
        self.cycles.get_or_create(&status).inc();
        self.cycle_duration.observe(took.as_secs_f64());
    }

    /// Adds one CRM client's counters (a client lives for one job run).
    pub fn observe_client(&self, counts: ClientCounts) {
        self.source_requests.inc_by(counts.requests);
        self.source_retries.inc_by(counts.retries);
        self.source_rate_limited.inc_by(counts.rate_limited);
    }

    /// Sets the gauges read from the store; `None` when the store did not answer.
    pub fn set_book(&self, book: Option<&BookGauges>) {
        let Some(book) = book else {
            self.store_up.set(0);
            return;
        };
        self.store_up.set(1);
        self.emails_deferred
            .set(i64::try_from(book.emails_deferred).unwrap_or(i64::MAX));
        for band in BANDS {
            let count = book.bands.get(band).copied().unwrap_or(0);
            let labels = BandLabels {
                band: band.to_owned(),
            };
            self.accounts.get_or_create(&labels).set(count);
        }
        let unix = |at: Option<chrono::DateTime<chrono::Utc>>| {
            at.map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0)
        };
        self.last_cycle_ok.set(i64::from(book.last_cycle_ok));
        self.last_cycle_finished.set(unix(book.last_finished_at));
        self.last_success_finished.set(unix(book.last_success_at));
    }

    /// The exposition text, ending with `# EOF`.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry()).is_err() {
            tracing::warn!("could not encode the metrics");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exposed_with_help_and_type_and_the_text_ends_with_eof() {
        let metrics = Metrics::new();
        metrics.job_finished("pull_and_score", "succeeded", Duration::from_secs(3));

        let text = metrics.render();

        for family in [
            "touchpoint_job_runs",
            "touchpoint_cycle_duration_seconds",
            "touchpoint_accounts",
            "touchpoint_emails_sent",
            "touchpoint_source_rate_limited",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}:\n{text}"
            );
            assert!(text.contains(&format!("# HELP {family} ")), "{family}");
        }
        assert!(text.contains("touchpoint_emails_sent_total 0\n"), "{text}");
        assert!(
            text.contains(
                r#"touchpoint_job_runs_total{job="pull_and_score",status="succeeded"} 1"#
            )
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
