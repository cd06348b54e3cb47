//! The receipt: everything behind a scorecard, stored as JSON with the score and printed by
//! `touchpoint explain`.
//!
//! A receipt is self-contained: the inputs, windows and thresholds of each measure, the
//! arithmetic of the score, and the model and config versions. A CS lead must be able to
//! answer "why is this account red?" from the receipt alone, months later, after the config
//! has changed.

use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::adoption::{AdoptionInputs, StageApplied};
use super::deployment::DeploymentInputs;
use super::engagement::EngagementInputs;
use super::facts::{Evidence, GoalAnswer};
use super::overall::Overall;
use super::roi::RoiInputs;
use super::types::{Colour, Measure, PerMeasure};
use super::windows::Window;
use crate::model::AccountId;

/// One measure's verdict, its one-line reason, and what it was based on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureResult<I> {
    pub colour: Colour,
    pub reason: String,
    pub inputs: I,
}

impl<I> MeasureResult<I> {
    pub fn new(colour: Colour, reason: impl Into<String>, inputs: I) -> Self {
        MeasureResult {
            colour,
            reason: reason.into(),
            inputs,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub account_id: AccountId,
    /// The scoring instant (`now`) every window was computed from.
    pub as_of: DateTime<Utc>,
    pub model_version: String,
    /// [`super::ScoringConfig::version`] of the config that produced this receipt.
    pub config_version: String,
    pub deployment: MeasureResult<DeploymentInputs>,
    pub engagement: MeasureResult<EngagementInputs>,
    pub adoption: MeasureResult<AdoptionInputs>,
    pub roi: MeasureResult<RoiInputs>,
    pub overall: Overall,
}

/// Where the detail lines of a measure start, under its reason.
const INDENT: &str = "                      ";

impl Receipt {
    pub fn colours(&self) -> PerMeasure<Colour> {
        PerMeasure::from_fn(|measure| self.colour(measure))
    }

    pub fn colour(&self, measure: Measure) -> Colour {
        match measure {
            Measure::Deployment => self.deployment.colour,
            Measure::Engagement => self.engagement.colour,
            Measure::Adoption => self.adoption.colour,
            Measure::Roi => self.roi.colour,
        }
    }

    pub fn reason(&self, measure: Measure) -> &str {
        match measure {
            Measure::Deployment => &self.deployment.reason,
            Measure::Engagement => &self.engagement.reason,
            Measure::Adoption => &self.adoption.reason,
            Measure::Roi => &self.roi.reason,
        }
    }

    /// A compact explanation for a terminal: a headline, then per measure its colour and
    /// reason followed by the windows, evidence and thresholds behind it, then the arithmetic.
    pub fn render_text(&self) -> String {
        let mut lines = vec![self.headline()];
        lines.extend(self.measure_lines(Measure::Deployment, Vec::new()));
        lines.extend(self.measure_lines(
            Measure::Engagement,
            engagement_details(&self.engagement.inputs),
        ));
        lines
            .extend(self.measure_lines(Measure::Adoption, adoption_details(&self.adoption.inputs)));
        lines.extend(self.measure_lines(Measure::Roi, roi_details(&self.roi.inputs)));
        lines.extend(overall_lines(&self.overall));
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    fn headline(&self) -> String {
        let score = match self.overall.score {
            Some(score) => format!("score {score}"),
            None => "no score".to_owned(),
        };
        format!(
            "account {}: {score}, band {} (as of {}; model {}, config {})",
            self.account_id,
            self.overall.band,
            instant(self.as_of),
            self.model_version,
            self.config_version
        )
    }

    fn measure_lines(&self, measure: Measure, details: Vec<String>) -> Vec<String> {
        let colour = self.colour(measure).as_str();
        let head = format!(
            "  {:<11} {colour:<7} {}",
            measure.as_str(),
            self.reason(measure)
        );
        let details = details.into_iter().map(|d| format!("{INDENT}{d}"));
        std::iter::once(head).chain(details).collect()
    }
}

fn engagement_details(inputs: &EngagementInputs) -> Vec<String> {
    let evidence = |label: &str, e: &Option<Evidence>| match e {
        Some(e) => format!("{label} {} on {}", e.activity_id, instant(e.occurred_at)),
        None => format!("{label} none"),
    };
    vec![
        window_text(&inputs.window),
        format!(
            "{}; {}",
            evidence("key-persona meeting", &inputs.key_persona_meeting),
            evidence("office hours", &inputs.office_hours)
        ),
        format!(
            "key-persona contacts: {}; other meetings: {}; office-hours no-shows: {}",
            inputs.key_persona_contacts, inputs.other_meetings, inputs.office_hours_no_shows
        ),
    ]
}

fn adoption_details(inputs: &AdoptionInputs) -> Vec<String> {
    let window = &inputs.window;
    let tenure = match (inputs.contract_start_date, inputs.tenure_days) {
        (Some(ocd), Some(days)) => format!("contract date {ocd}, day {days}"),
        _ => "contract date unknown".to_owned(),
    };
    let days: Vec<String> = inputs
        .features
        .iter()
        .map(|f| format!("{} {}", f.feature, f.days_active))
        .collect();
    vec![
        format!(
            "usage days {} to {} ({} days); adopted at {}+ active days",
            window.start,
            window.last_day(),
            window.days(),
            inputs.min_days_active
        ),
        format!("{tenure}; {}", stage_text(inputs.stage)),
        format!("active days: {}", days.join(", ")),
    ]
}

fn stage_text(stage: Option<StageApplied>) -> String {
    let Some(applied) = stage else {
        return "no stage applies".to_owned();
    };
    let name = format!(
        "stage {} from day {}",
        applied.index + 1,
        applied.stage.from_days
    );
    match applied.stage.targets {
        Some(t) => format!(
            "{name}: green at {}+, yellow at {}+",
            t.green_at, t.yellow_at
        ),
        None => format!("{name}: not judged"),
    }
}

fn roi_details(inputs: &RoiInputs) -> Vec<String> {
    let sent = match inputs.goal_survey_sent_at {
        Some(t) => format!("goal-survey email sent {}", instant(t)),
        None => format!(
            "no goal-survey email sent by {}",
            instant(inputs.survey_sent_by)
        ),
    };
    let mut lines = vec![
        window_text(&inputs.window),
        format!(
            "{sent} (an email counts as asking once it is {} days old)",
            inputs.survey_min_age_days
        ),
    ];
    if !inputs.answers.is_empty() {
        let answers: Vec<String> = inputs.answers.iter().map(answer_text).collect();
        lines.push(format!("answers: {}", answers.join(", ")));
    }
    if inputs.answers_outside_window > 0 {
        let count = inputs.answers_outside_window;
        lines.push(format!("{count} answers outside the window ignored"));
    }
    lines
}

/// `resp-1 2024-11-02 achieved`
fn answer_text(answer: &GoalAnswer) -> String {
    let verdict = match answer.goal_achieved {
        Some(true) => "achieved",
        Some(false) => "not achieved",
        None => "blank",
    };
    let day = answer.submitted_at.date_naive();
    format!("{} {day} {verdict}", answer.id)
}

fn overall_lines(overall: &Overall) -> Vec<String> {
    let bands = &overall.bands;
    let head = match &overall.arithmetic {
        Some(arithmetic) => format!(
            "  {:<11} {arithmetic} → {} (green from {}, yellow from {})",
            "overall", overall.band, bands.green_from, bands.yellow_from
        ),
        None => format!("  {:<11} {:<7} {}", "overall", "na", overall.reason),
    };
    let mut lines = vec![head];
    if overall.arithmetic.is_some() {
        lines.push(format!("{INDENT}{}", overall.reason));
        lines.push(format!(
            "{INDENT}weights after renormalisation: {}",
            shares(overall)
        ));
    }
    let points = overall.points;
    lines.push(format!(
        "{INDENT}points: green {}, yellow {}, red {}; at least {} measures needed",
        points.green, points.yellow, points.red, overall.min_measures
    ));
    lines
}

/// `deployment 25/75 = 33.3%, ...` for the measures that counted.
fn shares(overall: &Overall) -> String {
    let shares: Vec<String> = overall
        .parts
        .entries()
        .into_iter()
        .filter_map(|(measure, part)| {
            let share = part.share.as_ref()?;
            let total = overall.weight_used;
            Some(format!("{measure} {}/{total} = {share}", part.weight))
        })
        .collect();
    shares.join(", ")
}

fn window_text(window: &Window) -> String {
    format!(
        "window from {} to just before {}",
        instant(window.start),
        instant(window.end)
    )
}

/// `2025-01-15 00:00 UTC`, with seconds only when they are not zero.
fn instant(t: DateTime<Utc>) -> String {
    if t.second() == 0 && t.nanosecond() == 0 {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}
