//! Who is due for which survey, as pure code: the book, what the outbox remembers and `now`
//! in; the emails to send, defer or record as skipped, and the ones held back, each with a
//! reason, out. Nothing here does I/O or reads the clock.
//!
//! # Waves
//!
//! - **Goal survey**: wave *k* is due on OCD + 6k months (k ≥ 1), each computed from the
//!   original contract date, never from the previous wave, so a contract signed on 31 August
//!   is surveyed on 28 (or 29) February and 31 August, every year. It goes to the account's
//!   live contacts of the configured goal personas. An account with none of them gets no goal
//!   survey: it is held with that reason, because the survey asks about the account's business
//!   goals and only a sponsor-like contact can answer; `plan` shows it so the CRM can be fixed.
//! - **NPS**: one wave per calendar quarter per person (`2025-Q2`). A contact's wave is due on
//!   the same day of every quarter, day `hash(contact id) mod 90`, so the first run does not
//!   email everyone on one day and each person hears from us about every three months.
//!
//! Due days are UTC days. A wave due on day D may go out from D 00:00 UTC until just before
//! D + grace (half-open); from then on it is recorded as skipped, never sent late. Only the
//! latest wave of each survey whose day has come is considered: a grace period is shorter than
//! the gap between waves, so no earlier wave can still be open.
//!
//! A wave whose grace period ended before touchpoint first surveyed from this store
//! ([`History::surveys_since`]) was never touchpoint's to send: it is counted as "before
//! touchpoint began" and not recorded, and the contact's next wave is the first one. So a first
//! run over a large book neither emails everyone nor fills the outbox with waves it never
//! missed; a wave missed *after* that day (the daemon was down) is recorded as skipped.
//!
//! # One person, one survey
//!
//! A person is a normalised address: trimmed and lower-cased whole. Two contacts with the same
//! address (listed twice, or a consultant on two accounts) are one person: an NPS wave goes to
//! the one with the smallest contact id, once; a goal wave once per account. Nobody gets two
//! surveys in one run (the goal survey goes first), nor a survey within the fatigue gap after
//! the last one sent to them.
//!
//! # Order of the checks
//!
//! Archived accounts, and archived or merged contacts, get nothing (and are not listed).
//! Then, per due wave: held-back account data, the outbox (done, in flight, or retrying
//! later), the address (missing, invalid, opted out, unsubscribed, bounced), the same person,
//! the grace period, the send window in the recipient's zone, the fatigue gap, and last the
//! per-cycle and per-day budgets, whose excess is deferred.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::outbox::State;
use super::settings::SurveySettings;
use super::window::{Zone, recipient_zone};
use crate::model::{Account, AccountId, Contact, ContactId, SurveyKind};

/// NPS days are spread over the first 90 days of a quarter: every quarter has at least 90.
const NPS_SPREAD_DAYS: u64 = 90;
/// Months between goal-survey waves.
const GOAL_EVERY_MONTHS: u32 = 6;

/// A wave of a survey that is due for a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wave {
    pub survey: SurveyKind,
    /// `12m` (goal: months after the OCD) or `2025-Q2` (NPS).
    pub label: String,
    pub due_on: NaiveDate,
    /// Why it is due on that day, for people.
    pub why: String,
}

/// The goal-survey wave `k` (k ≥ 1): OCD + 6k months, clamped to the month's last day.
pub fn goal_wave_day(ocd: NaiveDate, k: u32) -> Option<NaiveDate> {
    ocd.checked_add_months(Months::new(k.checked_mul(GOAL_EVERY_MONTHS)?))
}

/// The latest goal wave due on or before `today`, if the first one has come.
pub fn latest_goal_wave(ocd: NaiveDate, today: NaiveDate) -> Option<Wave> {
    let months = (today.year() - ocd.year()) * 12 + today.month() as i32 - ocd.month() as i32;
    let mut k = u32::try_from(months / GOAL_EVERY_MONTHS as i32).ok()? + 1;
    while k > 0 && goal_wave_day(ocd, k).is_none_or(|day| day > today) {
        k -= 1;
    }
    if k == 0 {
        return None;
    }
    let due_on = goal_wave_day(ocd, k)?;
    let months = k * GOAL_EVERY_MONTHS;
    Some(Wave {
        survey: SurveyKind::Goal,
        label: format!("{months}m"),
        due_on,
        why: format!("{months} months after the contract date {ocd}"),
    })
}

