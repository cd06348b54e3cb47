//! One cycle: pull, score, store, write back, surveys, tasks. `plan` runs the same steps and
//! changes nothing.
//!
//! The cycle is the scheduler's unit of work and what `touchpoint cycle`, `plan` and `demo`
//! run. It decides *what* happens; the source, the store and the write-back carry it out. A
//! pull that failed or came back incomplete stops the cycle before anything is scored: missing
//! data is never scored as if it were empty.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::model::{Account, AccountId, OwnerId, Rejected, SurveyResponse};
use crate::pull::{self, Book, RowCounts};
use crate::scoring::{self, AccountFacts, Colour, Measure, Scorecard};
use crate::settings::Settings;
use crate::source::{RestClient, Source, rest::ClientCounts};
use crate::store::{Earlier, Latest, RunStart, RunStatus, ScoreRow, Store, StoredScore};
use crate::surveys::{self, Delivery, SurveyReport, SurveyRun};
use crate::tasks::{TaskReport, TaskRun};
use crate::writeback::{self, HealthItem, WritebackReport};

/// Whether the cycle acts or only reports what it would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Pull and score, then print what would change; nothing is stored or written anywhere.
    Plan,
    /// Pull, score, store and write back.
    Act,
}

/// How an account's score moved since its previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// The first score: a baseline, with nothing to compare against.
    New,
    Up,
    Down,
    Same,
    /// Scored now or before, but one of the two has no overall score (N/A).
    Unscored,
}

impl Trend {
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::New => "new",
            Trend::Up => "up",
            Trend::Down => "down",
            Trend::Same => "same",
            Trend::Unscored => "n/a",
        }
    }

    /// How `current` moved since `previous` (`None`: it is the first score).
    pub fn between(previous: Option<&StoredScore>, current: &StoredScore) -> Trend {
        let Some(previous) = previous else {
            return Trend::New;
        };
        match (previous.score, current.score) {
            (Some(before), Some(now)) if now > before => Trend::Up,
            (Some(before), Some(now)) if now < before => Trend::Down,
            (Some(_), Some(_)) => Trend::Same,
            _ if previous == current => Trend::Same,
            _ => Trend::Unscored,
        }
    }
}

/// One account's new score, compared with its previous one.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredAccount {
    pub account_id: String,
    pub name: String,
    pub previous: Option<StoredScore>,
    pub current: StoredScore,
    pub trend: Trend,
    /// The band is red now and the previous score was not (a first score is a baseline).
    pub turned_red: bool,
    /// The day the band turned red, while it stays red.
    pub red_since: Option<NaiveDate>,
    /// One line per measure: its colour and reason.
    pub reasons: Vec<String>,
    /// A newer day's score is stored for this account (this cycle replays an older day): this
    /// score joins the history only, is compared with the score before its day, is not
    /// written back and opens no task.
    pub superseded: bool,
    #[serde(skip)]
    written: Option<StoredScore>,
}

impl ScoredAccount {
    pub fn changed(&self) -> bool {
        self.previous.as_ref() != Some(&self.current)
    }

    pub fn delta(&self) -> i32 {
        let value = |s: &StoredScore| s.score.map(i32::from);
        match (self.previous.as_ref().and_then(value), value(&self.current)) {
            (Some(before), Some(now)) => now - before,
            _ => 0,
        }
    }

    fn needs_write(&self) -> bool {
        !self.superseded && self.written != Some(self.current)
    }

    /// The reason of the measure at `index` (in [`Measure::ALL`] order), without the
    /// `<measure> <colour>: ` that starts its line in [`ScoredAccount::reasons`].
    pub fn measure_reason(&self, index: usize) -> &str {
        let Some(line) = self.reasons.get(index) else {
            return "";
        };
        let prefix = Measure::ALL
            .get(index)
            .zip(self.current.measures.get(index))
            .map(|(measure, colour)| format!("{} {colour}: ", measure.as_str()));
        prefix
            .and_then(|p| line.strip_prefix(p.as_str()))
            .unwrap_or(line)
    }
}

/// The stored scores a cycle compares with.
#[derive(Debug, Default)]
struct Previous {
    /// Every account's latest score.
    latest: HashMap<Box<str>, Latest>,
    /// For accounts whose latest score is newer than this cycle's day, their history up to it.
    earlier: HashMap<String, Earlier>,
}

impl Previous {
    async fn read(store: Option<&Store>, now: DateTime<Utc>) -> anyhow::Result<Previous> {
        let Some(store) = store else {
            return Ok(Previous::default());
        };
        Ok(Previous {
            latest: store.latest_scores().await?,
            earlier: store.earlier_scores(now).await?,
        })
    }

