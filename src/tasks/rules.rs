//! Which tasks are due, as pure code: triggers and the ledger's view in, decisions out.
//!
//! A trigger is something that may deserve a task: an account whose health turned red, or an
//! NPS answer. A decision opens a task (with its deterministic key, owner, due date and a body
//! that says why), holds it (something a person must fix first: no owner, the mass-change
//! breaker), or skips it (a task for that account and reason is already open, the cool-down
//! has not passed, a review was requested this year). Nothing here does I/O or reads the clock.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use super::settings::{Priority, Rule, TaskSettings};
use crate::model::{AccountId, Owner, OwnerId};

/// Why a task is opened; at most one task per account and reason is open at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Detractor,
    TurnedRed,
    Promoter,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Detractor => "detractor",
            Reason::TurnedRed => "turned_red",
            Reason::Promoter => "promoter",
        }
    }

    pub fn parse(text: &str) -> Option<Reason> {
        [Reason::Detractor, Reason::TurnedRed, Reason::Promoter]
            .into_iter()
            .find(|r| r.as_str() == text)
    }

    /// The contract's task kind.
    pub fn kind(self) -> &'static str {
        match self {
            Reason::Detractor | Reason::TurnedRed => "risk",
            Reason::Promoter => "review_request",
        }
    }
}

/// What fired, with what the task body will quote.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// An NPS answer.
    Answer {
        response_id: String,
        contact_id: Option<String>,
        score: u8,
        comment: Option<String>,
        submitted_at: DateTime<Utc>,
    },
    /// Health that turned red, with the reasons of the measures behind it.
    Red {
        red_since: NaiveDate,
        score: Option<u8>,
        previous: Option<String>,
        reasons: Vec<String>,
        /// The measures whose colour changed when the band turned red, when it turned red in
        /// this cycle; `None` when it was already red at the previous score (the task was held
        /// or cooled down meanwhile), so what moved then is in the history, not here.
        moved: Option<Vec<MeasureMove>>,
    },
}

/// A measure whose colour changed between two scores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeasureMove {
    pub measure: String,
    pub before: String,
    pub now: String,
    /// The measure's reason now, with the inputs it names.
    pub reason: String,
}

/// Something that may deserve a task.
#[derive(Debug, Clone, Serialize)]
pub struct Trigger {
    pub account_id: AccountId,
    pub account_name: String,
    pub owner_id: Option<OwnerId>,
    pub reason: Reason,
    /// Stable across cycles: `answer:<response id>` (`answer:<response id>:review` for the
    /// review request a detractor also gets) or `red:<account>:<date it turned red>`.
    pub id: String,
    pub evidence: Evidence,
}

/// What the ledger knows about one account and reason.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The key of the task that is open (or being opened) for this account and reason.
    pub open_key: Option<String>,
    /// When the last task for this account and reason was closed in the CRM.
    pub last_closed_at: Option<DateTime<Utc>>,
    /// When a task for this account and reason was last opened.
    pub last_opened_at: Option<DateTime<Utc>>,
}

/// A task ready to be written to the CRM.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDraft {
    pub key: String,
    pub account_id: String,
    pub reason: Reason,
    pub kind: &'static str,
    pub owner_id: String,
    pub subject: String,
    pub body: String,
    pub due_date: NaiveDate,
    /// The zone the due date's business days are counted in: the owner's, else the default.
    pub due_zone: String,
    pub priority: Priority,
    pub trigger_id: String,
}

/// What to do about one trigger.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Open(TaskDraft),
    /// Due, but held until a person acts; the trigger is considered again next cycle.
    Held {
        account_id: String,
        reason: Reason,
        trigger_id: String,
        why: String,
    },
    /// Not due; answer triggers are not considered again.
    Skipped {
        account_id: String,
        reason: Reason,
        trigger_id: String,
        why: String,
    },
}

/// The facts every decision of a cycle shares.
pub struct Context<'a> {
    pub settings: &'a TaskSettings,
    pub owners: &'a HashMap<OwnerId, Owner>,
    pub now: DateTime<Utc>,
    /// The mass-change breaker holds health-driven tasks.
    pub breaker_tripped: bool,
}

impl Context<'_> {
    fn rule(&self, reason: Reason) -> Rule {
        match reason {
            Reason::Detractor => self.settings.detractor,
            Reason::TurnedRed => self.settings.turned_red,
            Reason::Promoter => self.settings.promoter,
        }
    }
}

