//! Generated activities and survey answers: what happened between the vendor and each account
//! over the two years before the anchor.
//!
//! - The monthly `office_hours` webinar: one row per registered account, `attended` or
//!   `no_show`, with one or two of its people.
//! - Executive calls and meetings, about once a quarter, mostly with the executive sponsor;
//!   mostly `completed`, some `canceled`, `no_show`, `unknown`, a few stale `scheduled`, and
//!   upcoming ones `scheduled` in the month after the anchor.
//! - Check-in calls with champions and admins now and then.
//! - Goal answers on the six-month waves from the contract date, and in-app NPS answers.
//!
//! How often each happens follows the account's profile at the time.

use chrono::{Datelike, Days, Months, NaiveDate};
use serde_json::{Value, json};

use super::accounts::{AccountRec, ContactRec, account_id, contact_id, wants_account};
use super::people::zone;
use super::time::{Clock, business_time, day_of, day_start, iso, office_hours};
use crate::model::{ActivityType, Outcome, Persona, SurveyKind};
use crate::sandbox::book::{Filter, SortKey, Sorted};
use crate::sandbox::hash::Draws;

/// How far back activities and answers go.
const HISTORY_DAYS: u64 = 730;
/// How far ahead upcoming calls are already scheduled.
const SCHEDULED_AHEAD_DAYS: i64 = 30;

/// One generated activity.
#[derive(Clone, Debug)]
pub struct ActivityRec {
    pub account: u32,
    pub seq: u16,
    pub kind: ActivityType,
    pub outcome: Outcome,
    /// Contact numbers within the account; 0 is no one.
    pub contacts: [u8; 2],
    pub occurred: i64,
    pub updated: i64,
}

/// One generated survey answer.
#[derive(Clone, Debug)]
pub struct ResponseRec {
    pub account: u32,
    pub seq: u16,
    pub survey: SurveyKind,
    /// Contact number within the account; 0 is no one.
    pub contact: u8,
    pub score: Option<u8>,
    pub goal: Option<bool>,
    pub comment: Option<u8>,
    pub submitted: i64,
}

const COMMENTS: [&str; 8] = [
    "Setup took longer than planned.",
    "The reports save us hours every week.",
    "We would like more integrations.",
    "Support answered quickly.",
    "Hard to get the whole team on board.",
    "Alerts are noisy for us.",
    "Exactly what we needed.",
    "Pricing is a concern for next year.",
];

/// The days an account's history covers: from its start (or two years back) to its end.
struct Span {
    first: NaiveDate,
    end: NaiveDate,
}

impl Span {
    fn of(clock: &Clock, account: &AccountRec) -> Self {
        let horizon = clock.anchor - Days::new(HISTORY_DAYS);
        Self {
            first: account.start.max(horizon),
            end: account.end(clock.anchor),
        }
    }

    fn contains(&self, second: i64) -> bool {
        second >= day_start(self.first) && second < day_start(self.end)
    }
}

/// The live contacts of an account that match, by number.
fn numbers(people: &[ContactRec], wanted: impl Fn(&ContactRec) -> bool) -> Vec<u8> {
    people
        .iter()
        .filter(|c| c.is_live() && wanted(c))
        .map(|c| c.n)
        .collect()
}

/// Draws every activity of one account, numbered in the order they occurred.
pub fn activities(clock: &Clock, account: &AccountRec, people: &[ContactRec]) -> Vec<ActivityRec> {
    let mut draws = Draws::new(&[clock.seed, 0xAC, u64::from(account.index)]);
    let span = Span::of(clock, account);
    let mut found = webinars(clock, account, people, &span, &mut draws);
    found.extend(calls(clock, account, people, &span, &mut draws));

    found.sort_by_key(|activity| activity.occurred);
    found.truncate(999);
    for (seq, activity) in found.iter_mut().enumerate() {
        activity.seq = seq as u16 + 1;
        activity.account = account.index;
    }
    found
}