    /// Compares a new score with the one in force before it, and says whether it joins the
    /// history. A replay of a day older than the latest score compares with the history
    /// before that day, so the latest score and its trend stay the newest day's.
    fn compare(
        &self,
        account: &Account,
        card: &Scorecard,
        now: DateTime<Utc>,
    ) -> (ScoredAccount, bool) {
        let Some(earlier) = self.earlier.get(account.id.as_str()) else {
            let compared = compare(account, card, self.latest.get(account.id.as_str()), now);
            let changed = compared.changed();
            return (compared, changed);
        };
        let mut compared = compare(account, card, earlier.before.as_ref(), now);
        compared.superseded = true;
        let changed = match &earlier.same_instant {
            Some(recorded) => recorded != &compared.current,
            None => compared.changed(),
        };
        (compared, changed)
    }
}

/// Counts of accounts per colour.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ColourCounts {
    pub green: usize,
    pub yellow: usize,
    pub red: usize,
    pub na: usize,
}

impl ColourCounts {
    fn add(&mut self, colour: Colour) {
        match colour {
            Colour::Green => self.green += 1,
            Colour::Yellow => self.yellow += 1,
            Colour::Red => self.red += 1,
            Colour::Na => self.na += 1,
        }
    }
}

/// Everything a cycle (or plan) did or would do, for people and for `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub mode: Mode,
    /// A cycle as of a past day that only plans its writes, emails and tasks (or, in a plan,
    /// the preview of one).
    pub replay: bool,
    pub run_id: Option<String>,
    pub status: RunStatus,
    pub reason: Option<String>,
    pub as_of: DateTime<Utc>,
    pub source: String,
    pub model_version: String,
    pub config_version: String,
    pub rows: RowCounts,
    pub accounts_pulled: usize,
    pub archived: usize,
    pub scored: usize,
    pub held: Vec<(String, String)>,
    pub rejected: Vec<Rejected>,
    pub bands: ColourCounts,
    pub measures: HashMap<String, ColourCounts>,
    pub accounts: Vec<ScoredAccount>,
    /// Signs that the data or the configuration, not the customers, explain the colours.
    pub warnings: Vec<String>,
    /// Accounts whose write-back is due (changed since the CRM last accepted them).
    pub writes_due: usize,
    pub writeback: Option<WritebackReport>,
    pub writeback_note: Option<String>,
    pub surveys: Option<SurveyReport>,
    pub tasks: Option<TaskReport>,
    pub client: Option<ClientCounts>,
}

impl CycleReport {
    pub fn changed(&self) -> impl Iterator<Item = &ScoredAccount> {
        self.accounts.iter().filter(|a| a.changed())
    }
}

/// What a cycle needs around it.
pub struct Cycle<'a, S: Source> {
    pub settings: &'a Settings,
    pub source: &'a S,
    /// The CRM to write scores back to; `None` for a source without one (a CSV book).
    pub crm: Option<&'a RestClient>,
    /// The store; `None` in plan mode before any cycle created it.
    pub store: Option<&'a Store>,
    /// The mail backend and link signer; `None` sends no survey (a plan never does).
    pub delivery: Option<&'a Delivery>,
    pub command: &'a str,
    /// Asks the cycle to stop (the daemon is shutting down). It stops only at a safe point:
    /// while it is still reading, or right after, before anything is stored; the run is then
    /// recorded as interrupted. Once it has begun storing, it finishes, except that no further
    /// survey email is sent: those in flight are recorded, the rest stay planned for the next
    /// run, and the run's reason says how many. `None`: never asked.
    pub stop: Option<&'a CancellationToken>,
    /// This cycle replays a past day (`--as-of`): it stores its scores locally and plans the
    /// rest, but writes nothing to the CRM and sends nothing, unless the caller asked to act.
    pub replay: bool,
}

