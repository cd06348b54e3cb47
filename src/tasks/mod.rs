//! Follow-up tasks in the CRM: risk tasks for detractors and for health that turned red, and
//! review requests for promoters; never two open for the same account and reason.
//!
//! The cycle drives one [`TaskRun`] after scoring: reconcile the ledger with the CRM's task
//! list (so touchpoint knows what a CSM closed), check the mass-change breaker, turn triggers
//! into decisions with the pure [`rules`], record the decisions in the [`ledger`] and only then
//! write the tasks through `PUT /v1/tasks/{key}`. `plan` stops after the decisions.

pub mod ledger;
pub mod rules;
pub mod settings;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::cycle::ScoredAccount;
use crate::model::{AccountId, Owner, OwnerId, SurveyResponse};
use crate::scoring::Measure;
use crate::source::{RestClient, SourceError};
use crate::store::Store;
pub use ledger::{BREAKER_FLAG, LedgerTask};
pub use rules::{Decision, Evidence, History, MeasureMove, Reason, TaskDraft, Trigger};
pub use settings::{Priority, RawTaskSettings, TaskSettings};

/// The mass-change breaker's state in a cycle.
#[derive(Debug, Clone, Serialize)]
pub struct Breaker {
    /// Accounts that turned red in this cycle.
    pub turned_red: usize,
    /// The most that may turn red before the breaker trips.
    pub limit: usize,
    /// Tripped now or earlier and not yet released: health-driven tasks are held.
    pub tripped: bool,
    /// Tripped by this cycle.
    pub tripped_now: bool,
    /// When it was tripped and by how many accounts, as recorded then (`on 2025-06-02 by 70
    /// accounts turning red in one cycle (limit 56)`), while it is tripped.
    pub tripped_on: Option<String>,
}

impl Breaker {
    /// The line a person reads about the breaker: this cycle's count against the limit, and
    /// when it was tripped and by how many, which may be long ago.
    pub fn describe(&self) -> String {
        let this_cycle = format!(
            "{} account(s) turned red in this cycle, against a limit of {}",
            self.turned_red, self.limit
        );
        if self.tripped_now {
            return format!(
                "MASS-CHANGE BREAKER TRIPPED: {this_cycle}. Health-driven tasks are held; \
                 check the data, then run `touchpoint release-breaker`."
            );
        }
        let since = self.tripped_on.as_deref().unwrap_or("in an earlier cycle");
        format!(
            "MASS-CHANGE BREAKER: tripped {since}, and health-driven tasks stay held until \
             `touchpoint release-breaker`; {this_cycle}."
        )
    }
}

/// What the task step did (or, in a plan, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskReport {
    pub opened: Vec<TaskDraft>,
    pub held: Vec<Decision>,
    pub skipped: Vec<Decision>,
    pub breaker: Option<Breaker>,
    /// Tasks whose CRM status changed since the last reconciliation.
    pub reconciled: usize,
    /// Pending tasks the CRM confirmed in this cycle (new and retried ones).
    pub confirmed: usize,
    /// Tasks the CRM already held under their key (a retry after a lost answer).
    pub already_there: usize,
    /// `(key, reason)` of writes that failed; they stay pending or are marked conflict.
    pub failures: Vec<(String, String)>,
    /// Of the failures, writes the CRM refused as a key conflict (409): never retried.
    pub conflicts: usize,
    /// Pending tasks not written at all because the CRM's daily limit was reached earlier in
    /// the run; they stay pending for the next cycle.
    pub not_sent: usize,
    pub note: Option<String>,
}

impl TaskReport {
    /// What the CRM did not confirm, for the run's reason: `None` when it confirmed every
    /// write. Pending tasks (failed or not sent) are written again by the next cycle.
    pub fn shortfall(&self) -> Option<String> {
        let unconfirmed = self.failures.len() + self.not_sent;
        if unconfirmed == 0 {
            return None;
        }
        let pending = unconfirmed - self.conflicts;
        let mut text = format!(
            "{unconfirmed} of {} task(s) not confirmed by the CRM: {pending} stay pending and \
             are written again next cycle",
            self.confirmed + unconfirmed
        );
        if self.conflicts > 0 {
            text.push_str(&format!(
                ", {} refused as a key conflict (409) and not retried",
                self.conflicts
            ));
        }
        Some(text)
    }
}