/// The contact's day in every quarter, from 0 to 89: a stable hash of the contact id.
pub fn nps_day_of_quarter(contact: &ContactId) -> u64 {
    let digest = Sha256::digest(format!("nps-spread:{contact}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % NPS_SPREAD_DAYS
}

/// The latest NPS wave of the contact due on or before `today`.
pub fn latest_nps_wave(contact: &ContactId, today: NaiveDate) -> Option<Wave> {
    let offset = nps_day_of_quarter(contact);
    let this_quarter = quarter_start(today)?;
    let mut start = this_quarter;
    if this_quarter.checked_add_days(chrono::Days::new(offset))? > today {
        start = this_quarter.checked_sub_months(Months::new(3))?;
    }
    let due_on = start.checked_add_days(chrono::Days::new(offset))?;
    let quarter = (start.month() - 1) / 3 + 1;
    Some(Wave {
        survey: SurveyKind::Nps,
        label: format!("{}-Q{quarter}", start.year()),
        due_on,
        why: format!("this contact's day {} of each quarter", offset + 1),
    })
}

fn quarter_start(day: NaiveDate) -> Option<NaiveDate> {
    let month = (day.month() - 1) / 3 * 3 + 1;
    NaiveDate::from_ymd_opt(day.year(), month, 1)
}

/// An address as a person: trimmed and lower-cased whole, and checked to be an address.
pub fn normalise_address(raw: &str) -> Result<String, String> {
    let address = raw.trim().to_lowercase();
    lettre::Address::from_str(&address)
        .map(|_| address)
        .map_err(|e| format!("the address is not valid ({e})"))
}

/// What the outbox remembers about one email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub state: State,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// What the store knows that the cadence needs.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Outbox rows of recent waves, by key.
    pub rows: HashMap<String, Known>,
    /// The key holding each person-wave (see [`Email::person_wave`]).
    pub person_waves: HashMap<String, String>,
    /// When each address was last sent a survey (either survey).
    pub last_sent: HashMap<String, DateTime<Utc>>,
    /// Addresses that get nothing, with why (unsubscribed, hard bounce).
    pub suppressed: HashMap<String, String>,
    /// Emails sent (or being sent) since the start of the current UTC day.
    pub sent_today: u32,
    /// When touchpoint first recorded survey decisions in this store; `None` before it ever
    /// did (a first run, or a plan with no store), which counts as now.
    pub surveys_since: Option<DateTime<Utc>>,
}

/// The book as the cadence reads it.
pub struct Inputs<'a> {
    pub accounts: &'a BTreeMap<AccountId, Account>,
    /// Every contact of the book, ordered by id.
    pub contacts: &'a [Contact],
    /// Accounts whose data is incomplete this cycle: nothing goes out for them.
    pub held: &'a BTreeMap<AccountId, String>,
    pub history: &'a History,
    pub now: DateTime<Utc>,
}

/// One survey email, ready to be recorded in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email {
    /// The idempotency key: survey, wave, account and contact.
    pub key: String,
    /// One person and one wave: at most one email ever holds it. It holds the address, so it
    /// stays out of reports.
    #[serde(skip)]
    pub person_wave: String,
    pub survey: SurveyKind,
    pub wave: String,
    pub due_on: NaiveDate,
    /// The end of the grace period: it is not sent at or after this instant.
    pub closes_at: DateTime<Utc>,
    pub account_id: String,
    pub account_name: String,
    pub contact_id: String,
    /// The normalised address (masked when serialised).
    #[serde(serialize_with = "masked")]
    pub recipient: String,
    #[serde(skip)]
    pub display_name: Option<String>,
    /// The recipient's time zone.
    pub zone: String,
    pub why: String,
}

/// A due email that does not go out this run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub survey: SurveyKind,
    pub wave: String,
    pub account_id: String,
    pub contact_id: Option<String>,
    /// The address, masked.
    pub recipient: Option<String>,
    pub why: String,
}

/// Everything a run would do with the surveys.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub send: Vec<Email>,
    /// Due and allowed, but over a budget: recorded as deferred, first in line next time.
    pub deferred: Vec<Email>,
    /// Missed by more than the grace period: recorded as skipped.
    pub skipped: Vec<(Email, String)>,
    pub held: Vec<Hold>,
    /// Waves whose grace period ended before touchpoint began surveying: not touchpoint's to
    /// send, not recorded, and not missed.
    pub before_start: usize,
}

