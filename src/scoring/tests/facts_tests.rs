//! Folding records into facts: what counts, what is skipped, and the windows applied.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::support::*;
use crate::model::{
    Account, AccountId, Activity, ActivityId, ActivityType, Contact, ContactId, Outcome, Persona,
    ResponseId, SurveyKind, SurveyResponse, UsageRow,
};
use crate::scoring::{AccountFacts, FactsBuilder, Folded, Skip};

fn contact_id(id: &str) -> ContactId {
    ContactId::parse(id).unwrap()
}

fn activity(id: &str, kind: ActivityType, outcome: Outcome, at: DateTime<Utc>) -> Activity {
    Activity {
        id: ActivityId::parse(id).unwrap(),
        account_id: account_id(),
        kind,
        series: None,
        occurred_at: at,
        outcome,
        contact_ids: vec![contact_id("c-sponsor")],
        updated_at: at,
    }
}

fn office_hours(id: &str, outcome: Outcome, at: DateTime<Utc>) -> Activity {
    Activity {
        series: Some("Office_Hours".into()),
        contact_ids: Vec::new(),
        ..activity(id, ActivityType::Webinar, outcome, at)
    }
}

fn contact(id: &str, persona: Option<Persona>) -> Contact {
    Contact {
        id: contact_id(id),
        account_id: account_id(),
        email: None,
        name: None,
        persona,
        timezone: None,
        email_opt_out: false,
        merged_into: None,
        archived: false,
        updated_at: now(),
    }
}

fn usage(feature: &str, days_active: u32) -> UsageRow {
    UsageRow {
        account_id: account_id(),
        feature: feature.into(),
        days_active,
        event_count: 0,
        active_users: 0,
    }
}

fn response(
    id: &str,
    survey: SurveyKind,
    at: DateTime<Utc>,
    achieved: Option<bool>,
) -> SurveyResponse {
    SurveyResponse {
        id: ResponseId::parse(id).unwrap(),
        account_id: account_id(),
        contact_id: None,
        survey,
        submitted_at: at,
        score: None,
        goal_achieved: achieved,
        comment: None,
    }
}

fn sponsor_only(id: &ContactId) -> bool {
    id.as_str() == "c-sponsor"
}

#[test]
fn start_copies_the_account_record() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let account = Account {
        id: account_id(),
        name: "Acme".into(),
        domain: None,
        owner_id: None,
        basic_setup_done: Some(true),
        contract_start_date: Some(date("2024-02-29")),
        timezone: None,
        archived: false,
        updated_at: now(),
    };
    let facts = builder.start(&account);
    assert_eq!(facts.basic_setup_done, Some(true));
    assert_eq!(facts.contract_start_date, Some(date("2024-02-29")));
    assert_eq!(facts.key_personas, 0);
}

#[test]
fn only_live_key_persona_contacts_count() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let mut facts = empty_facts();
    let sponsor = contact("c-1", Some(Persona::ExecutiveSponsor));
    let archived = Contact {
        archived: true,
        ..contact("c-2", Some(Persona::ExecutiveSponsor))
    };
    let merged = Contact {
        merged_into: Some(contact_id("c-1")),
        ..contact("c-3", Some(Persona::ExecutiveSponsor))
    };
    assert_eq!(builder.fold_contact(&mut facts, &sponsor), Folded::Counted);
    for other in [
        archived,
        merged,
        contact("c-4", Some(Persona::Champion)),
        contact("c-5", None),
    ] {
        let folded = builder.fold_contact(&mut facts, &other);
        assert_eq!(folded, Folded::Skipped(Skip::NotKeyPersona));
    }
    assert_eq!(facts.key_personas, 1);
}