/// Decides what to do about one trigger.
pub fn decide(trigger: &Trigger, history: &History, context: &Context<'_>) -> Decision {
    let skip = |why: String| Decision::Skipped {
        account_id: trigger.account_id.to_string(),
        reason: trigger.reason,
        trigger_id: trigger.id.clone(),
        why,
    };
    let hold = |why: String| Decision::Held {
        account_id: trigger.account_id.to_string(),
        reason: trigger.reason,
        trigger_id: trigger.id.clone(),
        why,
    };

    if let Some(why) = not_due(trigger, history, context) {
        return skip(why);
    }
    if trigger.reason == Reason::TurnedRed && context.breaker_tripped {
        return hold(
            "the mass-change breaker is tripped: run `touchpoint release-breaker` \
                     once the red wave has been checked"
                .to_owned(),
        );
    }
    let Some((owner_id, zone)) = owner_of(trigger, context) else {
        return hold(
            "the account has no active owner and tasks.fallback_owner_id is not set".to_owned(),
        );
    };
    Decision::Open(draft(trigger, owner_id, zone, context))
}

/// Why the trigger needs no task now, if it does not.
fn not_due(trigger: &Trigger, history: &History, context: &Context<'_>) -> Option<String> {
    if !context.rule(trigger.reason).enabled {
        return Some(format!(
            "the {} rule is switched off",
            trigger.reason.as_str()
        ));
    }
    if let Some(key) = &history.open_key {
        return Some(format!(
            "task {key} is already open for this account and reason"
        ));
    }
    let once_per = TimeDelta::days(i64::from(context.settings.review_once_per_days));
    let recent_review = history
        .last_opened_at
        .filter(|at| trigger.reason == Reason::Promoter && context.now < *at + once_per);
    if let Some(opened) = recent_review {
        return Some(format!(
            "a review was already requested on {} (at most one per {} days)",
            opened.date_naive(),
            context.settings.review_once_per_days
        ));
    }
    let cooldown = TimeDelta::days(i64::from(context.settings.cooldown_days));
    if let Some(closed) = history
        .last_closed_at
        .filter(|at| context.now < *at + cooldown)
    {
        return Some(format!(
            "the last such task was closed on {}; the cool-down lasts until {}",
            closed.date_naive(),
            (closed + cooldown).date_naive()
        ));
    }
    None
}

/// The account's owner when active, else the fallback; with the zone its due dates use.
fn owner_of(trigger: &Trigger, context: &Context<'_>) -> Option<(OwnerId, Tz)> {
    let active = trigger
        .owner_id
        .as_ref()
        .and_then(|id| context.owners.get(id))
        .filter(|owner| owner.active);
    let zone_of = |owner: Option<&Owner>| {
        owner
            .and_then(|o| o.timezone.as_deref())
            .and_then(|name| name.parse::<Tz>().ok())
            .unwrap_or(context.settings.default_timezone)
    };
    match active {
        Some(owner) => Some((owner.id.clone(), zone_of(Some(owner)))),
        None => {
            let fallback = context.settings.fallback_owner.clone()?;
            let zone = zone_of(context.owners.get(&fallback));
            Some((fallback, zone))
        }
    }
}

fn draft(trigger: &Trigger, owner_id: OwnerId, zone: Tz, context: &Context<'_>) -> TaskDraft {
    let rule = context.rule(trigger.reason);
    let today = context.now.with_timezone(&zone).date_naive();
    TaskDraft {
        key: task_key(trigger, today),
        account_id: trigger.account_id.to_string(),
        reason: trigger.reason,
        kind: trigger.reason.kind(),
        owner_id: owner_id.to_string(),
        subject: subject(trigger),
        body: body(trigger),
        due_date: add_business_days(today, rule.due_business_days),
        due_zone: zone.name().to_owned(),
        priority: rule.priority,
        trigger_id: trigger.id.clone(),
    }
}

/// The deterministic key of the task a trigger opens.
///
/// It carries the trigger and the day the task is opened: a retry or re-run of the same
/// decision produces the same key (so the CRM answers with the existing task), while a task
/// re-opened after a cool-down gets a new one, as the contract requires. Characters outside
/// the contract's key alphabet are replaced, and over-long keys are shortened with a hash.
pub fn task_key(trigger: &Trigger, opened_on: NaiveDate) -> String {
    let raw = format!(
        "touchpoint:{}:{}:{}:{}",
        trigger.reason.as_str(),
        trigger.account_id,
        trigger_part(trigger),
        opened_on.format("%Y%m%d")
    );
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= 200 && clean == raw {
        return clean;
    }
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(raw.as_bytes()));
    let head: String = clean.chars().take(150).collect();
    format!("{head}:{}", &digest[..16])
}