/// Plans one run.
pub fn plan(inputs: &Inputs<'_>, settings: &SurveySettings) -> Plan {
    let mut plan = Plan::default();
    let candidates = candidates(inputs, settings, &mut plan);
    let candidates = one_per_person_wave(candidates, inputs.history, &mut plan);
    let mut ready = Vec::new();
    for email in candidates {
        match timing(&email, inputs, settings) {
            Timing::Ready => ready.push(email),
            Timing::Missed(why) => plan.skipped.push((email, why)),
            Timing::Hold(why) => plan.held.push(hold(&email, why)),
        }
    }
    let ready = one_per_person(ready, inputs.history, &mut plan);
    budget(ready, inputs.history, settings, &mut plan);
    plan
}

/// Every due wave of every live contact that passes the per-contact checks.
fn candidates(inputs: &Inputs<'_>, settings: &SurveySettings, plan: &mut Plan) -> Vec<Email> {
    let today = inputs.now.date_naive();
    let mut contacts: Vec<&Contact> = inputs.contacts.iter().collect();
    contacts.sort_by(|a, b| a.id.cmp(&b.id));
    let mut goal_covered = HashSet::new();
    let mut emails = Vec::new();
    let began = inputs.history.surveys_since.unwrap_or(inputs.now);

    for contact in contacts {
        let Some(account) = inputs.accounts.get(&contact.account_id) else {
            continue;
        };
        if account.archived || !contact.is_live() {
            continue;
        }
        for wave in waves(contact, account, settings, today) {
            if wave.survey == SurveyKind::Goal {
                goal_covered.insert(account.id.clone());
            }
            let closes_at = day_start(wave.due_on) + settings.grace;
            if closes_at <= began && closes_at <= inputs.now {
                plan.before_start += 1;
                continue;
            }
            match check_contact(&wave, contact, account, inputs, settings) {
                Checked::Due(email) => emails.push(*email),
                Checked::Held(hold) => plan.held.push(hold),
                Checked::Done => {}
            }
        }
    }
    plan.held
        .extend(uncovered_goal_waves(inputs, settings, &goal_covered));
    emails
}

/// The latest due wave of each survey the contact takes part in.
fn waves(
    contact: &Contact,
    account: &Account,
    settings: &SurveySettings,
    today: NaiveDate,
) -> Vec<Wave> {
    let mut waves = Vec::new();
    let takes_goal = contact
        .persona
        .is_some_and(|p| settings.goal_personas.contains(&p));
    if let Some(ocd) = account.contract_start_date {
        if takes_goal {
            waves.extend(latest_goal_wave(ocd, today));
        }
        if ocd <= today {
            waves.extend(latest_nps_wave(&contact.id, today));
        }
    } else {
        waves.extend(latest_nps_wave(&contact.id, today));
    }
    waves
}

/// Accounts whose goal wave is due but that have no live contact to send it to.
fn uncovered_goal_waves(
    inputs: &Inputs<'_>,
    settings: &SurveySettings,
    covered: &HashSet<AccountId>,
) -> Vec<Hold> {
    let today = inputs.now.date_naive();
    let personas: Vec<&str> = settings.goal_personas.iter().map(|p| p.as_str()).collect();
    inputs
        .accounts
        .values()
        .filter(|a| !a.archived && !covered.contains(&a.id))
        .filter_map(|account| {
            let wave = latest_goal_wave(account.contract_start_date?, today)?;
            let closes = day_start(wave.due_on) + settings.grace;
            (inputs.now < closes).then(|| Hold {
                survey: SurveyKind::Goal,
                wave: wave.label,
                account_id: account.id.to_string(),
                contact_id: None,
                recipient: None,
                why: format!(
                    "the account has no live contact of a goal persona ({})",
                    personas.join(", ")
                ),
            })
        })
        .collect()
}

/// What the per-contact checks found.
enum Checked {
    Due(Box<Email>),
    Held(Hold),
    /// Already handled: nothing to do and nothing worth listing.
    Done,
}