fn webinars(
    clock: &Clock,
    account: &AccountRec,
    people: &[ContactRec],
    span: &Span,
    draws: &mut Draws,
) -> Vec<ActivityRec> {
    let attendees = numbers(people, |c| c.persona != Some(Persona::ExecutiveSponsor));
    let mut month = span.first.with_day(1).unwrap_or(span.first);
    let mut found = Vec::new();
    while month < span.end {
        let session = office_hours(month.year(), month.month()).filter(|at| span.contains(*at));
        month = month + Months::new(1);
        let Some(occurred) = session else { continue };
        let factor = account.profile.factor(clock.days_ago(day_of(occurred)));
        if !draws.chance(0.5 * factor) {
            continue;
        }
        let outcome = if draws.chance(0.75) {
            Outcome::Attended
        } else {
            Outcome::NoShow
        };
        found.push(ActivityRec {
            account: account.index,
            seq: 0,
            kind: ActivityType::Webinar,
            outcome,
            contacts: two_of(draws, &attendees),
            occurred,
            updated: (occurred + 3600).min(clock.now() - 1),
        });
    }
    found
}

fn two_of(draws: &mut Draws, numbers: &[u8]) -> [u8; 2] {
    if numbers.is_empty() {
        return [0, 0];
    }
    let first = *draws.pick(numbers);
    let second = *draws.pick(numbers);
    let second = if second != first && draws.chance(0.4) {
        second
    } else {
        0
    };
    [first, second]
}

/// Executive calls about once a quarter, check-in calls now and then.
fn calls(
    clock: &Clock,
    account: &AccountRec,
    people: &[ContactRec],
    span: &Span,
    draws: &mut Draws,
) -> Vec<ActivityRec> {
    let sponsors = numbers(people, |c| c.persona == Some(Persona::ExecutiveSponsor));
    let others = numbers(people, |c| {
        matches!(c.persona, Some(Persona::Champion | Persona::Admin))
    });
    let zone = account.zone.and_then(zone);
    let mut found = Vec::new();
    let mut quarter = span.first;
    let last = span.end + Days::new(SCHEDULED_AHEAD_DAYS as u64);
    while quarter < last {
        let day = quarter + Days::new(draws.between(0, 91));
        quarter = quarter + Days::new(91);
        let factor = account.profile.factor(clock.days_ago(day));
        let executive = draws.chance(0.8 * factor);
        let check_in = draws.chance(0.35 * factor);
        let occurred = business_time(draws, day, zone);
        if executive {
            let with_sponsor = !sponsors.is_empty() && draws.chance(0.85);
            let pool = if with_sponsor { &sponsors } else { &others };
            let contact = pick(draws, pool);
            found.extend(call(clock, span, draws, occurred, [contact, 0]));
        }
        if check_in {
            let later = occurred + draws.between(7, 40) as i64 * 86_400;
            let contact = pick(draws, &others);
            found.extend(call(clock, span, draws, later, [contact, 0]));
        }
    }
    found
}

fn pick(draws: &mut Draws, numbers: &[u8]) -> u8 {
    if numbers.is_empty() {
        0
    } else {
        *draws.pick(numbers)
    }
}