#[test]
fn completed_meetings_split_by_key_persona_presence() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let mut facts = empty_facts();
    let with_sponsor = activity(
        "a-1",
        ActivityType::Call,
        Outcome::Completed,
        now() - days(3),
    );
    let without = Activity {
        contact_ids: vec![contact_id("c-user")],
        ..activity(
            "a-2",
            ActivityType::Meeting,
            Outcome::Completed,
            now() - days(2),
        )
    };
    assert_eq!(
        builder.fold_activity(&mut facts, &with_sponsor, sponsor_only),
        Folded::Counted
    );
    assert_eq!(
        builder.fold_activity(&mut facts, &without, sponsor_only),
        Folded::Counted
    );
    assert_eq!(
        facts.key_persona_meeting,
        Some(evidence("a-1", now() - days(3)))
    );
    assert_eq!(facts.other_meetings, 1);
}

#[test]
fn meetings_that_did_not_happen_are_skipped() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let mut facts = empty_facts();
    for outcome in [
        Outcome::Scheduled,
        Outcome::Canceled,
        Outcome::NoShow,
        Outcome::Unknown,
    ] {
        let planned = activity("a", ActivityType::Meeting, outcome, now() - days(1));
        let folded = builder.fold_activity(&mut facts, &planned, sponsor_only);
        assert_eq!(folded, Folded::Skipped(Skip::NotScored), "{outcome:?}");
    }
    let webinar = activity(
        "w",
        ActivityType::Webinar,
        Outcome::Attended,
        now() - days(1),
    );
    let folded = builder.fold_activity(&mut facts, &webinar, sponsor_only);
    assert_eq!(folded, Folded::Skipped(Skip::NotScored));
    assert_eq!(facts, empty_facts());
}

#[test]
fn activity_window_includes_its_start_and_excludes_now() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let mut facts = empty_facts();
    let edge = activity(
        "a-edge",
        ActivityType::Call,
        Outcome::Completed,
        now() - days(90),
    );
    let late = activity("a-now", ActivityType::Call, Outcome::Completed, now());
    let early = activity(
        "a-old",
        ActivityType::Call,
        Outcome::Completed,
        now() - days(90) - second(),
    );
    assert_eq!(
        builder.fold_activity(&mut facts, &edge, sponsor_only),
        Folded::Counted
    );
    for outside in [late, early] {
        let folded = builder.fold_activity(&mut facts, &outside, sponsor_only);
        assert_eq!(folded, Folded::Skipped(Skip::OutsideWindow));
    }
    assert_eq!(
        facts.key_persona_meeting,
        Some(evidence("a-edge", now() - days(90)))
    );
}

#[test]
fn the_latest_evidence_wins_whatever_the_order() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let newer = office_hours("w-2", Outcome::Attended, now() - days(5));
    let older = office_hours("w-1", Outcome::Attended, now() - days(40));
    let mut forward = empty_facts();
    let mut backward = empty_facts();
    for session in [&older, &newer] {
        builder.fold_activity(&mut forward, session, sponsor_only);
    }
    for session in [&newer, &older] {
        builder.fold_activity(&mut backward, session, sponsor_only);
    }
    assert_eq!(forward.office_hours, Some(evidence("w-2", now() - days(5))));
    assert_eq!(forward, backward);
}

#[test]
fn office_hours_attendance_and_no_shows() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let mut facts = empty_facts();
    let no_show = office_hours("w-1", Outcome::NoShow, now() - days(10));
    let other_series = Activity {
        series: Some("product_launch".into()),
        ..office_hours("w-2", Outcome::Attended, now() - days(10))
    };
    assert_eq!(
        builder.fold_activity(&mut facts, &no_show, sponsor_only),
        Folded::Counted
    );
    let folded = builder.fold_activity(&mut facts, &other_series, sponsor_only);
    assert_eq!(folded, Folded::Skipped(Skip::NotScored));
    assert_eq!(facts.office_hours_no_shows, 1);
    assert_eq!(facts.office_hours, None);
}