/// One cycle's task step.
pub struct TaskRun<'a> {
    pub settings: &'a TaskSettings,
    pub crm: Option<&'a RestClient>,
    pub store: Option<&'a Store>,
    pub owners: &'a HashMap<OwnerId, Owner>,
    pub now: DateTime<Utc>,
}

/// The body of `PUT /v1/tasks/{key}`.
#[derive(Serialize)]
struct TaskWrite<'a> {
    account_id: &'a str,
    kind: &'a str,
    owner_id: &'a str,
    subject: &'a str,
    body: &'a str,
    due_date: &'a str,
    priority: &'a str,
}

/// The CRM's view of a task.
#[derive(Debug, Deserialize)]
struct CrmTask {
    key: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
    status: String,
    #[serde(deserialize_with = "crate::model::deserialize_timestamp")]
    updated_at: DateTime<Utc>,
}

impl TaskRun<'_> {
    /// Plans (and in `act` mode, opens) the tasks due for this cycle's triggers.
    pub async fn run(
        &self,
        accounts: &[ScoredAccount],
        answers: &[SurveyResponse],
        names: &HashMap<AccountId, (String, Option<OwnerId>)>,
        run_id: Option<&str>,
    ) -> anyhow::Result<TaskReport> {
        let mut report = TaskReport::default();
        if !self.settings.enabled {
            report.note = Some("tasks are off (tasks.enabled = false)".into());
            return Ok(report);
        }
        let Some(crm) = self.crm else {
            report.note = Some("the source has no CRM to open tasks in".into());
            return Ok(report);
        };
        let acting = run_id.is_some();

        let started = std::time::Instant::now();
        if acting {
            report.reconciled = self.reconcile(crm).await;
        }
        let breaker = self.breaker(accounts, acting).await?;
        let triggers = self.triggers(accounts, answers, names).await?;
        let decisions = self.decide(&triggers, breaker.tripped).await?;
        report.breaker = Some(breaker);
        sort_decisions(&mut report, decisions);
        tracing::debug!(
            triggers = triggers.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            "decided which tasks are due"
        );

        if let (Some(run_id), Some(store)) = (run_id, self.store) {
            let started = std::time::Instant::now();
            store
                .record_decisions(run_id, &report.opened, &decided_answers(&report), self.now)
                .await?;
            tracing::debug!(
                tasks = report.opened.len(),
                duration_ms = started.elapsed().as_millis() as u64,
                "recorded the tasks in the ledger"
            );
            let started = std::time::Instant::now();
            self.execute(crm, store, &mut report).await?;
            tracing::debug!(
                confirmed = report.confirmed,
                duration_ms = started.elapsed().as_millis() as u64,
                "wrote the tasks to the CRM"
            );
        }
        Ok(report)
    }

    /// Reads the CRM's task list since the last reconciliation and applies closings.
    async fn reconcile(&self, crm: &RestClient) -> usize {
        let Some(store) = self.store else {
            return 0;
        };
        match self.try_reconcile(crm, store).await {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!("could not reconcile tasks with the CRM: {e:#}");
                0
            }
        }
    }

    async fn try_reconcile(&self, crm: &RestClient, store: &Store) -> anyhow::Result<usize> {
        let since = store.reconciled_until().await?;
        let params: Vec<(&str, String)> = since
            .map(|at| vec![("updated_since", crate::store::timestamp(at))])
            .unwrap_or_default();
        let mut seen: Vec<CrmTask> = Vec::new();
        crm.for_each("tasks", "v1/tasks", &params, &mut |row| match row {
            Ok(task) => seen.push(task),
            Err(r) => {
                let reason = crate::telemetry::mask_emails_in(&r.reason);
                tracing::warn!(record.id = ?r.record_id, "skipped a task row: {reason}");
            }
        })
        .await?;

        let mut changed = 0;
        let mut watermark = since;
        for task in &seen {
            // A replay with --as-of in the past must not see a closing in its future.
            let closed_at = task.updated_at.min(self.now);
            if store
                .task_status_from_crm(&task.key, &task.status, closed_at)
                .await?
            {
                changed += 1;
            }
            watermark = watermark.max(Some(task.updated_at));
        }
        if let Some(at) = watermark {
            store.set_reconciled_until(at).await?;
        }
        Ok(changed)
    }

    /// Trips the breaker when too many accounts turned red at once; reads it otherwise.
    async fn breaker(&self, accounts: &[ScoredAccount], acting: bool) -> anyhow::Result<Breaker> {
        let turned_red = accounts
            .iter()
            .filter(|a| a.turned_red && !a.superseded)
            .count();
        let by_share = (accounts.len() as f64 * self.settings.breaker_share).floor() as usize;
        let limit = by_share.max(self.settings.breaker_min_accounts);
        let tripped_now = turned_red > limit;
        let earlier = match self.store {
            Some(store) => store.flag(BREAKER_FLAG).await?,
            None => None,
        };
        let already = earlier.is_some();
        let mut tripped_on = earlier;
        if tripped_now {
            tracing::error!(
                turned_red,
                limit,
                "MASS-CHANGE BREAKER TRIPPED: {turned_red} accounts turned red in one cycle \
                 (limit {limit}); health-driven tasks are held. This is far more often a data \
                 problem than churn. Check the data, then run `touchpoint release-breaker`."
            );
            let value = format!(
                "on {} by {turned_red} accounts turning red in one cycle (limit {limit})",
                self.now.date_naive()
            );
            if acting && let Some(store) = self.store {
                store.set_flag(BREAKER_FLAG, &value).await?;
            }
            tripped_on = Some(value);
        }
        Ok(Breaker {
            turned_red,
            limit,
            tripped: tripped_now || already,
            tripped_now,
            tripped_on,
        })
    }

    async fn triggers(
        &self,
        accounts: &[ScoredAccount],
        answers: &[SurveyResponse],
        names: &HashMap<AccountId, (String, Option<OwnerId>)>,
    ) -> anyhow::Result<Vec<Trigger>> {
        let decided = match self.store {
            Some(store) => store.decided_triggers().await?,
            None => HashSet::new(),
        };
        let mut triggers: Vec<Trigger> = accounts.iter().filter_map(red_trigger).collect();
        for answer in answers {
            let Some((name, owner)) = names.get(&answer.account_id) else {
                continue;
            };
            let fresh = self
                .answer_triggers(answer, name, owner.clone())
                .into_iter()
                .filter(|trigger| !decided.contains(&trigger.id));
            triggers.extend(fresh);
        }
        for trigger in &mut triggers {
            if let Some((name, owner)) = names.get(&trigger.account_id) {
                trigger.account_name = name.clone();
                trigger.owner_id = owner.clone();
            }
        }
        Ok(triggers)
    }

    /// The triggers one NPS answer fires: a detractor's risk task, and a review request for a
    /// promoter, or for every respondent (detractors included) when
    /// `tasks.promoter.all_respondents` is on, since review sites forbid asking only happy
    /// customers. A detractor's review request has a trigger of its own, so each is decided
    /// once.
    fn answer_triggers(
        &self,
        answer: &SurveyResponse,
        name: &str,
        owner_id: Option<OwnerId>,
    ) -> Vec<Trigger> {
        let Some(score) = answer.score else {
            return Vec::new();
        };
        let detractor = score <= self.settings.detractor_max_score;
        let reviewed =
            score >= self.settings.promoter_min_score || self.settings.review_all_respondents;
        let id = format!("answer:{}", answer.id);
        let mut fired = Vec::new();
        if detractor {
            fired.push((Reason::Detractor, id.clone()));
        }
        if reviewed {
            let review_id = if detractor {
                format!("{id}:review")
            } else {
                id
            };
            fired.push((Reason::Promoter, review_id));
        }
        fired
            .into_iter()
            .map(|(reason, id)| Trigger {
                account_id: answer.account_id.clone(),
                account_name: name.to_owned(),
                owner_id: owner_id.clone(),
                reason,
                id,
                evidence: Evidence::Answer {
                    response_id: answer.id.to_string(),
                    contact_id: answer.contact_id.as_ref().map(ToString::to_string),
                    score,
                    comment: answer.comment.clone(),
                    submitted_at: answer.submitted_at,
                },
            })
            .collect()
    }

    async fn decide(&self, triggers: &[Trigger], breaker: bool) -> anyhow::Result<Vec<Decision>> {
        let mut histories = match self.store {
            Some(store) => store.task_histories().await?,
            None => HashMap::new(),
        };
        let context = rules::Context {
            settings: self.settings,
            owners: self.owners,
            now: self.now,
            breaker_tripped: breaker,
        };
        let mut decisions = Vec::with_capacity(triggers.len());
        for trigger in triggers {
            let slot = (trigger.account_id.to_string(), trigger.reason);
            let history = histories.entry(slot).or_default();
            let decision = rules::decide(trigger, history, &context);
            if let Decision::Open(draft) = &decision {
                history.open_key = Some(draft.key.clone());
                history.last_opened_at = Some(self.now);
            }
            decisions.push(decision);
        }
        Ok(decisions)
    }

    /// Writes every pending task (this cycle's and any left by an earlier one). Once the CRM
    /// answers with its daily limit, the writes still waiting are not sent: they stay pending.
    async fn execute(
        &self,
        crm: &RestClient,
        store: &Store,
        report: &mut TaskReport,
    ) -> anyhow::Result<()> {
        let pending = store.pending_tasks().await?;
        let mut writes = stream::iter(pending)
            .map(|task| async move {
                if crm.daily_limit_reached() {
                    return (task, None);
                }
                let answer = put_task(crm, &task).await;
                (task, Some(answer))
            })
            .buffer_unordered(self.settings.concurrency);

        // Confirmations are stamped a batch at a time: a crash before a batch is stamped leaves
        // those tasks pending, and the next cycle's idempotent PUT answers with the same tasks.
        let mut confirmed = Vec::new();
        while let Some((task, answer)) = writes.next().await {
            if confirmed.len() >= CONFIRM_BATCH {
                store.tasks_confirmed(&confirmed, self.now).await?;
                confirmed.clear();
            }
            let Some(answer) = answer else {
                report.not_sent += 1;
                continue;
            };
            match answer {
                Ok((created, crm_task)) => {
                    confirmed.push(ledger::Confirmed {
                        key: task.key.clone(),
                        crm_id: crm_task.id.as_ref().map(json_id),
                        crm_status: crm_task.status.clone(),
                    });
                    report.confirmed += 1;
                    if !created {
                        report.already_there += 1;
                    }
                }
                Err(e) => {
                    let conflict = matches!(e, SourceError::Refused { status: 409, .. });
                    tracing::warn!(task.key = %task.key, "could not write a task: {e}");
                    store
                        .task_failed(&task.key, conflict, &e.to_string(), self.now)
                        .await?;
                    report.conflicts += usize::from(conflict);
                    report.failures.push((task.key.clone(), e.to_string()));
                }
            }
        }
        store.tasks_confirmed(&confirmed, self.now).await
    }
}

