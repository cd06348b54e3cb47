//! The cadence's contracts: waves from the OCD (month ends, leap days, never chained), the
//! grace edge, the fatigue gap, the NPS spread, one survey per person.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use proptest::prelude::*;

use super::*;
use crate::model::{Account, AccountId, Contact, ContactId, Persona};
use crate::settings::Settings;

fn day(text: &str) -> NaiveDate {
    text.parse().expect("a date")
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an instant")
}

/// Default settings with a send window that is always open, so timing tests test timing.
fn settings() -> SurveySettings {
    let env = [
        ("TOUCHPOINT__SURVEYS__SEND_WINDOW__START", "00:00"),
        ("TOUCHPOINT__SURVEYS__SEND_WINDOW__END", "24:00"),
        (
            "TOUCHPOINT__SURVEYS__SEND_WINDOW__DAYS",
            "mon,tue,wed,thu,fri,sat,sun",
        ),
    ];
    let env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::load_from(None, Some(env))
        .expect("valid settings")
        .surveys
}

fn account(id: &str, ocd: &str) -> Account {
    Account {
        id: AccountId::parse(id).expect("id"),
        name: format!("{id} Inc"),
        domain: None,
        owner_id: None,
        basic_setup_done: Some(true),
        contract_start_date: Some(day(ocd)),
        timezone: Some("Europe/Berlin".into()),
        archived: false,
        updated_at: at("2024-01-01T00:00:00Z"),
    }
}

fn contact(id: &str, account: &str, email: &str, persona: Persona) -> Contact {
    Contact {
        id: ContactId::parse(id).expect("id"),
        account_id: AccountId::parse(account).expect("id"),
        email: Some(email.to_owned()),
        name: Some("Zoë Ångström-Núñez".into()),
        persona: Some(persona),
        timezone: None,
        email_opt_out: false,
        merged_into: None,
        archived: false,
        updated_at: at("2024-01-01T00:00:00Z"),
    }
}

struct World {
    accounts: BTreeMap<AccountId, Account>,
    contacts: Vec<Contact>,
    held: BTreeMap<AccountId, String>,
    history: History,
}

impl World {
    fn new(accounts: Vec<Account>, contacts: Vec<Contact>) -> World {
        World {
            accounts: accounts.into_iter().map(|a| (a.id.clone(), a)).collect(),
            contacts,
            held: BTreeMap::new(),
            history: History::default(),
        }
    }

    fn plan(&self, now: &str, settings: &SurveySettings) -> Plan {
        let inputs = Inputs {
            accounts: &self.accounts,
            contacts: &self.contacts,
            held: &self.held,
            history: &self.history,
            now: at(now),
        };
        plan(&inputs, settings)
    }
}

fn goal_keys(plan: &Plan) -> Vec<String> {
    plan.send
        .iter()
        .filter(|e| e.survey == SurveyKind::Goal)
        .map(|e| e.key.clone())
        .collect()
}

#[test]
fn goal_waves_clamp_month_ends_and_are_never_chained() {
    let ocd = day("2024-08-31");
    let waves: Vec<NaiveDate> = (1..=4).filter_map(|k| goal_wave_day(ocd, k)).collect();
    assert_eq!(
        waves,
        [
            day("2025-02-28"),
            day("2025-08-31"),
            day("2026-02-28"),
            day("2026-08-31")
        ]
    );
    // Chaining would have drifted to the 28th after the first February.
    let chained = day("2025-02-28")
        .checked_add_months(Months::new(6))
        .expect("a day");
    assert_ne!(chained, waves[1]);
}

#[test]
fn a_leap_day_contract_is_surveyed_on_the_last_day_of_february_and_on_29_august() {
    let ocd = day("2024-02-29");
    let waves: Vec<NaiveDate> = (1..=6).filter_map(|k| goal_wave_day(ocd, k)).collect();
    assert_eq!(
        waves,
        [
            day("2024-08-29"),
            day("2025-02-28"),
            day("2025-08-29"),
            day("2026-02-28"),
            day("2026-08-29"),
            day("2027-02-28"),
        ]
    );
    assert_eq!(goal_wave_day(ocd, 8), Some(day("2028-02-29")));
}