#[test]
fn records_of_other_accounts_are_skipped() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let mut facts = AccountFacts::new(AccountId::parse("acc-2").unwrap());
    let meeting = activity("a", ActivityType::Call, Outcome::Completed, now() - days(1));
    let other = Folded::Skipped(Skip::OtherAccount);
    assert_eq!(
        builder.fold_activity(&mut facts, &meeting, sponsor_only),
        other
    );
    assert_eq!(builder.fold_usage(&mut facts, &usage("alerts", 9)), other);
    let goal = response("r", SurveyKind::Goal, now() - days(1), Some(true));
    assert_eq!(builder.fold_response(&mut facts, &goal), other);
    let sponsor = contact("c", Some(Persona::ExecutiveSponsor));
    assert_eq!(builder.fold_contact(&mut facts, &sponsor), other);
}

#[test]
fn usage_keeps_key_features_in_their_configured_spelling() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let mut facts = empty_facts();
    assert_eq!(
        builder.fold_usage(&mut facts, &usage(" Alerts ", 5)),
        Folded::Counted
    );
    assert_eq!(
        builder.fold_usage(&mut facts, &usage("alerts", 3)),
        Folded::Counted
    );
    let folded = builder.fold_usage(&mut facts, &usage("exports", 30));
    assert_eq!(folded, Folded::Skipped(Skip::NotKeyFeature));
    assert_eq!(facts.feature_days.len(), 1);
    assert_eq!(facts.feature_days.get("alerts"), Some(&5));
}

#[test]
fn goal_answers_in_the_window_are_kept_once() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let mut facts = empty_facts();
    let kept = response("r-1", SurveyKind::Goal, now() - days(365), None);
    assert_eq!(builder.fold_response(&mut facts, &kept), Folded::Counted);
    assert_eq!(
        builder.fold_response(&mut facts, &kept),
        Folded::Skipped(Skip::Duplicate)
    );
    let nps = response("r-2", SurveyKind::Nps, now() - days(1), None);
    assert_eq!(
        builder.fold_response(&mut facts, &nps),
        Folded::Skipped(Skip::NotGoalSurvey)
    );
    for at in [now(), now() - days(365) - second()] {
        let outside = response("r-3", SurveyKind::Goal, at, Some(true));
        let folded = builder.fold_response(&mut facts, &outside);
        assert_eq!(folded, Folded::Skipped(Skip::OutsideWindow));
    }
    assert_eq!(
        facts.goal_answers,
        vec![answer("r-1", now() - days(365), None)]
    );
}

#[test]
fn a_recent_survey_does_not_hide_an_older_one_that_counts() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let mut facts = empty_facts();
    let five_months = now() - days(150);
    assert_eq!(
        builder.fold_goal_survey_sent(&mut facts, five_months),
        Folded::Counted
    );
    let last_week = builder.fold_goal_survey_sent(&mut facts, now() - days(7));
    assert_eq!(last_week, Folded::Skipped(Skip::TooRecent));
    let ancient = builder.fold_goal_survey_sent(&mut facts, now() - days(400));
    assert_eq!(ancient, Folded::Skipped(Skip::OutsideWindow));
    assert_eq!(facts.goal_survey_sent_at, Some(five_months));
    let edge = now() - days(14);
    assert_eq!(
        builder.fold_goal_survey_sent(&mut facts, edge),
        Folded::Counted
    );
    assert_eq!(facts.goal_survey_sent_at, Some(edge));
}

#[test]
fn folded_facts_score_like_hand_built_ones() {
    let config = config();
    let builder = FactsBuilder::new(&config, now());
    let mut facts = empty_facts();
    let key_contacts: HashSet<ContactId> = [contact_id("c-sponsor")].into();
    let meeting = activity(
        "a-1",
        ActivityType::Meeting,
        Outcome::Completed,
        now() - days(1),
    );
    builder.fold_activity(&mut facts, &meeting, |id| key_contacts.contains(id));
    builder.fold_activity(
        &mut facts,
        &office_hours("w-1", Outcome::Attended, now() - days(2)),
        |id| key_contacts.contains(id),
    );
    let card = crate::scoring::score(&facts, &config, now());
    assert_eq!(card.measures.engagement, crate::scoring::Colour::Green);
}
