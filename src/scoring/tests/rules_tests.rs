//! One test per rule and boundary of the four measures.

use super::support::*;
use crate::scoring::{Colour, Measure};

fn colour(facts: &crate::scoring::AccountFacts, measure: Measure) -> Colour {
    *card(facts).measures.get(measure)
}

fn reason(facts: &crate::scoring::AccountFacts, measure: Measure) -> String {
    card(facts).receipt.reason(measure).to_owned()
}

// Deployment

#[test]
fn deployment_follows_the_setup_flag() {
    let mut facts = empty_facts();
    facts.basic_setup_done = Some(true);
    assert_eq!(colour(&facts, Measure::Deployment), Colour::Green);
    facts.basic_setup_done = Some(false);
    assert_eq!(colour(&facts, Measure::Deployment), Colour::Red);
    facts.basic_setup_done = None;
    assert_eq!(colour(&facts, Measure::Deployment), Colour::Na);
    assert_eq!(reason(&facts, Measure::Deployment), "set-up status unknown");
}

// Engagement

#[test]
fn engagement_is_green_with_both_signals() {
    let facts = healthy_facts();
    assert_eq!(colour(&facts, Measure::Engagement), Colour::Green);
    assert_eq!(
        reason(&facts, Measure::Engagement),
        "completed executive_sponsor call/meeting on 2025-01-05; \
         attended office hours on 2024-12-26"
    );
}

#[test]
fn engagement_is_yellow_with_one_signal_and_says_which_is_missing() {
    let mut facts = empty_facts();
    facts.key_personas = 1;
    facts.office_hours = Some(evidence("act-oh", at("2024-12-10T16:00:00Z")));
    assert_eq!(colour(&facts, Measure::Engagement), Colour::Yellow);
    assert_eq!(
        reason(&facts, Measure::Engagement),
        "no completed executive_sponsor call/meeting in the last 90 days; \
         attended office hours on 2024-12-10"
    );

    facts.office_hours = None;
    facts.key_persona_meeting = Some(evidence("act-m", at("2024-11-02T10:00:00Z")));
    assert_eq!(colour(&facts, Measure::Engagement), Colour::Yellow);
}

#[test]
fn engagement_is_red_with_neither_and_explains_near_misses() {
    let mut facts = empty_facts();
    facts.key_personas = 2;
    facts.other_meetings = 3;
    facts.office_hours_no_shows = 1;
    assert_eq!(colour(&facts, Measure::Engagement), Colour::Red);
    assert_eq!(
        reason(&facts, Measure::Engagement),
        "no completed executive_sponsor call/meeting in the last 90 days (3 took place, none \
         with executive_sponsor); no office hours attended in the last 90 days (1 no-show)"
    );

    facts.key_personas = 0;
    let text = reason(&facts, Measure::Engagement);
    assert!(
        text.contains("(no executive_sponsor contact on record)"),
        "{text}"
    );
}

#[test]
fn engagement_window_includes_its_start_and_excludes_now() {
    let mut facts = empty_facts();
    facts.key_persona_meeting = Some(evidence("act-m", now() - days(90)));
    facts.office_hours = Some(evidence("act-oh", now()));
    let result = card(&facts).receipt.engagement;
    assert_eq!(result.colour, Colour::Yellow);
    assert!(result.inputs.key_persona_meeting.is_some());
    assert!(result.inputs.office_hours.is_none());

    facts.key_persona_meeting = Some(evidence("act-m", now() - days(90) - second()));
    assert_eq!(colour(&facts, Measure::Engagement), Colour::Red);
}

// Adoption

#[test]
fn adoption_stage_edges() {
    let cases = [
        (29, 2, Colour::Na),
        (30, 2, Colour::Green),
        (30, 1, Colour::Yellow),
        (30, 0, Colour::Red),
        (89, 2, Colour::Green),
        (90, 2, Colour::Yellow),
        (90, 3, Colour::Green),
        (179, 3, Colour::Green),
        (180, 3, Colour::Yellow),
        (180, 4, Colour::Green),
        (180, 2, Colour::Red),
    ];
    for (tenure, adopted, expected) in cases {
        let facts = adoption_facts(tenure, adopted);
        let got = colour(&facts, Measure::Adoption);
        assert_eq!(got, expected, "day {tenure} with {adopted} features");
    }
}

#[test]
fn adoption_onboarding_reason_names_the_day() {
    let facts = adoption_facts(12, 5);
    assert_eq!(reason(&facts, Measure::Adoption), "onboarding (day 12)");
    let day_zero = adoption_facts(0, 0);
    assert_eq!(reason(&day_zero, Measure::Adoption), "onboarding (day 0)");
}

#[test]
fn adoption_reason_lists_adopted_features_and_the_expectation() {
    let mut facts = adoption_facts(140, 0);
    facts.feature_days.insert("alerts", 9);
    facts.feature_days.insert("reports", 4);
    facts.feature_days.insert("dashboards", 3);
    assert_eq!(colour(&facts, Measure::Adoption), Colour::Yellow);
    assert_eq!(
        reason(&facts, Measure::Adoption),
        "2 of 5 key features adopted (alerts, reports); 3+ expected at day 140"
    );
}

#[test]
fn adoption_needs_min_days_active() {
    let mut facts = adoption_facts(45, 0);
    facts.feature_days.insert("alerts", 3);
    assert_eq!(colour(&facts, Measure::Adoption), Colour::Red);
    facts.feature_days.insert("alerts", 4);
    assert_eq!(colour(&facts, Measure::Adoption), Colour::Yellow);
}

