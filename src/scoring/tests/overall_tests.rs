//! The overall score: weights, renormalisation, rounding, bands and the minimum of measures.

use super::support::*;
use crate::scoring::{
    AccountFacts, Colour, RawScoringConfig, Score, Scorecard, ScoringConfig, score,
};

/// Facts whose measures come out as the given colours (`None` = N/A) as of [`now`].
fn facts_with(
    deployment: Option<Colour>,
    engagement: Colour,
    adoption: Option<Colour>,
    roi: Option<Colour>,
) -> AccountFacts {
    let mut facts = empty_facts();
    facts.basic_setup_done = deployment.map(|c| c == Colour::Green);
    facts.key_personas = 1;
    let recent = now() - days(5);
    if engagement != Colour::Red {
        facts.key_persona_meeting = Some(evidence("act-m", recent));
    }
    if engagement == Colour::Green {
        facts.office_hours = Some(evidence("act-oh", recent));
    }
    if let Some(colour) = adoption {
        let adopted = match colour {
            Colour::Green => 4,
            Colour::Yellow => 3,
            _ => 0,
        };
        facts = AccountFacts {
            feature_days: adoption_facts(200, adopted).feature_days,
            contract_start_date: Some(now().date_naive() - days(200)),
            ..facts
        };
    }
    if let Some(colour) = roi {
        let achieved = colour == Colour::Green;
        facts.goal_answers = vec![answer("r", recent, Some(achieved))];
    }
    facts
}

fn config_with(edit: impl FnOnce(&mut RawScoringConfig)) -> ScoringConfig {
    let mut raw = RawScoringConfig::default();
    edit(&mut raw);
    ScoringConfig::from_raw(raw).unwrap()
}

fn score_of(card: &Scorecard) -> Option<u8> {
    card.score.map(Score::get)
}

#[test]
fn all_four_measures_with_equal_weights() {
    let facts = facts_with(
        Some(Colour::Green),
        Colour::Yellow,
        Some(Colour::Red),
        Some(Colour::Green),
    );
    let card = card(&facts);
    assert_eq!(score_of(&card), Some(63));
    assert_eq!(card.band, Colour::Yellow);
    let arithmetic = card.receipt.overall.arithmetic.unwrap();
    assert_eq!(
        arithmetic,
        "(100×25 + 50×25 + 0×25 + 100×25) / 100 = 62.5 → 63"
    );
}

#[test]
fn na_measures_are_left_out_and_weights_renormalised() {
    let facts = facts_with(Some(Colour::Green), Colour::Yellow, Some(Colour::Red), None);
    let card = card(&facts);
    let overall = &card.receipt.overall;
    assert_eq!(
        overall.arithmetic.as_deref(),
        Some("(100×25 + 50×25 + 0×25) / 75 = 50")
    );
    assert_eq!(score_of(&card), Some(50));
    assert_eq!(card.band, Colour::Yellow);
    assert_eq!(overall.weight_used, 75);
    assert_eq!(overall.parts.deployment.share.as_deref(), Some("33.3%"));
    assert_eq!(overall.parts.roi.share, None);
    assert_eq!(
        overall.reason,
        "3 of 4 measures counted; left out as n/a: roi"
    );
}

#[test]
fn rounding_is_half_up() {
    let facts = facts_with(
        Some(Colour::Green),
        Colour::Yellow,
        Some(Colour::Red),
        Some(Colour::Red),
    );
    let card = card(&facts);
    assert_eq!(score_of(&card), Some(38));
    assert_eq!(
        card.receipt.overall.arithmetic.as_deref(),
        Some("(100×25 + 50×25 + 0×25 + 0×25) / 100 = 37.5 → 38")
    );
    assert_eq!(card.band, Colour::Red);
}

#[test]
fn uneven_weights_round_to_the_nearest_integer() {
    let config = config_with(|raw| {
        raw.weights.deployment = 1;
        raw.weights.engagement = 2;
    });
    let facts = facts_with(Some(Colour::Green), Colour::Yellow, None, None);
    let card = score(&facts, &config, now());
    assert_eq!(score_of(&card), Some(67));
    assert_eq!(
        card.receipt.overall.arithmetic.as_deref(),
        Some("(100×1 + 50×2) / 3 = 66.66… → 67")
    );
    assert_eq!(
        card.receipt.overall.parts.engagement.share.as_deref(),
        Some("66.7%")
    );
}

#[test]
fn fewer_than_min_measures_gives_no_score() {
    let facts = facts_with(Some(Colour::Green), Colour::Red, None, None);
    assert_eq!(score_of(&card(&facts)), Some(50));

    let strict = config_with(|raw| raw.min_measures = 3);
    let card = score(&facts, &strict, now());
    assert_eq!(card.score, None);
    assert_eq!(card.band, Colour::Na);
    assert_eq!(card.receipt.overall.arithmetic, None);
    assert_eq!(
        card.receipt.overall.reason,
        "no score: 2 measures with data, 3 needed"
    );
}

#[test]
fn measured_weight_of_zero_gives_no_score() {
    let config = config_with(|raw| {
        raw.weights.deployment = 0;
        raw.weights.engagement = 0;
    });
    let facts = facts_with(Some(Colour::Green), Colour::Green, None, None);
    let card = score(&facts, &config, now());
    assert_eq!(card.score, None);
    assert_eq!(card.band, Colour::Na);
}

#[test]
fn bands_start_at_their_threshold() {
    let green = facts_with(
        Some(Colour::Green),
        Colour::Green,
        Some(Colour::Green),
        Some(Colour::Red),
    );
    assert_eq!(score_of(&card(&green)), Some(75));
    assert_eq!(card(&green).band, Colour::Green);

    let yellow = facts_with(
        Some(Colour::Green),
        Colour::Yellow,
        Some(Colour::Yellow),
        Some(Colour::Red),
    );
    assert_eq!(score_of(&card(&yellow)), Some(50));
    assert_eq!(card(&yellow).band, Colour::Yellow);

    let strict = config_with(|raw| raw.bands.green_from = 76);
    assert_eq!(score(&green, &strict, now()).band, Colour::Yellow);
}

#[test]
fn all_green_scores_100_and_all_red_0() {
    let card = card(&healthy_facts());
    assert_eq!(score_of(&card), Some(100));
    assert_eq!(card.band, Colour::Green);

    let red = facts_with(
        Some(Colour::Red),
        Colour::Red,
        Some(Colour::Red),
        Some(Colour::Red),
    );
    assert_eq!(score_of(&super::support::card(&red)), Some(0));
}
