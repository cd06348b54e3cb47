//! The rules' contracts: due dates in business days in the owner's zone, task keys the CRM
//! accepts, and task bodies that say why.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::*;
use crate::settings::Settings;

fn day(text: &str) -> NaiveDate {
    text.parse().expect("a date")
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an instant")
}

fn settings() -> TaskSettings {
    Settings::load_from(None, Some(HashMap::new()))
        .expect("the defaults are valid")
        .tasks
}

fn owner(id: &str, zone: &str) -> Owner {
    Owner {
        id: OwnerId::parse(id).expect("an id"),
        email: None,
        name: None,
        timezone: Some(zone.to_owned()),
        active: true,
    }
}

fn detractor(account: &str, owner: &str, response_id: &str) -> Trigger {
    Trigger {
        account_id: AccountId::parse(account).expect("an id"),
        account_name: "Kalo Labs".to_owned(),
        owner_id: Some(OwnerId::parse(owner).expect("an id")),
        reason: Reason::Detractor,
        id: format!("answer:{response_id}"),
        evidence: Evidence::Answer {
            response_id: response_id.to_owned(),
            contact_id: Some("P-1".to_owned()),
            score: 3,
            comment: None,
            submitted_at: at("2025-05-28T10:00:00Z"),
        },
    }
}

fn red(moved: Option<Vec<MeasureMove>>) -> Trigger {
    Trigger {
        reason: Reason::TurnedRed,
        id: "red:A-1:2025-06-02".to_owned(),
        evidence: Evidence::Red {
            red_since: day("2025-06-02"),
            score: Some(25),
            previous: Some("63 yellow".to_owned()),
            reasons: vec![
                "deployment green: the basic set-up is done".to_owned(),
                "engagement red: no completed call with a key persona in 90 days".to_owned(),
                "adoption red: 1 of 5 key features adopted (3 needed)".to_owned(),
                "roi na: not asked in the last 365 days".to_owned(),
            ],
            moved,
        },
        ..detractor("A-1", "O-1", "R-1")
    }
}