/// The checks that depend on one contact and wave: account data, outbox, address.
fn check_contact(
    wave: &Wave,
    contact: &Contact,
    account: &Account,
    inputs: &Inputs<'_>,
    settings: &SurveySettings,
) -> Checked {
    let key = format!(
        "{}:{}:{}:{}",
        wave.survey.as_str(),
        wave.label,
        account.id,
        contact.id
    );
    let early_hold = |why: String| Hold {
        survey: wave.survey,
        wave: wave.label.clone(),
        account_id: account.id.to_string(),
        contact_id: Some(contact.id.to_string()),
        recipient: contact.email.as_deref().map(super::mask::email),
        why,
    };
    if let Some(why) = inputs.held.get(&account.id) {
        return Checked::Held(early_hold(format!("the account is held back: {why}")));
    }
    match inputs.history.rows.get(&key) {
        Some(known) if known.state.is_final() || known.state == State::Sending => {
            return Checked::Done;
        }
        Some(known) if known.state == State::FailedTransient => {
            if let Some(at) = known.next_attempt_at.filter(|at| *at > inputs.now) {
                return Checked::Held(early_hold(format!(
                    "a temporary failure; retried from {}",
                    crate::store::timestamp(at)
                )));
            }
        }
        _ => {}
    }
    let recipient = match address(contact, inputs.history) {
        Ok(recipient) => recipient,
        Err(why) => return Checked::Held(early_hold(why)),
    };
    let zone = recipient_zone(
        contact.timezone.as_deref(),
        account.timezone.as_deref(),
        settings.default_timezone,
    );
    let email = email(wave, key, recipient, contact, account, zone, settings);
    Checked::Due(Box::new(email))
}

/// The address to send to, or why there is none.
fn address(contact: &Contact, history: &History) -> Result<String, String> {
    let Some(raw) = contact.email.as_deref().filter(|e| !e.trim().is_empty()) else {
        return Err("the contact has no email address".into());
    };
    let address = normalise_address(raw)?;
    if contact.email_opt_out {
        return Err("the contact opted out of email in the CRM".into());
    }
    if let Some(why) = history.suppressed.get(&address) {
        return Err(format!("the address is suppressed: {why}"));
    }
    Ok(address)
}

fn email(
    wave: &Wave,
    key: String,
    recipient: String,
    contact: &Contact,
    account: &Account,
    zone: Zone,
    settings: &SurveySettings,
) -> Email {
    let person_wave = match wave.survey {
        SurveyKind::Nps => format!("nps:{}:{recipient}", wave.label),
        SurveyKind::Goal => format!("goal:{}:{}:{recipient}", wave.label, account.id),
    };
    let closes_at = day_start(wave.due_on) + settings.grace;
    let mut why = format!(
        "{} wave {}: {}, due {} (until {})",
        survey_name(wave.survey),
        wave.label,
        wave.why,
        wave.due_on,
        closes_at.date_naive()
    );
    if let Some(note) = zone.note {
        why.push_str(&format!("; {note}"));
    }
    Email {
        key,
        person_wave,
        survey: wave.survey,
        wave: wave.label.clone(),
        due_on: wave.due_on,
        closes_at,
        account_id: account.id.to_string(),
        account_name: account.name.clone(),
        contact_id: contact.id.to_string(),
        recipient,
        display_name: contact.name.clone().filter(|n| !n.trim().is_empty()),
        zone: zone.tz.name().to_owned(),
        why,
    }
}

fn masked<S: serde::Serializer>(address: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&super::mask::email(address))
}

pub fn survey_name(survey: SurveyKind) -> &'static str {
    match survey {
        SurveyKind::Goal => "goal survey",
        SurveyKind::Nps => "NPS",
    }
}

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

fn hold(email: &Email, why: String) -> Hold {
    Hold {
        survey: email.survey,
        wave: email.wave.clone(),
        account_id: email.account_id.clone(),
        contact_id: Some(email.contact_id.clone()),
        recipient: Some(super::mask::email(&email.recipient)),
        why,
    }
}