#[test]
fn adoption_is_na_without_a_usable_contract_date() {
    let mut facts = adoption_facts(200, 5);
    facts.contract_start_date = None;
    assert_eq!(colour(&facts, Measure::Adoption), Colour::Na);
    assert_eq!(
        reason(&facts, Measure::Adoption),
        "original contract date unknown"
    );

    facts.contract_start_date = Some(date("2025-03-01"));
    assert_eq!(colour(&facts, Measure::Adoption), Colour::Na);
    assert_eq!(
        reason(&facts, Measure::Adoption),
        "contract starts on 2025-03-01"
    );
}

#[test]
fn adoption_tenure_across_29_february_and_month_ends() {
    let config = config();
    let mut facts = adoption_facts(0, 2);

    facts.contract_start_date = Some(date("2024-02-29"));
    let day_29 = crate::scoring::score(&facts, &config, at("2024-03-29T23:59:59Z"));
    assert_eq!(day_29.measures.adoption, Colour::Na);
    assert_eq!(day_29.receipt.adoption.inputs.tenure_days, Some(29));
    let day_30 = crate::scoring::score(&facts, &config, at("2024-03-30T00:00:00Z"));
    assert_eq!(day_30.measures.adoption, Colour::Green);

    facts.contract_start_date = Some(date("2024-01-31"));
    let leap_march = crate::scoring::score(&facts, &config, at("2024-03-01T08:00:00Z"));
    assert_eq!(leap_march.receipt.adoption.inputs.tenure_days, Some(30));
    assert_eq!(leap_march.measures.adoption, Colour::Green);

    facts.contract_start_date = Some(date("2023-01-31"));
    let plain_march = crate::scoring::score(&facts, &config, at("2023-03-01T08:00:00Z"));
    assert_eq!(plain_march.receipt.adoption.inputs.tenure_days, Some(29));
    assert_eq!(plain_march.measures.adoption, Colour::Na);
}

#[test]
fn adoption_counts_tenure_to_the_utc_date_of_now() {
    let mut facts = adoption_facts(0, 2);
    facts.contract_start_date = Some(date("2024-06-01"));
    let late_evening = crate::scoring::score(&facts, &config(), at("2024-06-30T23:59:59Z"));
    assert_eq!(late_evening.receipt.adoption.inputs.tenure_days, Some(29));
    assert_eq!(late_evening.measures.adoption, Colour::Na);
}

// ROI

#[test]
fn roi_is_green_for_an_achieved_goal_in_the_window() {
    let mut facts = empty_facts();
    facts.goal_answers = vec![
        answer("r-old", now() - days(200), Some(true)),
        answer("r-new", now() - days(20), Some(false)),
    ];
    assert_eq!(colour(&facts, Measure::Roi), Colour::Green);
    assert_eq!(
        reason(&facts, Measure::Roi),
        "goal achieved, reported on 2024-06-29"
    );
}

#[test]
fn roi_window_edges_for_answers() {
    let mut facts = empty_facts();
    facts.goal_answers = vec![answer("r", now() - days(365), Some(true))];
    assert_eq!(colour(&facts, Measure::Roi), Colour::Green);

    facts.goal_answers = vec![answer("r", now() - days(365) - second(), Some(true))];
    assert_eq!(colour(&facts, Measure::Roi), Colour::Na);

    facts.goal_answers = vec![answer("r", now(), Some(true))];
    assert_eq!(colour(&facts, Measure::Roi), Colour::Na);
    assert_eq!(card(&facts).receipt.roi.inputs.answers_outside_window, 1);
}

#[test]
fn roi_is_red_when_asked_without_an_achievement() {
    let mut facts = empty_facts();
    facts.goal_answers = vec![answer("r", now() - days(3), Some(false))];
    assert_eq!(colour(&facts, Measure::Roi), Colour::Red);
    assert_eq!(
        reason(&facts, Measure::Roi),
        "no goal achievement reported in the last 365 days; \
         asked: 1 answer (1 not achieved, 0 blank)"
    );
}

#[test]
fn roi_null_goal_answer_still_counts_as_asked() {
    let mut facts = empty_facts();
    facts.goal_answers = vec![answer("r", now() - days(3), None)];
    assert_eq!(colour(&facts, Measure::Roi), Colour::Red);
    assert!(reason(&facts, Measure::Roi).contains("1 blank"));
}

#[test]
fn roi_survey_counts_from_exactly_the_minimum_age() {
    let mut facts = empty_facts();
    facts.goal_survey_sent_at = Some(now() - days(14));
    assert_eq!(colour(&facts, Measure::Roi), Colour::Red);
    assert_eq!(
        reason(&facts, Measure::Roi),
        "no goal achievement reported in the last 365 days; \
         asked: goal survey sent on 2025-01-01"
    );

    facts.goal_survey_sent_at = Some(now() - days(14) + second());
    assert_eq!(colour(&facts, Measure::Roi), Colour::Na);

    facts.goal_survey_sent_at = Some(now() - days(366));
    assert_eq!(colour(&facts, Measure::Roi), Colour::Na);
    assert_eq!(
        reason(&facts, Measure::Roi),
        "no goal survey sent or answered in the last 365 days"
    );
}