fn trigger_part(trigger: &Trigger) -> String {
    match &trigger.evidence {
        Evidence::Answer { response_id, .. } => response_id.clone(),
        Evidence::Red { red_since, .. } => format!("red{}", red_since.format("%Y%m%d")),
    }
}

/// `days` business days (Monday to Friday) after `from`.
pub fn add_business_days(from: NaiveDate, days: u32) -> NaiveDate {
    let mut date = from;
    let mut left = days;
    while left > 0 {
        date = date.succ_opt().unwrap_or(date);
        if !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    date
}

fn subject(trigger: &Trigger) -> String {
    let name = &trigger.account_name;
    match (&trigger.reason, &trigger.evidence) {
        (Reason::Detractor, Evidence::Answer { score, .. }) => {
            format!("Risk: {name} answered NPS {score}")
        }
        (Reason::TurnedRed, _) => format!("Risk: {name}'s health turned red"),
        _ => format!("Invite {name} to write a public review"),
    }
}

fn body(trigger: &Trigger) -> String {
    let mut text = match &trigger.evidence {
        Evidence::Answer {
            response_id,
            contact_id,
            score,
            comment,
            submitted_at,
        } => answer_body(
            trigger,
            response_id,
            contact_id.as_deref(),
            *score,
            comment.as_deref(),
            *submitted_at,
        ),
        Evidence::Red {
            red_since,
            score,
            previous,
            reasons,
            moved,
        } => red_body(
            *red_since,
            *score,
            previous.as_deref(),
            reasons,
            moved.as_deref(),
        ),
    };
    text.push_str(&format!(
        "\n\nMore: touchpoint explain {}\n(Opened by touchpoint, rule {}.)",
        trigger.account_id,
        trigger.reason.as_str()
    ));
    text
}

fn answer_body(
    trigger: &Trigger,
    response_id: &str,
    contact_id: Option<&str>,
    score: u8,
    comment: Option<&str>,
    submitted_at: DateTime<Utc>,
) -> String {
    let who = contact_id.map_or("a contact".to_owned(), |id| format!("contact {id}"));
    let mut text = match trigger.reason {
        Reason::Promoter => format!(
            "{who} answered the NPS survey on {} (answer {response_id}).\nInvite the account \
             to share an honest review of its experience on a public review site such as G2. \
             Ask openly: no incentive tied to a positive rating.",
            submitted_at.date_naive()
        ),
        _ => format!(
            "{who} scored us {score} out of 10 on the NPS survey on {} (answer \
             {response_id}).\nReach out to understand what is not working.",
            submitted_at.date_naive()
        ),
    };
    if let Some(comment) = comment.filter(|c| !c.trim().is_empty()) {
        text.push_str(&format!("\nTheir comment: \"{}\"", comment.trim()));
    }
    text
}

/// Says when the band turned red, which measures moved and why, then every measure now.
fn red_body(
    red_since: NaiveDate,
    score: Option<u8>,
    previous: Option<&str>,
    reasons: &[String],
    moved: Option<&[MeasureMove]>,
) -> String {
    let score = score.map_or("n/a".to_owned(), |s| s.to_string());
    let mut text = match moved {
        Some(moved) => {
            let previous = previous.unwrap_or("not red");
            let mut text = format!(
                "Health turned red on {red_since}: score {score} (before: {previous}).\n\
                 What moved:"
            );
            for m in moved {
                text.push_str(&format!(
                    "\n- {}: {} -> {} (now: {})",
                    m.measure, m.before, m.now, m.reason
                ));
            }
            if moved.is_empty() {
                text.push_str(
                    "\n- no measure changed colour: the weights or the scoring configuration \
                     changed (explain shows the config version of each score)",
                );
            }
            text
        }
        None => format!(
            "Health turned red on {red_since} and is still red: score {score}. The history \
             shows which measures moved then."
        ),
    };
    text.push_str("\nMeasures now:");
    for reason in reasons {
        text.push_str(&format!("\n- {reason}"));
    }
    text
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
