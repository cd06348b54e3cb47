//! Engagement: in the window, did a key persona have a completed call/meeting with us, and
//! did someone from the account attend the office-hours webinar?

use serde::{Deserialize, Serialize};

use super::config::ScoringConfig;
use super::facts::{AccountFacts, Evidence};
use super::receipt::MeasureResult;
use super::types::Colour;
use super::windows::{Window, Windows};
use crate::model::{ActivityType, Persona};

/// What the engagement verdict was based on, with the criteria applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementInputs {
    pub window: Window,
    pub key_personas: Vec<Persona>,
    pub meeting_types: Vec<ActivityType>,
    pub webinar_series: String,
    /// Live key-persona contacts on record.
    pub key_persona_contacts: u32,
    pub key_persona_meeting: Option<Evidence>,
    pub other_meetings: u32,
    pub office_hours: Option<Evidence>,
    pub office_hours_no_shows: u32,
}

/// Both: GREEN. One of the two: YELLOW. Neither: RED. Engagement is never N/A: having no
/// contact with the account is itself the finding.
pub(super) fn judge(
    facts: &AccountFacts,
    config: &ScoringConfig,
    windows: &Windows,
) -> MeasureResult<EngagementInputs> {
    let inputs = inputs(facts, config, windows);
    let met = inputs.key_persona_meeting.is_some();
    let attended = inputs.office_hours.is_some();
    let colour = match (met, attended) {
        (true, true) => Colour::Green,
        (false, false) => Colour::Red,
        _ => Colour::Yellow,
    };
    let reason = format!("{}; {}", meeting_reason(&inputs), webinar_reason(&inputs));
    MeasureResult::new(colour, reason, inputs)
}

/// Collects the inputs, dropping evidence outside the window: facts built by hand, or kept
/// from an earlier run, must not count stale meetings.
fn inputs(facts: &AccountFacts, config: &ScoringConfig, windows: &Windows) -> EngagementInputs {
    let engagement = config.engagement();
    let window = windows.engagement;
    let in_window =
        |evidence: &Option<Evidence>| evidence.clone().filter(|e| window.contains(e.occurred_at));
    EngagementInputs {
        window,
        key_personas: engagement.key_personas.clone(),
        meeting_types: engagement.meeting_types.clone(),
        webinar_series: engagement.webinar_series.clone(),
        key_persona_contacts: facts.key_personas,
        key_persona_meeting: in_window(&facts.key_persona_meeting),
        other_meetings: facts.other_meetings,
        office_hours: in_window(&facts.office_hours),
        office_hours_no_shows: facts.office_hours_no_shows,
    }
}

fn meeting_reason(inputs: &EngagementInputs) -> String {
    let personas = join(inputs.key_personas.iter().map(|p| p.as_str()), " or ");
    let types = join(inputs.meeting_types.iter().map(|t| t.as_str()), "/");
    if let Some(meeting) = &inputs.key_persona_meeting {
        let day = meeting.occurred_at.date_naive();
        return format!("completed {personas} {types} on {day}");
    }
    let days = window_days(&inputs.window);
    let mut reason = format!("no completed {personas} {types} in the last {days} days");
    if inputs.key_persona_contacts == 0 {
        reason.push_str(&format!(" (no {personas} contact on record)"));
    } else if inputs.other_meetings > 0 {
        let count = inputs.other_meetings;
        reason.push_str(&format!(" ({count} took place, none with {personas})"));
    }
    reason
}

fn webinar_reason(inputs: &EngagementInputs) -> String {
    let series = inputs.webinar_series.replace('_', " ");
    if let Some(session) = &inputs.office_hours {
        let day = session.occurred_at.date_naive();
        return format!("attended {series} on {day}");
    }
    let days = window_days(&inputs.window);
    let mut reason = format!("no {series} attended in the last {days} days");
    if inputs.office_hours_no_shows > 0 {
        let count = inputs.office_hours_no_shows;
        let noun = plural(count, "no-show", "no-shows");
        reason.push_str(&format!(" ({count} {noun})"));
    }
    reason
}

fn window_days(window: &Window) -> i64 {
    (window.end - window.start).num_days()
}

fn join<'a>(items: impl Iterator<Item = &'a str>, separator: &str) -> String {
    items.collect::<Vec<_>>().join(separator)
}

fn plural(count: u32, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 { one } else { many }
}