/// Task confirmations stamped in one transaction.
const CONFIRM_BATCH: usize = 100;

/// Reconciles the ledger with the CRM's task list outside a cycle (the daemon does it between
/// cycles, so a closing is known sooner). Returns how many tasks changed status.
pub async fn reconcile(
    settings: &TaskSettings,
    crm: &RestClient,
    store: &Store,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let owners = HashMap::new();
    let run = TaskRun {
        settings,
        crm: Some(crm),
        store: Some(store),
        owners: &owners,
        now,
    };
    run.try_reconcile(crm, store).await
}

/// A red account with a known day it turned red deserves a risk task, unless a newer day's
/// score is already stored (a replay of the past): what is in force now decides.
fn red_trigger(account: &ScoredAccount) -> Option<Trigger> {
    if account.superseded {
        return None;
    }
    let red_since = account.red_since?;
    let id = AccountId::parse(&account.account_id).ok()?;
    Some(Trigger {
        account_id: id,
        account_name: account.name.clone(),
        owner_id: None,
        reason: Reason::TurnedRed,
        id: format!("red:{}:{red_since}", account.account_id),
        evidence: Evidence::Red {
            red_since,
            score: account.current.score,
            previous: account.previous.as_ref().map(|p| {
                let score = p.score.map_or("n/a".to_owned(), |s| s.to_string());
                format!("{score} {}", p.band)
            }),
            reasons: account.reasons.clone(),
            moved: account.turned_red.then(|| moved_measures(account)),
        },
    })
}