#[test]
fn the_latest_goal_wave_is_found_from_the_ocd() {
    let ocd = day("2024-08-31");
    assert_eq!(
        latest_goal_wave(ocd, day("2025-02-27")).map(|w| w.label),
        None
    );
    let wave = latest_goal_wave(ocd, day("2025-02-28")).expect("due");
    assert_eq!(
        (wave.label.as_str(), wave.due_on),
        ("6m", day("2025-02-28"))
    );
    let wave = latest_goal_wave(ocd, day("2025-08-30")).expect("due");
    assert_eq!(
        (wave.label.as_str(), wave.due_on),
        ("6m", day("2025-02-28"))
    );
    let wave = latest_goal_wave(ocd, day("2025-08-31")).expect("due");
    assert_eq!(wave.label, "12m");
    assert_eq!(latest_goal_wave(ocd, day("2024-01-01")), None);
}

#[test]
fn the_grace_period_is_half_open() {
    let mut world = World::new(
        vec![account("A-1", "2024-08-31")],
        vec![contact(
            "C-1",
            "A-1",
            "zoe@example.com",
            Persona::ExecutiveSponsor,
        )],
    );
    world.history.surveys_since = Some(at("2025-01-01T00:00:00Z"));
    let s = settings();
    // Due 2025-02-28 with 14 days' grace: from then until just before 2025-03-14.
    assert!(goal_keys(&world.plan("2025-02-27T23:59:59Z", &s)).is_empty());
    assert_eq!(goal_keys(&world.plan("2025-02-28T00:00:00Z", &s)).len(), 1);
    assert_eq!(goal_keys(&world.plan("2025-03-13T23:59:59Z", &s)).len(), 1);
    let late = world.plan("2025-03-14T00:00:00Z", &s);
    assert!(goal_keys(&late).is_empty());
    let skipped: Vec<&str> = late.skipped.iter().map(|(e, _)| e.wave.as_str()).collect();
    assert!(skipped.contains(&"6m"), "{:?}", late.skipped);
}

#[test]
fn a_wave_that_closed_before_surveying_began_is_not_missed() {
    let mut world = World::new(
        vec![account("A-1", "2024-08-31")],
        vec![contact(
            "C-1",
            "A-1",
            "zoe@example.com",
            Persona::ExecutiveSponsor,
        )],
    );
    let s = settings();
    // The 6m wave (due 2025-02-28) closed on 2025-03-14, before the first survey run.
    let first_run = world.plan("2025-04-01T10:00:00Z", &s);
    assert!(first_run.skipped.is_empty(), "{:?}", first_run.skipped);
    assert!(first_run.before_start >= 1, "counted, not recorded");

    // Surveying began on 2025-03-10, before it closed: touchpoint missed it.
    world.history.surveys_since = Some(at("2025-03-10T00:00:00Z"));
    let later = world.plan("2025-04-01T10:00:00Z", &s);
    let skipped: Vec<&str> = later.skipped.iter().map(|(e, _)| e.wave.as_str()).collect();
    assert_eq!(skipped, ["6m"]);
}

#[test]
fn emails_deferred_by_an_earlier_budget_go_first() {
    // Three goal waves due on 2025-03-25 (six months after 25 September), one email a cycle.
    let ids = ["A-1", "A-2", "A-3"];
    let accounts = ids.iter().map(|id| account(id, "2024-09-25")).collect();
    let contacts = ids
        .iter()
        .map(|id| {
            let address = format!("sponsor@{}.example.com", id.to_lowercase());
            contact(&format!("C{id}"), id, &address, Persona::ExecutiveSponsor)
        })
        .collect();
    let mut world = World::new(accounts, contacts);
    let mut s = settings();
    s.max_per_cycle = 1;
    let now = "2025-03-31T10:00:00Z";
    let first = world.plan(now, &s);
    assert_eq!(first.send.len(), 1, "{first:?}");
    let last = first.deferred.last().expect("over the budget").key.clone();
    let deferred = Known {
        state: State::Deferred,
        next_attempt_at: None,
    };
    world.history.rows.insert(last.clone(), deferred);

    let second = world.plan(now, &s);

    assert_eq!(second.send[0].key, last, "the deferred email goes first");
}

