//! Adoption: how many key features the account really uses, against what its tenure leads us
//! to expect.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::config::{ScoringConfig, Stage};
use super::facts::AccountFacts;
use super::receipt::MeasureResult;
use super::types::Colour;
use super::windows::{DayWindow, Windows};

/// What the adoption verdict was based on, with the thresholds applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptionInputs {
    pub window: DayWindow,
    /// A feature counts as adopted from this many distinct active days in the window.
    pub min_days_active: u32,
    pub contract_start_date: Option<NaiveDate>,
    /// Whole days from the contract date to the scoring date; `None` when the date is unknown.
    pub tenure_days: Option<i64>,
    /// The tenure stage that applied; `None` when tenure is unknown or negative.
    pub stage: Option<StageApplied>,
    /// Every key feature, in configured order.
    pub features: Vec<FeatureUse>,
    pub adopted: u32,
}

/// A stage of `scoring.adoption.stages`, with its position for the reader of a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageApplied {
    pub index: usize,
    #[serde(flatten)]
    pub stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureUse {
    pub feature: String,
    pub days_active: u32,
    pub adopted: bool,
}

/// GREEN at `green_at`+ adopted features, YELLOW at `yellow_at`+, else RED; N/A when the
/// contract date is unknown or in the future, or the stage sets no targets (onboarding):
/// judging a customer before they could have adopted anything would only produce noise.
pub(super) fn judge(
    facts: &AccountFacts,
    config: &ScoringConfig,
    windows: &Windows,
) -> MeasureResult<AdoptionInputs> {
    let inputs = inputs(facts, config, windows);
    let (colour, reason) = verdict(&inputs);
    MeasureResult::new(colour, reason, inputs)
}

fn inputs(facts: &AccountFacts, config: &ScoringConfig, windows: &Windows) -> AdoptionInputs {
    let adoption = config.adoption();
    let features: Vec<FeatureUse> = adoption
        .key_features
        .iter()
        .map(|feature| feature_use(facts, feature, adoption.min_days_active))
        .collect();
    let adopted = features.iter().filter(|f| f.adopted).count();
    let tenure_days = facts
        .contract_start_date
        .map(|ocd| windows.tenure_days(ocd));
    AdoptionInputs {
        window: windows.adoption,
        min_days_active: adoption.min_days_active,
        contract_start_date: facts.contract_start_date,
        tenure_days,
        stage: tenure_days.and_then(|days| stage_at(&adoption.stages, days)),
        features,
        adopted: u32::try_from(adopted).unwrap_or(u32::MAX),
    }
}

fn feature_use(facts: &AccountFacts, feature: &str, min_days_active: u32) -> FeatureUse {
    let days_active = facts.feature_days.get(feature).copied().unwrap_or(0);
    FeatureUse {
        feature: feature.to_owned(),
        days_active,
        adopted: days_active >= min_days_active,
    }
}

/// The last stage starting at or before `tenure_days`; none before day 0.
fn stage_at(stages: &[Stage], tenure_days: i64) -> Option<StageApplied> {
    stages
        .iter()
        .enumerate()
        .rev()
        .find(|(_, stage)| i64::from(stage.from_days) <= tenure_days)
        .map(|(index, &stage)| StageApplied { index, stage })
}

fn verdict(inputs: &AdoptionInputs) -> (Colour, String) {
    let (Some(ocd), Some(days)) = (inputs.contract_start_date, inputs.tenure_days) else {
        return (Colour::Na, "original contract date unknown".to_owned());
    };
    let Some(applied) = inputs.stage else {
        return (Colour::Na, format!("contract starts on {ocd}"));
    };
    let Some(targets) = applied.stage.targets else {
        return (Colour::Na, not_judged_reason(applied, days));
    };
    let total = inputs.features.len();
    let adopted = adopted_list(inputs);
    let expected = targets.green_at;
    let reason = format!(
        "{} of {total} key features adopted{adopted}; {expected}+ expected at day {days}",
        inputs.adopted
    );
    (targets.colour(inputs.adopted), reason)
}

fn not_judged_reason(applied: StageApplied, days: i64) -> String {
    if applied.index == 0 {
        format!("onboarding (day {days})")
    } else {
        let from = applied.stage.from_days;
        format!("not judged at day {days} (stage from day {from} sets no targets)")
    }
}

/// ` (alerts, reports)`, or nothing when no feature is adopted.
fn adopted_list(inputs: &AdoptionInputs) -> String {
    let names: Vec<&str> = inputs
        .features
        .iter()
        .filter(|f| f.adopted)
        .map(|f| f.feature.as_str())
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}
