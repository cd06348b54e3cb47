//! ROI: has the account told us, through the goal survey, that it achieved a goal?

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::ScoringConfig;
use super::facts::{AccountFacts, GoalAnswer};
use super::receipt::MeasureResult;
use super::types::Colour;
use super::windows::{Window, Windows};

/// What the ROI verdict was based on, with the thresholds applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoiInputs {
    pub window: Window,
    pub survey_min_age_days: u32,
    /// A goal survey counts as "asked" when sent in the window at or before this instant.
    pub survey_sent_by: DateTime<Utc>,
    /// The latest goal survey that counts as "asked", if any.
    pub goal_survey_sent_at: Option<DateTime<Utc>>,
    /// Goal answers submitted in the window, oldest first.
    pub answers: Vec<GoalAnswer>,
    /// Answers on record outside the window (older, or at or after the scoring instant).
    pub answers_outside_window: u32,
}

/// An achieved goal reported in the window: GREEN. Otherwise, asked in the window (an old
/// enough goal survey, or any answer, even one that left the question blank): RED. Otherwise
/// N/A: a young account, or one that has not been surveyed yet, has not failed anything.
pub(super) fn judge(
    facts: &AccountFacts,
    config: &ScoringConfig,
    windows: &Windows,
) -> MeasureResult<RoiInputs> {
    let inputs = inputs(facts, config, windows);
    let (colour, reason) = verdict(&inputs);
    MeasureResult::new(colour, reason, inputs)
}

fn inputs(facts: &AccountFacts, config: &ScoringConfig, windows: &Windows) -> RoiInputs {
    let window = windows.roi;
    let (mut answers, outside): (Vec<GoalAnswer>, Vec<GoalAnswer>) = facts
        .goal_answers
        .iter()
        .cloned()
        .partition(|answer| window.contains(answer.submitted_at));
    answers.sort_by(|a, b| (a.submitted_at, &a.id).cmp(&(b.submitted_at, &b.id)));
    RoiInputs {
        window,
        survey_min_age_days: config.roi().survey_min_age_days,
        survey_sent_by: windows.survey_sent_by,
        goal_survey_sent_at: facts
            .goal_survey_sent_at
            .filter(|&t| windows.survey_counts(t)),
        answers,
        answers_outside_window: u32::try_from(outside.len()).unwrap_or(u32::MAX),
    }
}

fn verdict(inputs: &RoiInputs) -> (Colour, String) {
    let days = (inputs.window.end - inputs.window.start).num_days();
    let achieved = inputs
        .answers
        .iter()
        .rev()
        .find(|answer| answer.goal_achieved == Some(true));
    if let Some(answer) = achieved {
        let day = answer.submitted_at.date_naive();
        return (Colour::Green, format!("goal achieved, reported on {day}"));
    }
    let asked = asked_detail(inputs);
    if asked.is_empty() {
        let reason = format!("no goal survey sent or answered in the last {days} days");
        return (Colour::Na, reason);
    }
    let reason = format!(
        "no goal achievement reported in the last {days} days; asked: {}",
        asked.join(", ")
    );
    (Colour::Red, reason)
}

/// The evidence that the account was asked, e.g. `goal survey sent on 2024-10-01`,
/// `2 answers (1 not achieved, 1 blank)`; empty when it was not asked.
fn asked_detail(inputs: &RoiInputs) -> Vec<String> {
    let mut detail = Vec::new();
    if let Some(sent_at) = inputs.goal_survey_sent_at {
        detail.push(format!("goal survey sent on {}", sent_at.date_naive()));
    }
    let count = inputs.answers.len();
    if count > 0 {
        let blank = inputs
            .answers
            .iter()
            .filter(|a| a.goal_achieved.is_none())
            .count();
        let noun = if count == 1 { "answer" } else { "answers" };
        detail.push(format!(
            "{count} {noun} ({} not achieved, {blank} blank)",
            count - blank
        ));
    }
    detail
}
