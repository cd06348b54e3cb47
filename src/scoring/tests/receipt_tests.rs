//! Receipts: stored as JSON, read back unchanged, and rendered for a person.

use super::support::*;
use crate::scoring::{Colour, Receipt};

#[test]
fn receipt_round_trips_through_json() {
    let mut facts = healthy_facts();
    facts
        .goal_answers
        .push(answer("resp-0", now() - days(500), None));
    let receipt = card(&facts).receipt;
    let json = serde_json::to_string(&receipt).unwrap();
    let back: Receipt = serde_json::from_str(&json).unwrap();
    assert_eq!(back, receipt);
}

#[test]
fn receipt_records_inputs_windows_and_thresholds() {
    let receipt = card(&healthy_facts()).receipt;
    let json = serde_json::to_value(&receipt).unwrap();
    assert_eq!(json["config_version"], config().version());
    assert_eq!(json["model_version"], "dear-1");
    let engagement = &json["engagement"]["inputs"];
    assert_eq!(engagement["window"]["start"], "2024-10-17T00:00:00Z");
    assert_eq!(engagement["key_persona_meeting"]["activity_id"], "act-meet");
    let adoption = &json["adoption"]["inputs"];
    assert_eq!(adoption["stage"]["from_days"], 180);
    assert_eq!(adoption["stage"]["green_at"], 4);
    assert_eq!(adoption["window"]["end"], "2025-01-15");
    assert_eq!(adoption["features"][1]["feature"], "alerts");
    assert_eq!(json["roi"]["inputs"]["answers"][0]["id"], "resp-1");
    assert_eq!(json["overall"]["parts"]["roi"]["share"], "25.0%");
}

#[test]
fn render_text_explains_every_measure_and_the_arithmetic() {
    let mut facts = healthy_facts();
    facts.office_hours = None;
    facts.goal_answers.clear();
    let card = card(&facts);
    assert_eq!(card.measures.roi, Colour::Na);
    let text = card.receipt.render_text();
    let expected_lines = [
        "account acc-1: score 83, band green (as of 2025-01-15 00:00 UTC; model dear-1, config ",
        "  deployment  green   basic set-up done",
        "  engagement  yellow  completed executive_sponsor call/meeting on 2025-01-05; \
         no office hours attended in the last 90 days",
        "window from 2024-10-17 00:00 UTC to just before 2025-01-15 00:00 UTC",
        "  adoption    green   4 of 5 key features adopted \
         (dashboards, alerts, integrations, reports); 4+ expected at day 200",
        "usage days 2024-12-16 to 2025-01-14 (30 days); adopted at 4+ active days",
        "stage 4 from day 180: green at 4+, yellow at 3+",
        "active days: dashboards 10, alerts 10, integrations 10, reports 10, automations 0",
        "  roi         na      no goal survey sent or answered in the last 365 days",
        "  overall     (100×25 + 50×25 + 100×25) / 75 = 83.33… → 83 → green",
        "left out as n/a: roi",
    ];
    for line in expected_lines {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn render_text_says_why_there_is_no_score() {
    let text = card(&empty_facts()).receipt.render_text();
    assert!(
        text.starts_with("account acc-1: no score, band na (as of"),
        "{text}"
    );
    let line = "  overall     na      no score: 1 measure with data, 2 needed";
    assert!(text.contains(line), "{text}");
    assert!(
        text.contains("  adoption    na      original contract date unknown"),
        "{text}"
    );
}
