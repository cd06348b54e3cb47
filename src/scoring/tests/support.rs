//! Builders shared by the scoring tests.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::model::{AccountId, ActivityId, ResponseId};
use crate::scoring::{
    AccountFacts, Evidence, GoalAnswer, RawScoringConfig, Scorecard, ScoringConfig, score,
};

pub fn config() -> ScoringConfig {
    ScoringConfig::from_raw(RawScoringConfig::default()).expect("defaults are valid")
}

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

pub fn date(text: &str) -> NaiveDate {
    text.parse().expect("test date")
}

/// The scoring instant of most tests: midnight, as `--as-of 2025-01-15` gives.
pub fn now() -> DateTime<Utc> {
    at("2025-01-15T00:00:00Z")
}

pub fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

pub fn account_id() -> AccountId {
    AccountId::parse("acc-1").unwrap()
}

pub fn empty_facts() -> AccountFacts {
    AccountFacts::new(account_id())
}

pub fn evidence(id: &str, occurred_at: DateTime<Utc>) -> Evidence {
    Evidence {
        activity_id: ActivityId::parse(id).unwrap(),
        occurred_at,
    }
}

pub fn answer(id: &str, submitted_at: DateTime<Utc>, achieved: Option<bool>) -> GoalAnswer {
    GoalAnswer {
        id: ResponseId::parse(id).unwrap(),
        submitted_at,
        goal_achieved: achieved,
    }
}

/// Facts that make every measure GREEN as of [`now`]: day 200 of tenure, four features
/// adopted, both engagement signals, an achieved goal.
pub fn healthy_facts() -> AccountFacts {
    let mut facts = empty_facts();
    facts.basic_setup_done = Some(true);
    facts.contract_start_date = Some(now().date_naive() - days(200));
    facts.key_personas = 1;
    facts.key_persona_meeting = Some(evidence("act-meet", now() - days(10)));
    facts.office_hours = Some(evidence("act-oh", now() - days(20)));
    for feature in ["dashboards", "alerts", "integrations", "reports"] {
        facts.feature_days.insert(feature.to_owned(), 10);
    }
    facts.goal_answers = vec![answer("resp-1", now() - days(30), Some(true))];
    facts
}

pub fn card(facts: &AccountFacts) -> Scorecard {
    score(facts, &config(), now())
}

/// Facts at a given tenure with `adopted` key features used on 4+ days.
pub fn adoption_facts(tenure_days: i64, adopted: usize) -> AccountFacts {
    let mut facts = empty_facts();
    facts.contract_start_date = Some(now().date_naive() - days(tenure_days));
    let features = [
        "dashboards",
        "alerts",
        "integrations",
        "reports",
        "automations",
    ];
    for feature in features.iter().take(adopted) {
        facts.feature_days.insert((*feature).to_owned(), 4);
    }
    facts
}

pub fn second() -> TimeDelta {
    TimeDelta::seconds(1)
}