impl<S: Source> Cycle<'_, S> {
    /// Runs the cycle as of `now`. A step that fails with an error after the run was begun
    /// ends the run as `failed`, with the error's cause chain as its reason, before the error
    /// is returned: a run left `running` would hide the failure from `/readyz` and the metrics.
    pub async fn run(&self, now: DateTime<Utc>, mode: Mode) -> anyhow::Result<CycleReport> {
        let run_id = (mode == Mode::Act).then(new_run_id);
        self.begin(run_id.as_deref(), now).await?;

        let result = self.steps(run_id.clone(), now, mode).await;
        match (result, run_id) {
            (Err(error), Some(run_id)) => Err(self.failed(&run_id, error).await),
            (result, _) => result,
        }
    }

    /// Records the run `run_id` as failed with `error` and returns the error, naming the run.
    async fn failed(&self, run_id: &str, error: anyhow::Error) -> anyhow::Error {
        let Some(store) = self.store else {
            return error;
        };
        let reason = crate::telemetry::mask_emails_in(&format!("{error:#}"));
        let summary = serde_json::json!({});
        let recorded = store
            .finish_run(run_id, RunStatus::Failed, Some(&reason), None, &summary)
            .await;
        if let Err(e) = recorded {
            tracing::warn!(run.id = run_id, "could not record the run as failed: {e:#}");
        }
        error.context(format!("run {run_id} failed"))
    }

    /// Pull, score, store, write back, surveys, tasks: the cycle itself.
    async fn steps(
        &self,
        run_id: Option<String>,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> anyhow::Result<CycleReport> {
        let nps_since = now - TimeDelta::days(i64::from(self.settings.tasks.answer_lookback_days));
        let step = Instant::now();
        let Some(mut book) = self.pull_unless_stopped(now, nps_since).await else {
            let report = self.empty_report(mode, run_id, now, &Book::default());
            return self.interrupted(report).await;
        };
        self.fold_local(&mut book, (nps_since, now)).await?;
        tracing::info!(
            accounts = book.accounts.len(),
            contacts = book.contacts.len(),
            duration_ms = step.elapsed().as_millis() as u64,
            "pulled the book"
        );
        let previous = Previous::read(self.store, now).await?;
        let mut report = self.empty_report(mode, run_id.clone(), now, &book);

        if let Some(reason) = self.refusal(&book).await? {
            tracing::error!(run.id = run_id.as_deref().unwrap_or("plan"), "{reason}");
            report.status = RunStatus::Failed;
            report.reason = Some(reason);
            self.finish(&report).await?;
            return Ok(report);
        }

        if self.stop.is_some_and(CancellationToken::is_cancelled) {
            return self.interrupted(report).await;
        }

        let step = Instant::now();
        let outward = if self.replay { Mode::Plan } else { mode };
        let usage = KeyFeatureUsage::of(&book, self.settings);
        // Each account's facts are dropped once it is scored, so the facts shrink while the
        // scores grow.
        let mut facts = std::mem::take(&mut book.facts);
        self.score_save_and_write(&mut report, &book, &mut facts, now, &previous, outward)
            .await?;
        drop(facts);
        if self.replay {
            report.writeback_note = Some(replay_note(mode).into());
        }
        tracing::info!(
            accounts = report.accounts.len(),
            writes_due = report.writes_due,
            duration_ms = step.elapsed().as_millis() as u64,
            "{}",
            if outward == Mode::Act {
                "scored the book, stored the scores and wrote the changes back"
            } else if mode == Mode::Act {
                "scored the book and stored the scores (nothing written to the CRM)"
            } else {
                "scored the book (plan: nothing stored or written)"
            }
        );
        tally(&mut report);
        report.warnings = data_warnings(&report, &book, usage, self.settings);
        for warning in &report.warnings {
            tracing::warn!("{warning}");
        }
        // The stored scores have done their work: on a large book they are a good part of the
        // cycle's memory, so they go before the surveys are planned.
        drop(previous);
        if let (Some(store), Some(run_id)) = (self.store, run_id.as_deref()) {
            store.save_rejections(run_id, &book.rejected).await?;
        }
        let step = Instant::now();
        let surveys = self.surveys(&book, report.run_id.as_deref(), now).await?;
        if surveys.not_sent > 0 {
            report.status = RunStatus::Partial;
            add_reason(
                &mut report,
                format!(
                    "sending stopped early: {} survey email(s) stay planned for the next run",
                    surveys.not_sent
                ),
            );
        }
        report.surveys = Some(surveys);
        tracing::info!(
            duration_ms = step.elapsed().as_millis() as u64,
            "{}",
            match (mode, &report.surveys) {
                (Mode::Plan, _) => "planned surveys (plan: nothing sent)",
                (_, Some(surveys)) if surveys.backend.is_some() && surveys.delivers => {
                    "planned and sent surveys"
                }
                (_, Some(surveys)) if surveys.backend.is_some() => {
                    "planned surveys and wrote them as .eml files"
                }
                (Mode::Act, _) => "planned surveys (none sent: see the report)",
            }
        );
        let step = Instant::now();
        let mut tasks = self.tasks(&report, &book, now).await?;
        if self.replay && self.crm.is_some() {
            tasks.note = Some(replay_note(mode).into());
        }
        report.tasks = Some(tasks);
        tracing::info!(
            duration_ms = step.elapsed().as_millis() as u64,
            "decided tasks"
        );
        if let Some(tasks) = &report.tasks {
            report.client = self.crm.map(RestClient::counts);
            if tasks.breaker.as_ref().is_some_and(|b| b.tripped) {
                let held = "the mass-change breaker holds health-driven tasks";
                add_reason(&mut report, held.into());
            }
        }
        let daily_limit = self.crm.is_some_and(RestClient::daily_limit_reached);
        let mut shortfalls = shortfalls(&report, daily_limit);
        if !shortfalls.is_empty() {
            report.status = RunStatus::Partial;
            shortfalls.extend(report.reason.take());
            report.reason = Some(shortfalls.join("; "));
        }
        self.finish(&report).await?;
        Ok(report)
    }

    /// Folds the answers touchpoint collected and the goal surveys it sent into the book, so
    /// they count like the CRM's own (see [`pull::fold_local`]).
    async fn fold_local(
        &self,
        book: &mut Book,
        (nps_since, now): (DateTime<Utc>, DateTime<Utc>),
    ) -> anyhow::Result<()> {
        let Some(store) = self.store.filter(|_| book.is_complete()) else {
            return Ok(());
        };
        let roi_days = i64::from(self.settings.scoring.roi().window_days);
        let since = (now - TimeDelta::days(roi_days)).min(nps_since);
        let (answers, sent) = surveys::local_evidence(store, since)
            .await
            .context("failed to read the answers and surveys touchpoint keeps")?;
        pull::fold_local(
            book,
            &self.settings.scoring,
            (nps_since, now),
            &answers,
            &sent,
        );
        Ok(())
    }

    /// Plans (and when acting, sends) the surveys due; accounts held back get none.
    async fn surveys(
        &self,
        book: &Book,
        run_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<SurveyReport> {
        let run = SurveyRun {
            settings: self.settings,
            store: self.store,
            crm: self.crm,
            delivery: self.delivery,
            stop: self.stop,
            now,
        };
        let mut report = run.run(book, run_id).await?;
        if self.replay && self.settings.surveys.enabled {
            let mode = if run_id.is_some() {
                Mode::Act
            } else {
                Mode::Plan
            };
            report.note = Some(replay_note(mode).into());
        }
        Ok(report)
    }

    /// Reads the book, unless a stop is asked for first: reading changes nothing, so it can be
    /// abandoned at any point.
    async fn pull_unless_stopped(
        &self,
        now: DateTime<Utc>,
        nps_since: DateTime<Utc>,
    ) -> Option<Book> {
        let pull = pull::pull(self.source, &self.settings.scoring, now, nps_since);
        let Some(stop) = self.stop else {
            return Some(pull.await);
        };
        tokio::select! {
            book = pull => Some(book),
            () = stop.cancelled() => None,
        }
    }

    /// Records a run that stopped before it stored anything.
    async fn interrupted(&self, mut report: CycleReport) -> anyhow::Result<CycleReport> {
        let reason = "asked to stop before anything was stored; the next run starts over";
        tracing::warn!(
            run.id = report.run_id.as_deref().unwrap_or("plan"),
            "{reason}"
        );
        report.status = RunStatus::Interrupted;
        report.reason = Some(reason.to_owned());
        self.finish(&report).await?;
        Ok(report)
    }

    async fn begin(&self, run_id: Option<&str>, now: DateTime<Utc>) -> anyhow::Result<()> {
        let (Some(run_id), Some(store)) = (run_id, self.store) else {
            return Ok(());
        };
        let scoring = &self.settings.scoring;
        store
            .save_config_version(&scoring.version(), &scoring.canonical_json())
            .await?;
        store
            .begin_run(&RunStart {
                id: run_id.to_owned(),
                command: self.command.to_owned(),
                started_at: Utc::now(),
                as_of: now,
                config_version: scoring.version(),
                source: self.source.describe(),
            })
            .await
    }

    /// Why nothing may be scored this time, if anything stops it.
    async fn refusal(&self, book: &Book) -> anyhow::Result<Option<String>> {
        if !book.is_complete() {
            let failures: Vec<String> = book
                .failures
                .iter()
                .map(|f| format!("{}: {}", f.dataset, f.error))
                .collect();
            return Ok(Some(format!(
                "the pull failed, so nothing was scored or written ({})",
                failures.join("; ")
            )));
        }
        let Some(store) = self.store else {
            return Ok(None);
        };
        let Some(last) = store.last_complete_book_size().await? else {
            return Ok(None);
        };
        let pulled = book.accounts.len() as f64;
        let floor = last as f64 * self.settings.cycle.min_book_share;
        if pulled < floor {
            return Ok(Some(format!(
                "the pull looks incomplete: {pulled} accounts against {last} last time \
                 (cycle.min_book_share = {}), so nothing was scored or written",
                self.settings.cycle.min_book_share
            )));
        }
        Ok(None)
    }

    fn empty_report(
        &self,
        mode: Mode,
        run_id: Option<String>,
        now: DateTime<Utc>,
        book: &Book,
    ) -> CycleReport {
        let scoring = &self.settings.scoring;
        CycleReport {
            mode,
            replay: self.replay,
            run_id,
            status: RunStatus::Succeeded,
            reason: None,
            as_of: now,
            source: self.source.describe(),
            model_version: scoring.model_version().to_owned(),
            config_version: scoring.version(),
            rows: book.rows.clone(),
            accounts_pulled: book.accounts.len(),
            archived: book.accounts.values().filter(|a| a.archived).count(),
            scored: 0,
            held: book
                .held
                .iter()
                .map(|(id, why)| (id.to_string(), why.clone()))
                .collect(),
            rejected: book.rejected.clone(),
            bands: ColourCounts::default(),
            measures: HashMap::new(),
            accounts: Vec::new(),
            warnings: Vec::new(),
            writes_due: 0,
            writeback: None,
            writeback_note: None,
            surveys: None,
            tasks: None,
            client: self.crm.map(RestClient::counts),
        }
    }

    /// Scores every live account that is not held back, in account-id order, chunk by chunk.
    ///
    /// When acting, a [`Saver`] task stores each chunk's scores and receipts and a write-back
    /// task sends the changed scores to the CRM while the next chunk is scored: receipts, the
    /// bulkiest part of a score, are never all in memory at once, and the store's disk, the
    /// CRM's round trips and the scoring work side by side. Once both are done, the accounts
    /// the CRM stored are marked as written. A crash in between only means some scores are
    /// sent again next cycle: the write is idempotent.
    async fn score_save_and_write(
        &self,
        report: &mut CycleReport,
        book: &Book,
        facts: &mut HashMap<AccountId, AccountFacts>,
        now: DateTime<Utc>,
        previous: &Previous,
        outward: Mode,
    ) -> anyhow::Result<()> {
        let scoring = &self.settings.scoring;
        let writer = self.health_writer(report, outward);
        // Scores go to the CRM only once saved: a row saved as "sent, not yet confirmed" is
        // sent again by the next cycle if this one dies before the CRM's answer is recorded.
        let (saver, items_tx) = match (self.store, report.run_id.as_deref()) {
            (Some(store), Some(run_id)) => {
                let items_tx = writer.as_ref().map(|(tx, _)| tx.clone());
                (
                    Some(Saver::start(store, run_id, now, scoring, items_tx)),
                    None,
                )
            }
            _ => (None, writer.as_ref().map(|(tx, _)| tx.clone())),
        };
        let live: Vec<&Account> = book
            .accounts
            .values()
            .filter(|account| !account.archived && !book.held.contains_key(&account.id))
            .collect();
        report.accounts.reserve(live.len());

        for chunk in live.chunks(SCORE_CHUNK) {
            let (rows, items) =
                self.score_chunk(report, facts, chunk, now, previous, &saver, &writer)?;
            match (&saver, &items_tx) {
                (Some(saver), _) => {
                    if saver.chunks.send((rows, items)).await.is_err() {
                        break;
                    }
                }
                (None, Some(items_tx)) => {
                    // The writer only stops early by panicking, which its join below reports.
                    let _ = items_tx.send(items).await;
                }
                (None, None) => {}
            }
        }
        drop(items_tx);

        let saved = match saver {
            Some(saver) => saver.finish().await.context("failed to save the scores"),
            None => Ok(()),
        };
        let written = match writer {
            Some((items_tx, task)) => {
                drop(items_tx);
                Some(
                    task.await
                        .context("the score write-back stopped unexpectedly")?,
                )
            }
            None => None,
        };
        saved?;
        if written.is_some() {
            report.client = self.crm.map(RestClient::counts);
        }
        report.writeback = written;
        Ok(())
    }

    /// Scores one chunk of accounts into the report, taking their facts out of `facts`, and
    /// returns the rows to save and the score changes to write back (empty where there is no
    /// saver or writer).
    #[allow(clippy::too_many_arguments)]
    fn score_chunk(
        &self,
        report: &mut CycleReport,
        facts: &mut HashMap<AccountId, AccountFacts>,
        chunk: &[&Account],
        now: DateTime<Utc>,
        previous: &Previous,
        saver: &Option<Saver>,
        writer: &Option<HealthWriter>,
    ) -> anyhow::Result<(Vec<ScoreRow>, Vec<HealthItem>)> {
        let scoring = &self.settings.scoring;
        let model_version = scoring.model_version();
        let mut rows = Vec::new();
        let mut items = Vec::new();
        let sends = writer.is_some();
        for account in chunk {
            let Some(facts) = facts.remove(&account.id) else {
                continue;
            };
            let card = scoring::score(&facts, scoring, now);
            let (compared, changed) = previous.compare(account, &card, now);
            let due = compared.needs_write();
            if due {
                report.writes_due += 1;
                if sends {
                    let id = &compared.account_id;
                    items.push(HealthItem::new(id, &compared.current, now, model_version));
                }
            }
            if saver.is_some() {
                rows.push(ScoreRow {
                    account_id: compared.account_id.clone(),
                    scored: compared.current,
                    trend: compared.trend.as_str().to_owned(),
                    receipt: serde_json::to_string(&card.receipt)
                        .context("failed to serialise a receipt")?,
                    red_since: compared.red_since,
                    changed,
                    latest: !compared.superseded,
                    written: if due && sends {
                        None
                    } else {
                        compared.written.map(|w| w.fingerprint())
                    },
                });
            }
            report.accounts.push(compared);
        }
        Ok((rows, items))
    }

    /// Starts the task that writes score changes back to the CRM, when this cycle writes back;
    /// otherwise notes why it does not.
    fn health_writer(&self, report: &mut CycleReport, outward: Mode) -> Option<HealthWriter> {
        let Some(crm) = self.crm else {
            report.writeback_note = Some("the source has no CRM to write scores back to".into());
            return None;
        };
        if !self.settings.writeback.enabled {
            report.writeback_note = Some("write-back is off (writeback.enabled = false)".into());
            return None;
        }
        if outward == Mode::Plan {
            return None;
        }
        let (items_tx, items_rx) = mpsc::channel(PIPELINE_CHUNKS);
        let task = tokio::spawn(writeback::write_back(
            crm.clone(),
            self.settings.writeback.clone(),
            items_rx,
            self.store.cloned(),
        ));
        Some((items_tx, task))
    }

    /// Opens (or in a plan, lists) the follow-up tasks this cycle's scores and answers call for.
    /// Accounts held back or archived get none: their data is incomplete or history.
    async fn tasks(
        &self,
        report: &CycleReport,
        book: &Book,
        now: DateTime<Utc>,
    ) -> anyhow::Result<TaskReport> {
        let names: HashMap<AccountId, (String, Option<OwnerId>)> = book
            .accounts
            .values()
            .filter(|a| !a.archived && !book.held.contains_key(&a.id))
            .map(|a| (a.id.clone(), (a.name.clone(), a.owner_id.clone())))
            .collect();
        // The CRM's recent NPS answers and those collected by touchpoint's own pages.
        let answers: Vec<SurveyResponse> = book
            .recent_nps
            .iter()
            .filter(|a| names.contains_key(&a.account_id))
            .cloned()
            .collect();
        let run = TaskRun {
            settings: &self.settings.tasks,
            crm: self.crm,
            store: self.store,
            owners: &book.owners,
            now,
        };
        let acting_run = report.run_id.as_deref().filter(|_| !self.replay);
        run.run(&report.accounts, &answers, &names, acting_run)
            .await
    }

    async fn finish(&self, report: &CycleReport) -> anyhow::Result<()> {
        let (Some(store), Some(run_id)) = (self.store, report.run_id.as_deref()) else {
            return Ok(());
        };
        let summary = serde_json::json!({
            "rows": report.rows,
            "scored": report.scored,
            "held": report.held.len(),
            "rejected": report.rejected.len(),
            "bands": report.bands,
            "changed": report.changed().count(),
            "written": report.writeback.as_ref().map(|w| w.stored_count),
            "surveys_sent": report.surveys.as_ref().map(|s| s.sent),
            "surveys_deferred": report.surveys.as_ref().map(|s| s.deferred.len()),
            "surveys_failed": report.surveys.as_ref().map(|s| s.failures.len()),
            "surveys_not_sent": report.surveys.as_ref().map(|s| s.not_sent),
            // A replay lists the tasks that were due then; it opens none.
            "tasks_opened": report
                .tasks
                .as_ref()
                .map(|t| if report.replay { 0 } else { t.opened.len() }),
            "tasks_held": report.tasks.as_ref().map(|t| t.held.len()),
            "warnings": report.warnings,
        });
        let read_whole_book = matches!(report.status, RunStatus::Succeeded | RunStatus::Partial);
        let pulled = read_whole_book.then_some(report.accounts_pulled as u64);
        store
            .finish_run(
                run_id,
                report.status,
                report.reason.as_deref(),
                pulled,
                &summary,
            )
            .await
    }
}

/// Adds `reason` to the report's reason, after any it already has.
fn add_reason(report: &mut CycleReport, reason: String) {
    report.reason = Some(match report.reason.take() {
        Some(earlier) => format!("{earlier}; {reason}"),
        None => reason,
    });
}

fn compare(
    account: &Account,
    card: &Scorecard,
    previous: Option<&Latest>,
    now: DateTime<Utc>,
) -> ScoredAccount {
    let current = stored(card);
    let before = previous.map(|p| p.scored);
    let trend = Trend::between(before.as_ref(), &current);
    let red = Colour::Red;
    let turned_red = current.band == red && before.is_some_and(|b| b.band != red);
    let red_since = match (current.band == red, turned_red) {
        (false, _) => None,
        (true, true) => Some(now.date_naive()),
        (true, false) => previous.and_then(|p| p.red_since),
    };
    ScoredAccount {
        account_id: account.id.to_string(),
        name: account.name.clone(),
        previous: before,
        current,
        trend,
        turned_red,
        red_since,
        reasons: Measure::ALL
            .iter()
            .map(|m| {
                let colour = card.receipt.colour(*m);
                let mut line = format!(
                    "{} {}: {}",
                    m.as_str(),
                    colour.as_str(),
                    card.receipt.reason(*m)
                );
                // Kept for every account of the book until the cycle ends: no spare capacity.
                line.shrink_to_fit();
                line
            })
            .collect(),
        superseded: false,
        written: previous.and_then(|p| p.written),
    }
}

fn stored(card: &Scorecard) -> StoredScore {
    StoredScore {
        score: card.score.map(|s| s.get()),
        band: card.band,
        measures: Measure::ALL.map(|m| *card.measures.get(m)),
    }
}

/// What a run that scored the book left undone: records rejected (and the accounts they held
/// back), scores and tasks the CRM did not take, writes stopped by the CRM's daily limit. Any
/// of them makes the run partial, with these reasons.
fn shortfalls(report: &CycleReport, daily_limit: bool) -> Vec<String> {
    let mut reasons = Vec::new();
    if !report.held.is_empty() || !report.rejected.is_empty() {
        reasons.push(format!(
            "{} record(s) rejected; {} account(s) held back because some of their records \
             were rejected",
            report.rejected.len(),
            report.held.len()
        ));
    }
    if daily_limit {
        reasons.push(
            "the CRM's daily request limit was reached (429, policy daily): no further CRM \
             write was made in this cycle, and the next cycle resumes them"
                .to_owned(),
        );
    }
    reasons.extend(report.tasks.as_ref().and_then(TaskReport::shortfall));
    let Some(written) = &report.writeback else {
        return reasons;
    };
    if !written.failed_batches.is_empty() || !written.refused.is_empty() || written.not_sent > 0 {
        let due = written.attempted + written.not_sent;
        let unwritten = due.saturating_sub(written.stored_count);
        reasons.push(format!(
            "{unwritten} of {due} score(s) not written back: {} batch(es) failed after retries, \
             {} item(s) refused by the CRM, {} not sent after the daily limit (they are sent \
             again next cycle)",
            written.failed_batches.len(),
            written.refused.len(),
            written.not_sent
        ));
    }
    reasons
}

fn tally(report: &mut CycleReport) {
    report.scored = report.accounts.len();
    for account in &report.accounts {
        report.bands.add(account.current.band);
        for (measure, colour) in Measure::ALL.iter().zip(account.current.measures) {
            report
                .measures
                .entry(measure.as_str().to_owned())
                .or_default()
                .add(colour);
        }
    }
}

/// What a replay of a past day says about the steps it only planned.
const REPLAY_NOTE: &str = "this cycle replays a past day (--as-of): scores are stored locally, \
    but nothing is written to the CRM and no email is sent (--act-on-past does both)";
/// What a plan of a past day says: the cycle it previews would be a replay, which only lists
/// its emails and tasks.
const PLAN_REPLAY_NOTE: &str = "a cycle as of this past day (--as-of) would be a replay: it \
    would store its scores locally, write nothing to the CRM and send no email, so its emails \
    and tasks are only listed (--act-on-past acts on them)";

fn replay_note(mode: Mode) -> &'static str {
    match mode {
        Mode::Act => REPLAY_NOTE,
        Mode::Plan => PLAN_REPLAY_NOTE,
    }
}

