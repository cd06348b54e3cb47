//! Properties over random facts and configs: the score stays in range, a worse input never
//! helps, and N/A measures are renormalised away exactly.

use proptest::prelude::*;

use super::support::*;
use crate::scoring::{
    AccountFacts, Colour, Measure, RawScoringConfig, Scorecard, ScoringConfig, score,
};

const FEATURES: [&str; 5] = [
    "dashboards",
    "alerts",
    "integrations",
    "reports",
    "automations",
];

fn facts_strategy() -> impl Strategy<Value = AccountFacts> {
    (
        prop::option::of(any::<bool>()),
        prop::option::of(-30i64..800),
        prop::option::of(0i64..120),
        prop::option::of(0i64..120),
        prop::collection::vec(0u32..12, 5),
        prop::collection::vec((0i64..400, prop::option::of(any::<bool>())), 0..3),
        prop::option::of(0i64..400),
    )
        .prop_map(
            |(setup, tenure, meeting, webinar, feature_days, answers, sent)| {
                let mut facts = empty_facts();
                facts.basic_setup_done = setup;
                facts.contract_start_date = tenure.map(|d| now().date_naive() - days(d));
                facts.key_personas = 1;
                facts.key_persona_meeting = meeting.map(|d| evidence("act-m", now() - days(d)));
                facts.office_hours = webinar.map(|d| evidence("act-oh", now() - days(d)));
                facts.feature_days = FEATURES
                    .iter()
                    .zip(feature_days)
                    .map(|(f, d)| ((*f).to_owned(), d))
                    .collect();
                facts.goal_answers = answers
                    .into_iter()
                    .enumerate()
                    .map(|(i, (d, achieved))| answer(&format!("r-{i}"), now() - days(d), achieved))
                    .collect();
                facts.goal_survey_sent_at = sent.map(|d| now() - days(d));
                facts
            },
        )
}

fn config_strategy() -> impl Strategy<Value = ScoringConfig> {
    (
        prop::collection::vec(0i64..60, 4),
        (0i64..=100, 0i64..=100, 0i64..=100),
        1i64..=4,
    )
        .prop_filter_map("all weights zero", |(weights, points, min_measures)| {
            let mut sorted = [points.0, points.1, points.2];
            sorted.sort_unstable();
            let mut raw = RawScoringConfig::default();
            raw.weights.deployment = weights[0];
            raw.weights.engagement = weights[1];
            raw.weights.adoption = weights[2];
            raw.weights.roi = weights[3];
            raw.points.red = sorted[0];
            raw.points.yellow = sorted[1];
            raw.points.green = sorted[2];
            raw.min_measures = min_measures;
            ScoringConfig::from_raw(raw).ok()
        })
}

fn rank(card: &Scorecard, measure: Measure) -> Option<u8> {
    card.measures.get(measure).rank()
}

/// Asserts that `worse` did not improve on `better`, measure by measure and overall.
fn assert_not_better(better: &Scorecard, worse: &Scorecard, measure: Measure) {
    assert!(
        rank(worse, measure) <= rank(better, measure),
        "{measure} went from {:?} to {:?}",
        better.measures.get(measure),
        worse.measures.get(measure)
    );
    assert!(
        worse.score <= better.score,
        "score rose from {:?} to {:?}",
        better.score,
        worse.score
    );
}

/// Every way of making one input worse, with the measure it belongs to.
fn worsenings(facts: &AccountFacts) -> Vec<(Measure, AccountFacts)> {
    let mut worse = Vec::new();
    if facts.basic_setup_done == Some(true) {
        let mut f = facts.clone();
        f.basic_setup_done = Some(false);
        worse.push((Measure::Deployment, f));
    }
    if facts.key_persona_meeting.is_some() {
        let mut f = facts.clone();
        f.key_persona_meeting = None;
        worse.push((Measure::Engagement, f));
    }
    if facts.office_hours.is_some() {
        let mut f = facts.clone();
        f.office_hours = None;
        worse.push((Measure::Engagement, f));
    }
    for (feature, &days) in &facts.feature_days {
        if days > 0 {
            let mut f = facts.clone();
            f.feature_days.insert(feature.clone(), days - 1);
            worse.push((Measure::Adoption, f));
        }
    }
    for (index, answer) in facts.goal_answers.iter().enumerate() {
        if answer.goal_achieved == Some(true) {
            let mut f = facts.clone();
            f.goal_answers[index].goal_achieved = Some(false);
            worse.push((Measure::Roi, f));
        }
    }
    worse
}

proptest! {
    #[test]
    fn score_always_lies_in_0_to_100(facts in facts_strategy(), config in config_strategy()) {
        let card = score(&facts, &config, now());
        prop_assert!(card.score.is_none_or(|s| s.get() <= 100));
        prop_assert_eq!(card.score.is_none(), card.band == Colour::Na);
    }

    #[test]
    fn every_receipt_round_trips_through_json(facts in facts_strategy()) {
        let receipt = card(&facts).receipt;
        let json = serde_json::to_string(&receipt).unwrap();
        let back: crate::scoring::Receipt = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, receipt);
    }

    #[test]
    fn a_worse_input_never_raises_a_colour_or_the_score(
        facts in facts_strategy(),
        config in config_strategy(),
    ) {
        let better = score(&facts, &config, now());
        for (measure, worse_facts) in worsenings(&facts) {
            let worse = score(&worse_facts, &config, now());
            assert_not_better(&better, &worse, measure);
        }
    }

    #[test]
    fn an_na_measure_is_renormalised_away(facts in facts_strategy(), config in config_strategy()) {
        let mut without_setup = facts.clone();
        without_setup.basic_setup_done = None;
        let card = score(&without_setup, &config, now());

        let points = config.points();
        let counted: Vec<(u64, u64)> = Measure::ALL
            .iter()
            .filter_map(|&m| {
                let earned = points.of(*card.measures.get(m))?;
                Some((u64::from(earned), u64::from(config.weight(m))))
            })
            .collect();
        let weight: u64 = counted.iter().map(|&(_, w)| w).sum();
        let total: u64 = counted.iter().map(|&(p, w)| p * w).sum();
        let enough = counted.len() >= usize::from(config.min_measures()) && weight > 0;

        prop_assert_eq!(card.measures.deployment, Colour::Na);
        match card.score {
            None => prop_assert!(!enough),
            Some(s) => {
                prop_assert!(enough);
                // Half up: s ≤ total/weight + 1/2 < s + 1, in integers.
                let s = u64::from(s.get());
                prop_assert!(2 * weight * s <= 2 * total + weight);
                prop_assert!(2 * total + weight < 2 * weight * (s + 1));
            }
        }
    }
}
