//! The `[surveys]` section: who gets which survey, when, and how many per cycle and day.

use std::path::PathBuf;

use chrono::TimeDelta;
use chrono_tz::Tz;
use serde::Deserialize;

use super::window::SendWindow;
use crate::model::Persona;
use crate::settings::ConfigError;

/// Personas the goal survey may go to, as the config spells them.
const PERSONAS: [Persona; 5] = [
    Persona::ExecutiveSponsor,
    Persona::Champion,
    Persona::Admin,
    Persona::EndUser,
    Persona::Other,
];

/// The longest grace period: a wave's window must close long before the next wave of the
/// same survey is due (NPS waves are about 90 days apart), so one wave per survey is ever open.
const MAX_GRACE_DAYS: u32 = 60;
const MAX_FATIGUE_DAYS: u32 = 90;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSurveySettings {
    enabled: bool,
    product_name: String,
    goal_personas: Vec<String>,
    grace_days: u32,
    fatigue_days: u32,
    default_timezone: String,
    max_per_cycle: u32,
    max_per_day: u32,
    templates_dir: String,
    send_window: RawSendWindow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSendWindow {
    days: Vec<String>,
    start: String,
    end: String,
}

/// The validated `[surveys]` section.
#[derive(Debug, Clone)]
pub struct SurveySettings {
    pub enabled: bool,
    pub product_name: String,
    pub goal_personas: Vec<Persona>,
    pub grace: TimeDelta,
    pub fatigue: TimeDelta,
    pub default_timezone: Tz,
    pub max_per_cycle: u32,
    pub max_per_day: u32,
    /// Overrides for the built-in templates, if configured.
    pub templates_dir: Option<PathBuf>,
    pub send_window: SendWindow,
}

impl SurveySettings {
    pub fn from_raw(raw: RawSurveySettings) -> Result<Self, ConfigError> {
        let key = |name: &str| format!("surveys.{name}");
        if raw.product_name.trim().is_empty() {
            return Err(ConfigError::new(key("product_name"), "is empty"));
        }
        let goal_personas = personas(&raw.goal_personas)?;
        if !(1..=MAX_GRACE_DAYS).contains(&raw.grace_days) {
            return Err(ConfigError::new(
                key("grace_days"),
                format!("{} is outside 1..={MAX_GRACE_DAYS}", raw.grace_days),
            ));
        }
        if raw.fatigue_days > MAX_FATIGUE_DAYS {
            return Err(ConfigError::new(
                key("fatigue_days"),
                format!("{} is more than {MAX_FATIGUE_DAYS}", raw.fatigue_days),
            ));
        }
        let default_timezone = raw.default_timezone.trim().parse::<Tz>().map_err(|_| {
            ConfigError::new(
                key("default_timezone"),
                format!("{:?} is not an IANA time zone", raw.default_timezone),
            )
        })?;
        for (name, value) in [
            ("max_per_cycle", raw.max_per_cycle),
            ("max_per_day", raw.max_per_day),
        ] {
            if value == 0 {
                return Err(ConfigError::new(
                    key(name),
                    "must be at least 1; to stop sending surveys, set surveys.enabled = false",
                ));
            }
        }
        if raw.max_per_day < raw.max_per_cycle {
            return Err(ConfigError::new(
                key("max_per_day"),
                "must be at least surveys.max_per_cycle",
            ));
        }
        let templates_dir = match raw.templates_dir.trim() {
            "" => None,
            dir => Some(PathBuf::from(dir)),
        };
        let w = raw.send_window;
        Ok(Self {
            enabled: raw.enabled,
            product_name: raw.product_name.trim().to_owned(),
            goal_personas,
            grace: TimeDelta::days(raw.grace_days.into()),
            fatigue: TimeDelta::days(raw.fatigue_days.into()),
            default_timezone,
            max_per_cycle: raw.max_per_cycle,
            max_per_day: raw.max_per_day,
            templates_dir,
            send_window: SendWindow::parse(&key("send_window"), &w.days, &w.start, &w.end)?,
        })
    }
}

fn personas(raw: &[String]) -> Result<Vec<Persona>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            "surveys.goal_personas",
            "name at least one persona",
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, name)| {
            PERSONAS
                .into_iter()
                .find(|p| p.as_str().eq_ignore_ascii_case(name.trim()))
                .ok_or_else(|| {
                    let choices: Vec<&str> = PERSONAS.iter().map(|p| p.as_str()).collect();
                    ConfigError::new(
                        format!("surveys.goal_personas[{i}]"),
                        format!("{name:?} is not one of {}", choices.join(", ")),
                    )
                })
        })
        .collect()
}