/// Accounts scored (and saved, in one transaction) per chunk. A chunk's receipts are a
/// couple of kilobytes each and wait in memory until saved: small chunks keep that low, and
/// a commit per 500 rows costs little next to writing them.
const SCORE_CHUNK: usize = 500;
/// Chunks waiting for the saver or the writer before the scoring waits for them: enough to
/// keep both busy, few enough that receipts never pile up in memory.
const PIPELINE_CHUNKS: usize = 2;

/// The sending half of the write-back task, and the task itself.
type HealthWriter = (mpsc::Sender<Vec<HealthItem>>, JoinHandle<WritebackReport>);

/// A task that saves chunks of scores as the cycle hands them over, in order, each chunk in
/// one transaction, and then hands the chunk's score changes to the write-back, if any.
struct Saver {
    chunks: mpsc::Sender<(Vec<ScoreRow>, Vec<HealthItem>)>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Saver {
    fn start(
        store: &Store,
        run_id: &str,
        as_of: DateTime<Utc>,
        scoring: &scoring::ScoringConfig,
        write_back: Option<mpsc::Sender<Vec<HealthItem>>>,
    ) -> Self {
        let (chunks, mut received) =
            mpsc::channel::<(Vec<ScoreRow>, Vec<HealthItem>)>(PIPELINE_CHUNKS);
        let (store, run_id, version) = (store.clone(), run_id.to_owned(), scoring.version());
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut saved = 0;
            while let Some((rows, items)) = received.recv().await {
                store.save_scores(&run_id, as_of, &version, &rows).await?;
                saved += rows.len();
                if let Some(write_back) = &write_back {
                    // The write-back only stops early by panicking, which its join reports.
                    let _ = write_back.send(items).await;
                }
            }
            let duration_ms = started.elapsed().as_millis() as u64;
            tracing::debug!(run.id = %run_id, saved, duration_ms, "saved the scores");
            Ok(())
        });
        Self { chunks, task }
    }

    /// Waits for every chunk handed over to be saved, and says whether all were.
    async fn finish(self) -> anyhow::Result<()> {
        drop(self.chunks);
        self.task
            .await
            .context("the task saving scores stopped unexpectedly")?
    }
}