#[test]
fn under_a_budget_the_email_that_closes_soonest_goes_first() {
    // A goal wave due 2025-03-30 (open until 13 April) and an NPS wave of another person due
    // between 18 and 29 March (open until early April), one email a cycle, on 31 March.
    let nps_contact = (0..)
        .map(|n| format!("C-{n}"))
        .find(|id| {
            let day = nps_day_of_quarter(&ContactId::parse(id).expect("id"));
            (76..=87).contains(&day)
        })
        .expect("some contact id falls on those days");
    let world = World::new(
        vec![account("A-1", "2024-09-30"), account("A-2", "2020-01-15")],
        vec![
            contact(
                "C-goal",
                "A-1",
                "sponsor@a1.example.com",
                Persona::ExecutiveSponsor,
            ),
            contact(
                &nps_contact,
                "A-2",
                "champion@a2.example.com",
                Persona::Champion,
            ),
        ],
    );
    let mut s = settings();
    s.max_per_cycle = 1;

    let plan = world.plan("2025-03-31T10:00:00Z", &s);

    assert_eq!(plan.send.len(), 1, "{plan:?}");
    assert_eq!(plan.send[0].survey, SurveyKind::Nps, "{plan:?}");
    assert!(
        plan.deferred.iter().any(|e| e.survey == SurveyKind::Goal),
        "the goal survey, open for two more weeks, waits: {plan:?}"
    );
}

#[test]
fn a_sent_or_skipped_wave_is_never_planned_again() {
    let mut world = World::new(
        vec![account("A-1", "2024-08-31")],
        vec![contact(
            "C-1",
            "A-1",
            "zoe@example.com",
            Persona::ExecutiveSponsor,
        )],
    );
    let s = settings();
    let first = world.plan("2025-03-01T10:00:00Z", &s);
    for email in &first.send {
        let known = Known {
            state: State::Sent,
            next_attempt_at: None,
        };
        world.history.rows.insert(email.key.clone(), known);
    }
    let again = world.plan("2025-03-01T10:00:00Z", &s);
    assert!(again.send.is_empty() && again.held.is_empty(), "{again:?}");
}

#[test]
fn the_fatigue_gap_spans_both_surveys() {
    let mut world = World::new(
        vec![account("A-1", "2024-08-31")],
        vec![contact(
            "C-1",
            "A-1",
            "Zoe@Example.com ",
            Persona::ExecutiveSponsor,
        )],
    );
    let s = settings();
    world
        .history
        .last_sent
        .insert("zoe@example.com".into(), at("2025-02-20T10:00:00Z"));
    let plan = world.plan("2025-03-01T10:00:00Z", &s);
    assert!(plan.send.is_empty(), "{:?}", plan.send);
    assert!(plan.held.iter().any(|h| h.why.starts_with("fatigue gap")));
    let plan = world.plan("2025-03-06T10:00:00Z", &s);
    assert_eq!(
        goal_keys(&plan).len(),
        1,
        "14 days later the goal survey may go"
    );
}

#[test]
fn nobody_gets_two_surveys_in_one_run() {
    let mut c = contact("C-1", "A-1", "zoe@example.com", Persona::ExecutiveSponsor);
    // Pick a contact whose NPS day (from 15 February) is open on 1 March with the goal wave.
    for n in 0.. {
        c.id = ContactId::parse(&format!("C-{n}")).expect("id");
        if (46..=58).contains(&nps_day_of_quarter(&c.id)) {
            break;
        }
    }
    let world = World::new(vec![account("A-1", "2024-08-31")], vec![c]);
    let plan = world.plan("2025-03-01T10:00:00Z", &settings());
    assert_eq!(plan.send.len(), 1, "{:?}", plan.send);
    assert!(plan.held.iter().any(|h| h.why.contains("in this run")));
}

