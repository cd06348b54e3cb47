//! The `[tasks]` section: which rules open tasks, for whom, with what priority and due date.

use chrono_tz::Tz;
use serde::Deserialize;

use crate::model::OwnerId;
use crate::settings::ConfigError;

/// The longest look-back, cool-down or once-per period, in days (ten years).
const MAX_DAYS: u32 = 3650;
/// The furthest due date, in business days (about a year).
const MAX_DUE: u32 = 260;

/// A task's priority, as the contract spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTaskSettings {
    enabled: bool,
    fallback_owner_id: String,
    default_timezone: String,
    cooldown_days: u32,
    answer_lookback_days: u32,
    concurrency: usize,
    detractor: RawRule,
    turned_red: RawRule,
    promoter: RawPromoter,
    breaker: RawBreaker,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    enabled: bool,
    #[serde(default)]
    max_score: Option<u8>,
    priority: Priority,
    due_business_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPromoter {
    enabled: bool,
    min_score: u8,
    all_respondents: bool,
    priority: Priority,
    due_business_days: u32,
    once_per_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    #[serde(deserialize_with = "crate::settings::number_or_nan")]
    max_red_share: f64,
    min_accounts: usize,
}

/// One rule's switch, priority and due date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub enabled: bool,
    pub priority: Priority,
    pub due_business_days: u32,
}

/// The validated `[tasks]` section.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    pub enabled: bool,
    pub fallback_owner: Option<OwnerId>,
    pub default_timezone: Tz,
    pub cooldown_days: u32,
    pub answer_lookback_days: u32,
    pub concurrency: usize,
    pub detractor: Rule,
    /// NPS scores up to this one are detractors.
    pub detractor_max_score: u8,
    pub turned_red: Rule,
    pub promoter: Rule,
    /// NPS scores from this one up are promoters.
    pub promoter_min_score: u8,
    /// Ask every respondent for a review, not only promoters.
    pub review_all_respondents: bool,
    pub review_once_per_days: u32,
    pub breaker_share: f64,
    pub breaker_min_accounts: usize,
}

impl TaskSettings {
    pub fn from_raw(raw: RawTaskSettings) -> Result<TaskSettings, ConfigError> {
        let key = |name: &str| format!("tasks.{name}");
        let fallback_owner = match raw.fallback_owner_id.trim() {
            "" => None,
            id => Some(
                OwnerId::parse(id).map_err(|e| ConfigError::new(key("fallback_owner_id"), e))?,
            ),
        };
        let default_timezone = raw.default_timezone.parse::<Tz>().map_err(|_| {
            ConfigError::new(
                key("default_timezone"),
                format!("{:?} is not an IANA time zone", raw.default_timezone),
            )
        })?;
        let detractor_max_score = raw.detractor.max_score.unwrap_or(6);
        if detractor_max_score > 10 {
            return Err(ConfigError::new(key("detractor.max_score"), "must be 0-10"));
        }
        if raw.promoter.min_score > 10 {
            return Err(ConfigError::new(key("promoter.min_score"), "must be 0-10"));
        }
        crate::settings::share(&key("breaker.max_red_share"), raw.breaker.max_red_share)?;
        if raw.promoter.min_score <= detractor_max_score {
            return Err(ConfigError::new(
                key("promoter.min_score"),
                format!(
                    "{} must be above tasks.detractor.max_score ({detractor_max_score}): a \
                     score from {} to {detractor_max_score} would be a detractor and a \
                     promoter at once (to ask every respondent for a review, set \
                     tasks.promoter.all_respondents = true)",
                    raw.promoter.min_score, raw.promoter.min_score
                ),
            ));
        }
        if raw.concurrency == 0 {
            return Err(ConfigError::new(key("concurrency"), "must be at least 1"));
        }
        let days = [
            ("cooldown_days", raw.cooldown_days, MAX_DAYS),
            ("answer_lookback_days", raw.answer_lookback_days, MAX_DAYS),
            (
                "promoter.once_per_days",
                raw.promoter.once_per_days,
                MAX_DAYS,
            ),
            (
                "detractor.due_business_days",
                raw.detractor.due_business_days,
                MAX_DUE,
            ),
            (
                "turned_red.due_business_days",
                raw.turned_red.due_business_days,
                MAX_DUE,
            ),
            (
                "promoter.due_business_days",
                raw.promoter.due_business_days,
                MAX_DUE,
            ),
        ];
        for (name, value, maximum) in days {
            if value > maximum {
                return Err(ConfigError::new(
                    key(name),
                    format!("{value} is too large; the maximum is {maximum}"),
                ));
            }
        }
        Ok(TaskSettings {
            enabled: raw.enabled,
            fallback_owner,
            default_timezone,
            cooldown_days: raw.cooldown_days,
            answer_lookback_days: raw.answer_lookback_days,
            concurrency: raw.concurrency,
            detractor: rule(raw.detractor),
            detractor_max_score,
            turned_red: rule(raw.turned_red),
            promoter: Rule {
                enabled: raw.promoter.enabled,
                priority: raw.promoter.priority,
                due_business_days: raw.promoter.due_business_days,
            },
            promoter_min_score: raw.promoter.min_score,
            review_all_respondents: raw.promoter.all_respondents,
            review_once_per_days: raw.promoter.once_per_days,
            breaker_share: raw.breaker.max_red_share,
            breaker_min_accounts: raw.breaker.min_accounts,
        })
    }
}

fn rule(raw: RawRule) -> Rule {
    Rule {
        enabled: raw.enabled,
        priority: raw.priority,
        due_business_days: raw.due_business_days,
    }
}