/// A measure red for at least this share of the book is more likely a data problem than news.
const SUSPICIOUS_RED_SHARE: f64 = 0.9;
/// Below this many scored accounts, shares say too little to warn about.
const WARN_MIN_ACCOUNTS: usize = 20;

/// What the book's usage of the key features says about the adoption rule, read before the
/// facts are consumed by scoring.
struct KeyFeatureUsage {
    /// Key features no account used in the adoption window.
    unused: Vec<String>,
    /// The most distinct days any account used any key feature in the window.
    busiest_days: u32,
}

impl KeyFeatureUsage {
    /// One pass over the book's facts.
    fn of(book: &Book, settings: &Settings) -> KeyFeatureUsage {
        let mut used = std::collections::HashSet::new();
        let mut busiest_days = 0;
        for (feature, days) in book.facts.values().flat_map(|f| f.feature_days.iter()) {
            used.insert(&**feature);
            busiest_days = busiest_days.max(*days);
        }
        let unused = settings
            .scoring
            .adoption()
            .key_features
            .iter()
            .filter(|feature| !used.contains(feature.as_str()))
            .cloned()
            .collect();
        KeyFeatureUsage {
            unused,
            busiest_days,
        }
    }

    /// Why adoption may be red almost everywhere: no account reaches the days a feature needs.
    fn adoption_hint(&self, settings: &Settings) -> Option<String> {
        let adoption = settings.scoring.adoption();
        (self.busiest_days < adoption.min_days_active).then(|| {
            format!(
                " (no account used a key feature on more than {} distinct day(s) of the \
                 {}-day window, and a feature counts as adopted from \
                 scoring.adoption.min_days_active = {} days)",
                self.busiest_days, adoption.window_days, adoption.min_days_active
            )
        })
    }
}