/// The measures whose colour differs from the previous score, with their reasons now.
fn moved_measures(account: &ScoredAccount) -> Vec<MeasureMove> {
    let Some(before) = &account.previous else {
        return Vec::new();
    };
    Measure::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| before.measures[*i] != account.current.measures[*i])
        .map(|(i, measure)| MeasureMove {
            measure: measure.as_str().to_owned(),
            before: before.measures[i].to_string(),
            now: account.current.measures[i].to_string(),
            reason: account.measure_reason(i).to_owned(),
        })
        .collect()
}

fn sort_decisions(report: &mut TaskReport, decisions: Vec<Decision>) {
    for decision in decisions {
        match decision {
            Decision::Open(draft) => report.opened.push(draft),
            held @ Decision::Held { .. } => report.held.push(held),
            skipped @ Decision::Skipped { .. } => report.skipped.push(skipped),
        }
    }
}

/// Answer triggers that need no second look: opened, or skipped for a lasting reason.
fn decided_answers(report: &TaskReport) -> Vec<(String, String, Option<String>)> {
    let opened = report
        .opened
        .iter()
        .filter(|d| d.trigger_id.starts_with("answer:"))
        .map(|d| {
            (
                d.trigger_id.clone(),
                "opened".to_owned(),
                Some(d.key.clone()),
            )
        });
    let skipped = report.skipped.iter().filter_map(|d| match d {
        Decision::Skipped {
            trigger_id, why, ..
        } if trigger_id.starts_with("answer:") => {
            Some((trigger_id.clone(), format!("skipped: {why}"), None))
        }
        _ => None,
    });
    opened.chain(skipped).collect()
}