#[test]
fn one_person_on_two_contacts_gets_one_nps_per_quarter() {
    let mut world = World::new(
        vec![account("A-1", "2023-01-10"), account("A-2", "2023-01-10")],
        vec![
            contact("C-1", "A-1", "pat@example.com", Persona::Champion),
            contact("C-2", "A-2", " PAT@example.com", Persona::Champion),
            contact("C-3", "A-1", "pat@example.com", Persona::EndUser),
        ],
    );
    let s = settings();
    let mut sent = Vec::new();
    // A daily run through the quarter, remembering what went out as the outbox would.
    for day in 0..91 {
        let now = at("2025-04-01T10:00:00Z") + TimeDelta::days(day);
        let plan = world.plan(&now.to_rfc3339(), &s);
        for email in plan.send {
            let known = Known {
                state: State::Sent,
                next_attempt_at: None,
            };
            world.history.rows.insert(email.key.clone(), known);
            world
                .history
                .person_waves
                .insert(email.person_wave.clone(), email.key.clone());
            world.history.last_sent.insert(email.recipient.clone(), now);
            sent.push(email);
        }
    }
    let q2: Vec<&Email> = sent.iter().filter(|e| e.wave == "2025-Q2").collect();
    assert_eq!(q2.len(), 1, "the three contacts are one person: {sent:?}");
}

#[test]
fn the_outbox_keeps_a_person_wave_taken_by_another_contact() {
    let mut world = World::new(
        vec![account("A-1", "2023-01-10")],
        vec![contact("C-2", "A-1", "pat@example.com", Persona::Champion)],
    );
    let wave =
        latest_nps_wave(&ContactId::parse("C-2").expect("id"), day("2025-06-30")).expect("a wave");
    world.history.person_waves.insert(
        format!("nps:{}:pat@example.com", wave.label),
        "nps:x:A-9:C-1".into(),
    );
    let plan = world.plan("2025-06-30T10:00:00Z", &settings());
    assert!(plan.send.is_empty());
}

#[test]
fn suppressed_opted_out_invalid_and_missing_addresses_are_held_with_reasons() {
    let mut opted = contact("C-2", "A-1", "b@example.com", Persona::ExecutiveSponsor);
    opted.email_opt_out = true;
    let mut missing = contact("C-4", "A-1", "", Persona::ExecutiveSponsor);
    missing.email = None;
    let mut world = World::new(
        vec![account("A-1", "2024-08-31")],
        vec![
            contact("C-1", "A-1", "a@example.com", Persona::ExecutiveSponsor),
            opted,
            contact("C-3", "A-1", "c.example.com", Persona::ExecutiveSponsor),
            missing,
        ],
    );
    world
        .history
        .suppressed
        .insert("a@example.com".into(), "unsubscribed".into());
    let plan = world.plan("2025-03-01T10:00:00Z", &settings());
    assert!(goal_keys(&plan).is_empty());
    let why = |contact: &str| -> Vec<String> {
        plan.held
            .iter()
            .filter(|h| h.contact_id.as_deref() == Some(contact))
            .map(|h| h.why.clone())
            .collect()
    };
    assert!(
        why("C-1")
            .iter()
            .any(|w| w.contains("suppressed: unsubscribed"))
    );
    assert!(why("C-2").iter().any(|w| w.contains("opted out")));
    assert!(why("C-3").iter().any(|w| w.contains("not valid")));
    assert!(why("C-4").iter().any(|w| w.contains("no email address")));
}

#[test]
fn archived_and_merged_contacts_and_archived_accounts_get_nothing() {
    let mut gone = account("A-2", "2024-08-31");
    gone.archived = true;
    let mut archived = contact("C-1", "A-1", "a@example.com", Persona::ExecutiveSponsor);
    archived.archived = true;
    let mut merged = contact("C-2", "A-1", "b@example.com", Persona::ExecutiveSponsor);
    merged.merged_into = Some(ContactId::parse("C-9").expect("id"));
    let world = World::new(
        vec![account("A-1", "2024-08-31"), gone],
        vec![
            archived,
            merged,
            contact("C-3", "A-2", "c@example.com", Persona::ExecutiveSponsor),
        ],
    );
    let plan = world.plan("2025-03-01T10:00:00Z", &settings());
    assert!(plan.send.is_empty() && plan.deferred.is_empty() && plan.skipped.is_empty());
    let reasons: Vec<&str> = plan.held.iter().map(|h| h.why.as_str()).collect();
    assert_eq!(
        reasons,
        ["the account has no live contact of a goal persona (executive_sponsor)"]
    );
}