fn moved(measure: &str, before: &str, now: &str, reason: &str) -> MeasureMove {
    MeasureMove {
        measure: measure.to_owned(),
        before: before.to_owned(),
        now: now.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Decides `trigger` with no ledger history, at `now`, for the owners given.
fn draft_at(trigger: &Trigger, owners: &[Owner], now: &str) -> TaskDraft {
    let settings = settings();
    let owners: HashMap<OwnerId, Owner> =
        owners.iter().map(|o| (o.id.clone(), o.clone())).collect();
    let context = Context {
        settings: &settings,
        owners: &owners,
        now: at(now),
        breaker_tripped: false,
    };
    match decide(trigger, &History::default(), &context) {
        Decision::Open(draft) => draft,
        other => panic!("expected a task, got {other:?}"),
    }
}

#[test]
fn business_days_skip_the_weekend() {
    let friday = day("2025-05-30");
    assert_eq!(add_business_days(friday, 2), day("2025-06-03"), "Tuesday");
    assert_eq!(add_business_days(day("2025-05-31"), 2), day("2025-06-03"));
    assert_eq!(add_business_days(day("2025-05-28"), 2), day("2025-05-30"));
    assert_eq!(add_business_days(friday, 0), friday);
    assert_eq!(add_business_days(friday, 5), day("2025-06-06"));
}

#[test]
fn a_detractor_task_is_due_two_business_days_after_the_owners_local_day() {
    assert_eq!(settings().detractor.due_business_days, 2);
    // Thursday 29 May, 23:30 UTC: already Friday in Berlin, still Thursday in New York.
    let now = "2025-05-29T23:30:00Z";
    let berlin = owner("O-berlin", "Europe/Berlin");
    let new_york = owner("O-ny", "America/New_York");

    let in_berlin = draft_at(&detractor("A-1", "O-berlin", "R-1"), &[berlin], now);
    let in_new_york = draft_at(&detractor("A-1", "O-ny", "R-1"), &[new_york], now);

    assert_eq!(
        in_berlin.due_date,
        day("2025-06-03"),
        "Friday + 2 = Tuesday"
    );
    assert_eq!(
        in_new_york.due_date,
        day("2025-06-02"),
        "Thursday + 2 = Monday"
    );
    assert_eq!(in_berlin.priority, Priority::High);
    assert!(in_berlin.key.ends_with(":20250530"), "{}", in_berlin.key);
    assert!(
        in_new_york.key.ends_with(":20250529"),
        "{}",
        in_new_york.key
    );
}

fn assert_contract_key(key: &str) {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._:-".contains(c);
    assert!(key.chars().all(allowed), "{key}");
    assert!(
        !key.is_empty() && key.len() <= 200,
        "{} characters: {key}",
        key.len()
    );
}

#[test]
fn a_plain_key_reads_as_reason_account_trigger_and_day() {
    let key = task_key(&detractor("A-000001", "O-1", "R-9"), day("2025-06-02"));
    assert_eq!(key, "touchpoint:detractor:A-000001:R-9:20250602");
    assert_contract_key(&key);
}

#[test]
fn keys_from_odd_or_long_ids_stay_within_the_contract_and_apart() {
    let opened = day("2025-06-02");
    let odd = task_key(&detractor("Ä 1/2", "O-1", "R#1 ü"), opened);
    let long_a = task_key(
        &detractor("A-1", "O-1", &format!("{}a", "r".repeat(300))),
        opened,
    );
    let long_b = task_key(
        &detractor("A-1", "O-1", &format!("{}b", "r".repeat(300))),
        opened,
    );

    for key in [&odd, &long_a, &long_b] {
        assert_contract_key(key);
        assert!(key.starts_with("touchpoint:detractor:"), "{key}");
    }
    assert_ne!(long_a, long_b, "ids that differ past the cut keep apart");
    assert_ne!(odd, task_key(&detractor("A 1/2", "O-1", "R#1 ü"), opened));
    assert_eq!(
        odd,
        task_key(&detractor("Ä 1/2", "O-1", "R#1 ü"), opened),
        "the same trigger gives the same key"
    );
}

#[test]
fn a_turned_red_body_names_each_measure_that_moved_with_its_reason_now() {
    let trigger = red(Some(vec![
        moved(
            "engagement",
            "yellow",
            "red",
            "no completed call with a key persona in 90 days",
        ),
        moved(
            "adoption",
            "green",
            "red",
            "1 of 5 key features adopted (3 needed)",
        ),
    ]));

    let body = draft_at(&trigger, &[owner("O-1", "UTC")], "2025-06-02T06:00:00Z").body;

    let expected = "Health turned red on 2025-06-02: score 25 (before: 63 yellow).\n\
        What moved:\n\
        - engagement: yellow -> red (now: no completed call with a key persona in 90 days)\n\
        - adoption: green -> red (now: 1 of 5 key features adopted (3 needed))\n\
        Measures now:\n\
        - deployment green: the basic set-up is done\n";
    assert!(body.starts_with(expected), "{body}");
    assert!(
        !body.contains("deployment: "),
        "deployment did not move: {body}"
    );
    assert!(body.contains("touchpoint explain A-1"), "{body}");
}

#[test]
fn a_body_for_an_account_red_since_an_earlier_cycle_points_to_the_history() {
    let body = draft_at(&red(None), &[owner("O-1", "UTC")], "2025-06-09T06:00:00Z").body;

    assert!(body.contains("is still red: score 25"), "{body}");
    assert!(
        !body.contains("What moved") && !body.contains("before:"),
        "{body}"
    );
    assert!(body.contains("- adoption red: 1 of 5"), "{body}");
    assert!(body.contains("touchpoint explain A-1"), "{body}");
}