/// One call or meeting at `occurred`: past ones get an outcome, upcoming ones are scheduled.
fn call(
    clock: &Clock,
    span: &Span,
    draws: &mut Draws,
    occurred: i64,
    contacts: [u8; 2],
) -> Option<ActivityRec> {
    let kind = if draws.chance(0.4) {
        ActivityType::Meeting
    } else {
        ActivityType::Call
    };
    let upcoming = occurred >= clock.now();
    let (outcome, updated) = if upcoming {
        let booked = clock.now() - draws.between(3600, 10 * 86_400) as i64;
        (Outcome::Scheduled, booked)
    } else {
        let outcomes = [
            Outcome::Completed,
            Outcome::Canceled,
            Outcome::NoShow,
            Outcome::Unknown,
            Outcome::Scheduled,
        ];
        let outcome = outcomes[draws.weighted(&[82, 7, 5, 3, 3])];
        let logged = occurred + draws.between(1800, 30 * 3600) as i64;
        (outcome, logged.min(clock.now() - 1))
    };

    let ahead = SCHEDULED_AHEAD_DAYS * 86_400;
    let in_span = span.contains(occurred)
        || (upcoming && span.end == clock.anchor && occurred < clock.now() + ahead);
    in_span.then_some(ActivityRec {
        account: 0,
        seq: 0,
        kind,
        outcome,
        contacts,
        occurred,
        updated,
    })
}

/// The activities in `(updated_at, id)` order.
pub struct ActivityList {
    pub recs: Vec<ActivityRec>,
}

impl ActivityList {
    pub fn new(mut recs: Vec<ActivityRec>) -> Self {
        recs.sort_by_key(|activity| (activity.updated, activity.account, activity.seq));
        Self { recs }
    }
}

fn activity_id(account: u32, seq: u16) -> String {
    format!("AC-{:06}-{seq:03}", u64::from(account) + 1)
}

impl Sorted for ActivityList {
    fn len(&self) -> usize {
        self.recs.len()
    }

    fn key(&self, index: usize) -> SortKey {
        let activity = &self.recs[index];
        SortKey::at_second(
            activity.updated,
            activity_id(activity.account, activity.seq),
        )
    }

    fn row(&self, index: usize) -> Option<Value> {
        let activity = &self.recs[index];
        let contact_ids: Vec<String> = activity
            .contacts
            .iter()
            .filter(|n| **n > 0)
            .map(|n| contact_id(activity.account, *n))
            .collect();
        let series = (activity.kind == ActivityType::Webinar).then_some("office_hours");
        Some(json!({
            "id": activity_id(activity.account, activity.seq),
            "account_id": account_id(activity.account),
            "type": activity.kind.as_str(),
            "series": series,
            "occurred_at": iso(activity.occurred),
            "outcome": activity.outcome.as_str(),
            "contact_ids": contact_ids,
            "updated_at": iso(activity.updated),
        }))
    }

    fn passes(&self, index: usize, filter: &Filter) -> bool {
        let activity = &self.recs[index];
        let window = filter.window.as_ref();
        wants_account(filter, activity.account)
            && filter.wants_type(activity.kind.as_str())
            && window.is_none_or(|window| window.contains_second(activity.occurred))
    }
}

/// Draws the survey answers of one account: goal answers on its six-month waves and in-app
/// NPS answers from its people.
pub fn responses(clock: &Clock, account: &AccountRec, people: &[ContactRec]) -> Vec<ResponseRec> {
    let mut draws = Draws::new(&[clock.seed, 0x5E, u64::from(account.index)]);
    let span = Span::of(clock, account);
    let mut found = goal_answers(clock, account, people, &span, &mut draws);
    found.extend(nps_answers(clock, account, people, &span, &mut draws));

    found.sort_by_key(|response| response.submitted);
    found.truncate(999);
    for (seq, response) in found.iter_mut().enumerate() {
        response.seq = seq as u16 + 1;
    }
    found
}