/// Looks for colours that the data or the configuration explain better than the customers do:
/// a key feature no account ever used (a misspelt name, a usage feed that lost a feature),
/// or a measure red nearly everywhere.
fn data_warnings(
    report: &CycleReport,
    book: &Book,
    usage: KeyFeatureUsage,
    settings: &Settings,
) -> Vec<String> {
    let mut warnings = book.notes.clone();
    if report.scored == 0 {
        return warnings;
    }
    let adoption_hint = usage.adoption_hint(settings);
    for feature in usage.unused {
        warnings.push(format!(
            "no usage rows for key feature `{feature}` in the adoption window: check \
             scoring.adoption.key_features against the feature names the usage source sends"
        ));
    }
    if report.scored < WARN_MIN_ACCOUNTS {
        return warnings;
    }
    for measure in Measure::ALL {
        let red = report
            .measures
            .get(measure.as_str())
            .map_or(0, |counts| counts.red);
        let share = red as f64 / report.scored as f64;
        if share >= SUSPICIOUS_RED_SHARE {
            let hint = match measure {
                Measure::Adoption => adoption_hint.as_deref().unwrap_or_default(),
                _ => "",
            };
            warnings.push(format!(
                "{} is red for {red} of {} scored accounts ({:.0}%){hint}: a measure red \
                 almost everywhere usually points to the data or the [scoring] configuration \
                 rather than to the customers; check them before acting on it",
                measure.as_str(),
                report.scored,
                share * 100.0
            ));
        }
    }
    warnings
}

/// A sortable, unique run id: the start time and a random suffix.
fn new_run_id() -> String {
    let suffix: u16 = rand::random();
    format!("run-{}-{suffix:04x}", Utc::now().format("%Y%m%dT%H%M%SZ"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings() -> Settings {
        Settings::load_from(None, Some(HashMap::new())).expect("the defaults load")
    }

    #[test]
    fn adoption_red_everywhere_says_when_no_account_reaches_the_days_a_feature_needs() {
        let settings = settings();
        let sparse = KeyFeatureUsage {
            unused: Vec::new(),
            busiest_days: 2,
        };
        let hint = sparse.adoption_hint(&settings).expect("a hint");
        assert!(hint.contains("more than 2 distinct day(s)"), "{hint}");
        assert!(
            hint.contains("scoring.adoption.min_days_active = 4"),
            "{hint}"
        );

        let busy = KeyFeatureUsage {
            unused: Vec::new(),
            busiest_days: 12,
        };
        assert_eq!(busy.adoption_hint(&settings), None);
    }
}