#[test]
fn budgets_defer_instead_of_dropping() {
    let contacts: Vec<Contact> = (0..5)
        .map(|n| {
            let email = format!("p{n}@example.com");
            contact(&format!("C-{n}"), "A-1", &email, Persona::ExecutiveSponsor)
        })
        .collect();
    let mut world = World::new(vec![account("A-1", "2024-08-31")], contacts);
    let mut s = settings();
    s.max_per_cycle = 2;
    s.max_per_day = 3;
    let plan = world.plan("2025-03-01T10:00:00Z", &s);
    assert_eq!((plan.send.len(), plan.deferred.len()), (2, 3));
    world.history.sent_today = 2;
    let plan = world.plan("2025-03-01T10:00:00Z", &s);
    assert_eq!((plan.send.len(), plan.deferred.len()), (1, 4));
}

#[test]
fn a_run_outside_business_hours_holds_with_the_next_opening() {
    let world = World::new(
        vec![account("A-1", "2024-08-31")],
        vec![contact(
            "C-1",
            "A-1",
            "zoe@example.com",
            Persona::ExecutiveSponsor,
        )],
    );
    let defaults = Settings::load_from(None, None).expect("defaults").surveys;
    // Saturday 1 March 2025 in Berlin: closed until Monday 09:00 CET.
    let plan = world.plan("2025-03-01T10:00:00Z", &defaults);
    assert!(plan.send.is_empty());
    assert!(
        plan.held
            .iter()
            .any(|h| h.why.contains("Europe/Berlin") && h.why.contains("2025-03-03T08:00:00Z")),
        "{:?}",
        plan.held
    );
}

#[test]
fn a_retry_waits_for_its_time() {
    let mut world = World::new(
        vec![account("A-1", "2024-08-31")],
        vec![contact(
            "C-1",
            "A-1",
            "zoe@example.com",
            Persona::ExecutiveSponsor,
        )],
    );
    let key = "goal:6m:A-1:C-1".to_owned();
    world.history.rows.insert(
        key.clone(),
        Known {
            state: State::FailedTransient,
            next_attempt_at: Some(at("2025-03-01T12:00:00Z")),
        },
    );
    let s = settings();
    assert!(goal_keys(&world.plan("2025-03-01T11:00:00Z", &s)).is_empty());
    assert_eq!(goal_keys(&world.plan("2025-03-01T12:00:00Z", &s)), [key]);
    assert_eq!(
        retry_at(
            at("2025-03-01T00:00:00Z"),
            3,
            TimeDelta::minutes(15),
            TimeDelta::hours(12)
        ),
        at("2025-03-01T01:00:00Z")
    );
}

proptest! {
    #[test]
    fn goal_waves_are_computed_from_the_ocd_and_stay_on_or_before_its_day(
        days in 0i64..20_000,
        k in 1u32..40,
    ) {
        let ocd = day("1990-01-01") + TimeDelta::days(days);
        let due = goal_wave_day(ocd, k).expect("in range");
        let months = (due.year() - ocd.year()) * 12 + due.month() as i32 - ocd.month() as i32;
        prop_assert_eq!(months, 6 * k as i32);
        prop_assert!(due.day() <= ocd.day());
        if due.day() < ocd.day() {
            // Clamped: it is the last day of its month.
            prop_assert_eq!(due.succ_opt().map(|d| d.day()), Some(1));
        }
        let latest = latest_goal_wave(ocd, due).expect("due that day");
        prop_assert_eq!(latest.due_on, due);
    }

    #[test]
    fn nps_days_are_stable_spread_and_due_once_per_quarter(n in 0u32..100_000, days in 0i64..3650) {
        let contact = ContactId::parse(&format!("C-{n}")).expect("id");
        let offset = nps_day_of_quarter(&contact);
        prop_assert!(offset < 90);
        prop_assert_eq!(offset, nps_day_of_quarter(&contact));
        let today = day("2020-01-01") + TimeDelta::days(days);
        let wave = latest_nps_wave(&contact, today).expect("a wave");
        prop_assert!(wave.due_on <= today);
        prop_assert!(today - wave.due_on < TimeDelta::days(93));
    }
}

#[test]
fn first_nps_waves_spread_over_the_quarter() {
    let mut per_month = [0u32; 3];
    for n in 0..3000 {
        let contact = ContactId::parse(&format!("C-{n:06}-1")).expect("id");
        per_month[(nps_day_of_quarter(&contact) / 30) as usize] += 1;
    }
    assert!(
        per_month.iter().all(|m| (800..1200).contains(m)),
        "{per_month:?}"
    );
}