/// Sends one task; says whether the CRM created it (201) or already had it (200).
async fn put_task(crm: &RestClient, task: &LedgerTask) -> Result<(bool, CrmTask), SourceError> {
    let body = TaskWrite {
        account_id: &task.account_id,
        kind: &task.kind,
        owner_id: &task.owner_id,
        subject: &task.subject,
        body: &task.body,
        due_date: &task.due_date,
        priority: &task.priority,
    };
    let path = format!("v1/tasks/{}", task.key);
    let (status, answer) = crm.put_with_status::<_, CrmTask>(&path, &body).await?;
    Ok((status == 201, answer))
}

fn json_id(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::process::ExitCode;

    #[test]
    fn the_breaker_line_says_this_cycles_count_and_when_it_was_tripped() {
        let earlier = "on 2025-06-02 by 70 accounts turning red in one cycle (limit 56)";
        let held = super::Breaker {
            turned_red: 1,
            limit: 56,
            tripped: true,
            tripped_now: false,
            tripped_on: Some(earlier.to_owned()),
        };
        let line = held.describe();
        assert!(line.contains(&format!("tripped {earlier}")), "{line}");
        assert!(
            line.contains("1 account(s) turned red in this cycle, against a limit of 56"),
            "{line}"
        );

        let now = super::Breaker {
            turned_red: 70,
            tripped_now: true,
            ..held
        };
        assert!(
            now.describe()
                .starts_with("MASS-CHANGE BREAKER TRIPPED: 70 account(s)")
        );
    }

    use clap::Parser;

    use super::*;
    use crate::cli::{self, Cli};
    use crate::settings::Settings;

    #[tokio::test]
    async fn release_breaker_on_the_command_line_clears_the_breaker() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let config = dir.path().join("touchpoint.toml");
        let store_path = dir.path().join("touchpoint.db").display().to_string();
        std::fs::write(&config, format!("[store]\npath = {store_path:?}\n")).expect("written");
        let settings = Settings::load(Some(&config)).expect("the configuration loads");
        let store = Store::open(&settings.store).await.expect("the store opens");
        store
            .set_flag(BREAKER_FLAG, "40 accounts turned red as of 2025-06-02")
            .await
            .expect("tripped");
        let config = config.display().to_string();
        let release = || {
            Cli::try_parse_from(["touchpoint", "release-breaker", "--config", config.as_str()])
                .expect("the command line parses")
        };

        let released = cli::run(release()).await.expect("release-breaker runs");
        let again = cli::run(release())
            .await
            .expect("release-breaker runs again");

        assert_eq!(released, ExitCode::SUCCESS);
        assert_eq!(store.flag(BREAKER_FLAG).await.expect("read"), None);
        assert_eq!(
            again,
            ExitCode::SUCCESS,
            "nothing to release is not an error"
        );
    }
}