fn goal_answers(
    clock: &Clock,
    account: &AccountRec,
    people: &[ContactRec],
    span: &Span,
    draws: &mut Draws,
) -> Vec<ResponseRec> {
    let sponsor = numbers(people, |c| c.persona == Some(Persona::ExecutiveSponsor));
    let respondent = sponsor
        .first()
        .copied()
        .or_else(|| numbers(people, |_| true).first().copied())
        .unwrap_or(0);
    let mut found = Vec::new();
    for wave in (1..).map_while(|k| account.start.checked_add_months(Months::new(6 * k))) {
        if wave >= span.end {
            break;
        }
        let factor = account.profile.factor(clock.days_ago(wave));
        let answers = draws.chance(0.55 * factor.max(0.3));
        let submitted = day_start(wave) + draws.between(86_400, 13 * 86_400) as i64;
        if !answers || !span.contains(submitted) {
            continue;
        }
        let achieved = draws.chance(0.15 + 0.7 * factor);
        found.push(ResponseRec {
            account: account.index,
            seq: 0,
            survey: SurveyKind::Goal,
            contact: respondent,
            score: None,
            goal: (!draws.chance(0.03)).then_some(achieved),
            comment: draws.chance(0.15).then(|| draws.between(0, 8) as u8),
            submitted,
        });
    }
    found
}

fn nps_answers(
    clock: &Clock,
    account: &AccountRec,
    people: &[ContactRec],
    span: &Span,
    draws: &mut Draws,
) -> Vec<ResponseRec> {
    let mut found = Vec::new();
    let respondents = numbers(people, ContactRec::has_email);
    let mut quarter = span.first;
    while quarter < span.end {
        let factor = account.profile.factor(clock.days_ago(quarter));
        for contact in &respondents {
            let submitted = day_start(quarter) + draws.between(0, 91 * 86_400) as i64;
            if !draws.chance(0.07 * (0.5 + 0.5 * factor)) || !span.contains(submitted) {
                continue;
            }
            found.push(ResponseRec {
                account: account.index,
                seq: 0,
                survey: SurveyKind::Nps,
                contact: *contact,
                score: Some(nps_score(draws, factor)),
                goal: None,
                comment: draws.chance(0.2).then(|| draws.between(0, 8) as u8),
                submitted,
            });
        }
        quarter = quarter + Days::new(91);
    }
    found
}

/// Engaged accounts lean to promoters, disengaged ones to detractors.
fn nps_score(draws: &mut Draws, factor: f64) -> u8 {
    let weights = if factor > 0.8 {
        [1, 1, 1, 1, 2, 3, 5, 8, 15, 25, 30]
    } else if factor > 0.3 {
        [3, 3, 4, 5, 6, 8, 10, 12, 10, 6, 4]
    } else {
        [8, 8, 9, 10, 10, 12, 10, 8, 5, 3, 2]
    };
    draws.weighted(&weights) as u8
}

/// The survey answers in `(submitted_at, id)` order.
pub struct ResponseList {
    pub recs: Vec<ResponseRec>,
}

impl ResponseList {
    pub fn new(mut recs: Vec<ResponseRec>) -> Self {
        recs.sort_by_key(|response| (response.submitted, response.account, response.seq));
        Self { recs }
    }
}

fn response_id(account: u32, seq: u16) -> String {
    format!("SR-{:06}-{seq:03}", u64::from(account) + 1)
}

impl Sorted for ResponseList {
    fn len(&self) -> usize {
        self.recs.len()
    }

    fn key(&self, index: usize) -> SortKey {
        let response = &self.recs[index];
        SortKey::at_second(
            response.submitted,
            response_id(response.account, response.seq),
        )
    }

    fn row(&self, index: usize) -> Option<Value> {
        let response = &self.recs[index];
        let contact =
            (response.contact > 0).then(|| contact_id(response.account, response.contact));
        let comment = response
            .comment
            .and_then(|n| COMMENTS.get(usize::from(n)).copied());
        Some(json!({
            "id": response_id(response.account, response.seq),
            "account_id": account_id(response.account),
            "contact_id": contact,
            "survey": response.survey.as_str(),
            "submitted_at": iso(response.submitted),
            "score": response.score,
            "goal_achieved": response.goal,
            "comment": comment,
        }))
    }

    fn passes(&self, index: usize, filter: &Filter) -> bool {
        let response = &self.recs[index];
        let window = filter.window.as_ref();
        wants_account(filter, response.account)
            && window.is_none_or(|window| window.contains_second(response.submitted))
    }
}