/// One email per person and wave: the smallest contact id wins, and a person-wave the outbox
/// already holds under another contact is not sent again.
fn one_per_person_wave(emails: Vec<Email>, history: &History, plan: &mut Plan) -> Vec<Email> {
    let mut winners: BTreeMap<String, Email> = BTreeMap::new();
    for email in emails {
        if let Some(other) = history
            .person_waves
            .get(&email.person_wave)
            .filter(|k| **k != email.key)
        {
            let why = format!("the same person already has this wave (outbox key {other})");
            plan.held.push(hold(&email, why));
            continue;
        }
        match winners.get(&email.person_wave) {
            Some(winner) if winner.contact_id <= email.contact_id => {
                let why = format!("the same address as contact {}", winner.contact_id);
                plan.held.push(hold(&email, why));
            }
            _ => {
                if let Some(loser) = winners.insert(email.person_wave.clone(), email) {
                    let why = "the same address as a contact with a smaller id".to_owned();
                    plan.held.push(hold(&loser, why));
                }
            }
        }
    }
    winners.into_values().collect()
}

enum Timing {
    Ready,
    Missed(String),
    Hold(String),
}

/// The grace period, the send window and the fatigue gap.
fn timing(email: &Email, inputs: &Inputs<'_>, settings: &SurveySettings) -> Timing {
    let now = inputs.now;
    if now >= email.closes_at {
        return Timing::Missed(format!(
            "missed: due {} and not sent before {} (grace period)",
            email.due_on,
            crate::store::timestamp(email.closes_at)
        ));
    }
    let tz = email.zone.parse().unwrap_or(settings.default_timezone);
    if !settings.send_window.contains(now, tz) {
        let opens = settings
            .send_window
            .next_opening(now, tz)
            .map_or("not within two weeks".to_owned(), |at| {
                format!("opens {}", crate::store::timestamp(at))
            });
        return Timing::Hold(format!("outside the send window in {tz} ({opens})"));
    }
    if let Some(last) = inputs.history.last_sent.get(&email.recipient) {
        let allowed = *last + settings.fatigue;
        if now < allowed {
            return Timing::Hold(format!(
                "fatigue gap: a survey went to this address on {}; next allowed from {}",
                last.date_naive(),
                crate::store::timestamp(allowed)
            ));
        }
    }
    Timing::Ready
}

/// Nobody gets two surveys in one run. Of one person's emails, one that an earlier budget
/// deferred goes first, then the goal survey: it comes twice a year and feeds the health
/// score, while an NPS wave waits out the fatigue gap (and is skipped if that outlasts its
/// grace period). Then the earliest due.
fn one_per_person(mut emails: Vec<Email>, history: &History, plan: &mut Plan) -> Vec<Email> {
    let deferred = |e: &Email| {
        history
            .rows
            .get(&e.key)
            .is_some_and(|known| known.state == State::Deferred)
    };
    emails.sort_by_cached_key(|e| {
        (
            !deferred(e),
            e.survey != SurveyKind::Goal,
            e.due_on,
            e.key.clone(),
        )
    });
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    for email in emails {
        if seen.insert(email.recipient.clone()) {
            kept.push(email);
        } else {
            let why = "fatigue gap: another survey goes to this address in this run".to_owned();
            plan.held.push(hold(&email, why));
        }
    }
    kept
}

/// The emails whose grace period ends soonest go first, up to the caps; the rest are
/// deferred. Soonest-closing first misses the fewest waves when a cap bites: an email with
/// weeks of grace left can wait a day, one that closes tonight cannot. Among those closing
/// together, an email an earlier budget deferred goes before a new one, then the goal survey.
fn budget(mut emails: Vec<Email>, history: &History, settings: &SurveySettings, plan: &mut Plan) {
    emails.sort_by_cached_key(|e| {
        let deferred = history
            .rows
            .get(&e.key)
            .is_some_and(|known| known.state == State::Deferred);
        (
            e.closes_at,
            !deferred,
            e.survey != SurveyKind::Goal,
            e.key.clone(),
        )
    });
    let left_today = settings.max_per_day.saturating_sub(history.sent_today);
    let allowed = settings.max_per_cycle.min(left_today) as usize;
    let mut emails = emails.into_iter();
    plan.send.extend(emails.by_ref().take(allowed));
    plan.deferred.extend(emails);
}

/// When a send that failed for the `attempts`-th time may be tried again: `base`, doubled
/// for each earlier attempt, at most `max`.
pub fn retry_at(
    now: DateTime<Utc>,
    attempts: u32,
    base: TimeDelta,
    max: TimeDelta,
) -> DateTime<Utc> {
    let factor = 1i32 << attempts.saturating_sub(1).min(20);
    now + (base * factor).min(max)
}

#[cfg(test)]
#[path = "cadence_tests.rs"]
mod tests;
