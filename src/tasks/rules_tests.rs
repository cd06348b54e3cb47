//! The rules' contracts: task bodies that say why.

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
