//! The `[scoring]` configuration: the raw shape read from TOML, and the validated
//! [`ScoringConfig`] the engine runs on.
//!
//! Every number of the D.E.A.R. model lives here rather than in code, so a team can tune its
//! model without a release. Validation happens once, at start-up, and each problem names its
//! dotted key (`scoring.adoption.stages[2].green_at`) so the operator knows what to fix.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::types::{Colour, Measure, PerMeasure, Score};
use crate::model::{ActivityType, Persona};
use crate::settings::ConfigError;

/// The longest window accepted, a century: far beyond any sensible model, and small enough
/// that date arithmetic on CRM dates (1900-2100) can never overflow.
const MAX_WINDOW_DAYS: i64 = 36_500;

/// How many hex characters of the config digest a receipt carries: enough to tell configs
/// apart in one installation, short enough to read aloud.
const VERSION_CHARS: usize = 12;

/// Personas a config may name as key personas. `other` is left out on purpose: it is the
/// catch-all for roles the contract does not know, and making unknown roles "key" would make
/// engagement depend on whatever a CRM happens to call people.
const PERSONAS: [Persona; 4] = [
    Persona::ExecutiveSponsor,
    Persona::Champion,
    Persona::Admin,
    Persona::EndUser,
];

/// Activity types that can be a meeting. Webinars are counted through `webinar_series`
/// instead, and their rows are `attended`, never `completed`.
const MEETING_TYPES: [ActivityType; 2] = [ActivityType::Call, ActivityType::Meeting];

/// The `[scoring]` section as written in TOML, before validation. Integers are read as `i64`
/// so that a negative or oversized value reaches validation and gets an error naming its key,
/// instead of a bare deserialisation error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScoringConfig {
    pub model_version: String,
    pub min_measures: i64,
    pub engagement: RawEngagement,
    pub adoption: RawAdoption,
    pub roi: RawRoi,
    pub weights: RawWeights,
    pub points: RawPoints,
    pub bands: RawBands,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngagement {
    pub window_days: i64,
    pub key_personas: Vec<String>,
    pub meeting_types: Vec<String>,
    pub webinar_series: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdoption {
    pub key_features: Vec<String>,
    pub window_days: i64,
    pub min_days_active: i64,
    pub stages: Vec<RawStage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub from_days: i64,
    #[serde(default)]
    pub green_at: Option<i64>,
    #[serde(default)]
    pub yellow_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoi {
    pub window_days: i64,
    pub survey_min_age_days: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeights {
    pub deployment: i64,
    pub engagement: i64,
    pub adoption: i64,
    pub roi: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoints {
    pub green: i64,
    pub yellow: i64,
    pub red: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBands {
    pub green_from: i64,
    pub yellow_from: i64,
}

impl Default for RawScoringConfig {
    /// The brief's defaults, identical to `config/default.toml` (a test keeps the two equal).
    fn default() -> Self {
        let stage = |from_days, targets: Option<(i64, i64)>| RawStage {
            from_days,
            green_at: targets.map(|(green, _)| green),
            yellow_at: targets.map(|(_, yellow)| yellow),
        };
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        RawScoringConfig {
            model_version: "dear-1".into(),
            min_measures: 2,
            engagement: RawEngagement {
                window_days: 90,
                key_personas: strings(&["executive_sponsor"]),
                meeting_types: strings(&["call", "meeting"]),
                webinar_series: "office_hours".into(),
            },
            adoption: RawAdoption {
                key_features: strings(&[
                    "dashboards",
                    "alerts",
                    "integrations",
                    "reports",
                    "automations",
                ]),
                window_days: 30,
                min_days_active: 4,
                stages: vec![
                    stage(0, None),
                    stage(30, Some((2, 1))),
                    stage(90, Some((3, 2))),
                    stage(180, Some((4, 3))),
                ],
            },
            roi: RawRoi {
                window_days: 365,
                survey_min_age_days: 14,
            },
            weights: RawWeights {
                deployment: 25,
                engagement: 25,
                adoption: 25,
                roi: 25,
            },
            points: RawPoints {
                green: 100,
                yellow: 50,
                red: 0,
            },
            bands: RawBands {
                green_from: 75,
                yellow_from: 50,
            },
        }
    }
}

/// The validated scoring model. It can only be made by [`ScoringConfig::from_raw`], so code
/// holding one can rely on every invariant listed there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScoringConfig {
    model_version: String,
    min_measures: u8,
    engagement: EngagementConfig,
    adoption: AdoptionConfig,
    roi: RoiConfig,
    weights: PerMeasure<u32>,
    points: Points,
    bands: Bands,
    /// Derived from everything above; not part of the canonical form it is computed from.
    #[serde(skip)]
    version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementConfig {
    pub window_days: u32,
    pub key_personas: Vec<Persona>,
    pub meeting_types: Vec<ActivityType>,
    /// Matched against an activity's `series` ignoring ASCII case.
    pub webinar_series: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptionConfig {
    /// Matched against a usage row's `feature` ignoring ASCII case; facts and receipts use the
    /// spelling written here.
    pub key_features: Vec<String>,
    pub window_days: u32,
    pub min_days_active: u32,
    /// Ordered by `from_days`, the first starting at day 0.
    pub stages: Vec<Stage>,
}

/// A tenure stage: from `from_days` of tenure until the next stage starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub from_days: u32,
    /// `None` means the stage is not judged (N/A), as in onboarding.
    #[serde(flatten)]
    pub targets: Option<Targets>,
}

/// How many adopted key features a stage expects, with `yellow_at <= green_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    pub green_at: u32,
    pub yellow_at: u32,
}

impl Targets {
    pub fn colour(self, adopted: u32) -> Colour {
        if adopted >= self.green_at {
            Colour::Green
        } else if adopted >= self.yellow_at {
            Colour::Yellow
        } else {
            Colour::Red
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoiConfig {
    pub window_days: u32,
    /// A goal survey younger than this has not had a fair chance to be answered, so it does
    /// not yet count as "asked".
    pub survey_min_age_days: u32,
}

/// Points per colour, each in 0..=100 with `green >= yellow >= red`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Points {
    pub green: u8,
    pub yellow: u8,
    pub red: u8,
}

impl Points {
    /// `None` for N/A, which earns no points because it is left out altogether.
    pub fn of(self, colour: Colour) -> Option<u8> {
        match colour {
            Colour::Green => Some(self.green),
            Colour::Yellow => Some(self.yellow),
            Colour::Red => Some(self.red),
            Colour::Na => None,
        }
    }
}

/// Score bands, with `yellow_from <= green_from <= 100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bands {
    pub green_from: u8,
    pub yellow_from: u8,
}

impl Bands {
    pub fn of(self, score: Option<Score>) -> Colour {
        match score.map(Score::get) {
            None => Colour::Na,
            Some(value) if value >= self.green_from => Colour::Green,
            Some(value) if value >= self.yellow_from => Colour::Yellow,
            Some(_) => Colour::Red,
        }
    }
}

impl ScoringConfig {
    /// Validates the raw section. Checks: windows in 1..=36500 days; personas and meeting
    /// types name contract values; key features non-empty without duplicates; stages ordered
    /// by `from_days` from 0, each with both thresholds or neither, `yellow_at <= green_at <=`
    /// the number of key features; weights non-negative and not all zero; points in 0..=100
    /// with green >= yellow >= red; bands with yellow_from <= green_from <= 100;
    /// `min_measures` in 1..=4.
    pub fn from_raw(raw: RawScoringConfig) -> Result<ScoringConfig, ConfigError> {
        let model_version = non_blank("scoring.model_version", &raw.model_version)?;
        let min_measures = number("scoring.min_measures", raw.min_measures, 1..=4)?;
        let engagement = engagement(&raw.engagement)?;
        let adoption = adoption(&raw.adoption)?;
        let roi = roi(&raw.roi)?;
        let weights = weights(&raw.weights)?;
        let points = points(&raw.points)?;
        let bands = bands(&raw.bands)?;

        let mut config = ScoringConfig {
            model_version,
            min_measures,
            engagement,
            adoption,
            roi,
            weights,
            points,
            bands,
            version: String::new(),
        };
        config.version = config.digest();
        Ok(config)
    }

    /// A short, stable fingerprint of the validated model, so a receipt can say which
    /// configuration produced it. Two configs that validate to the same model share it.
    pub fn version(&self) -> String {
        self.version.clone()
    }

    pub fn model_version(&self) -> &str {
        &self.model_version
    }

    pub fn min_measures(&self) -> u8 {
        self.min_measures
    }

    pub fn engagement(&self) -> &EngagementConfig {
        &self.engagement
    }

    pub fn adoption(&self) -> &AdoptionConfig {
        &self.adoption
    }

    pub fn roi(&self) -> RoiConfig {
        self.roi
    }

    pub fn weights(&self) -> PerMeasure<u32> {
        self.weights
    }

    pub fn weight(&self, measure: Measure) -> u32 {
        *self.weights.get(measure)
    }

    pub fn points(&self) -> Points {
        self.points
    }

    pub fn bands(&self) -> Bands {
        self.bands
    }

    /// The canonical JSON form the version is computed from, stored beside each version so
    /// an old receipt's rules can be read back.
    pub fn canonical_json(&self) -> String {
        // Plain structs of strings and integers always serialise.
        serde_json::to_string(self).expect("a validated config serialises to JSON")
    }

    /// SHA-256 of the canonical JSON form (fields in declaration order, normalised values).
    fn digest(&self) -> String {
        let hash = hex::encode(Sha256::digest(self.canonical_json().as_bytes()));
        hash[..VERSION_CHARS].to_owned()
    }
}

fn engagement(raw: &RawEngagement) -> Result<EngagementConfig, ConfigError> {
    let key = "scoring.engagement";
    Ok(EngagementConfig {
        window_days: window(&format!("{key}.window_days"), raw.window_days)?,
        key_personas: enum_list(&format!("{key}.key_personas"), &raw.key_personas, &PERSONAS)?,
        meeting_types: enum_list(
            &format!("{key}.meeting_types"),
            &raw.meeting_types,
            &MEETING_TYPES,
        )?,
        webinar_series: non_blank(&format!("{key}.webinar_series"), &raw.webinar_series)?,
    })
}

fn adoption(raw: &RawAdoption) -> Result<AdoptionConfig, ConfigError> {
    let key = "scoring.adoption";
    let key_features = names(&format!("{key}.key_features"), &raw.key_features)?;
    let window_days = window(&format!("{key}.window_days"), raw.window_days)?;
    let min_days_active = number(
        &format!("{key}.min_days_active"),
        raw.min_days_active,
        1..=i64::from(window_days),
    )?;
    let feature_count = u32::try_from(key_features.len()).unwrap_or(u32::MAX);
    let stages = stages(&format!("{key}.stages"), &raw.stages, feature_count)?;
    Ok(AdoptionConfig {
        key_features,
        window_days,
        min_days_active,
        stages,
    })
}

fn stages(key: &str, raw: &[RawStage], features: u32) -> Result<Vec<Stage>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            key,
            "needs at least one stage, from day 0",
        ));
    }
    let mut stages: Vec<Stage> = Vec::with_capacity(raw.len());
    for (index, raw_stage) in raw.iter().enumerate() {
        let stage_key = format!("{key}[{index}]");
        let stage = stage(&stage_key, raw_stage, features)?;
        let from_key = format!("{stage_key}.from_days");
        match stages.last() {
            None if stage.from_days != 0 => {
                return Err(ConfigError::new(
                    from_key,
                    "the first stage must start at 0",
                ));
            }
            Some(previous) if stage.from_days <= previous.from_days => {
                let problem = format!(
                    "must be greater than the previous stage's from_days ({})",
                    previous.from_days
                );
                return Err(ConfigError::new(from_key, problem));
            }
            _ => stages.push(stage),
        }
    }
    Ok(stages)
}

fn stage(key: &str, raw: &RawStage, features: u32) -> Result<Stage, ConfigError> {
    let from_days = number(
        &format!("{key}.from_days"),
        raw.from_days,
        0..=MAX_WINDOW_DAYS,
    )?;
    let targets = match (raw.green_at, raw.yellow_at) {
        (None, None) => None,
        (Some(_), None) => {
            let problem = "is missing: a stage sets both green_at and yellow_at, or neither (N/A)";
            return Err(ConfigError::new(format!("{key}.yellow_at"), problem));
        }
        (None, Some(_)) => {
            let problem = "is missing: a stage sets both green_at and yellow_at, or neither (N/A)";
            return Err(ConfigError::new(format!("{key}.green_at"), problem));
        }
        (Some(green), Some(yellow)) => Some(targets(key, green, yellow, features)?),
    };
    Ok(Stage { from_days, targets })
}

fn targets(key: &str, green: i64, yellow: i64, features: u32) -> Result<Targets, ConfigError> {
    let green_key = format!("{key}.green_at");
    let green_at = number(&green_key, green, 0..=i64::from(features)).map_err(|error| {
        let problem = format!("{} (there are {features} key features)", error.problem);
        ConfigError::new(&green_key, problem)
    })?;
    let yellow_at = number(&format!("{key}.yellow_at"), yellow, 0..=i64::from(green_at))
        .map_err(|error| ConfigError::new(error.key, format!("{} (green_at)", error.problem)))?;
    Ok(Targets {
        green_at,
        yellow_at,
    })
}

fn roi(raw: &RawRoi) -> Result<RoiConfig, ConfigError> {
    let window_days = window("scoring.roi.window_days", raw.window_days)?;
    let survey_min_age_days = number(
        "scoring.roi.survey_min_age_days",
        raw.survey_min_age_days,
        0..=i64::from(window_days) - 1,
    )?;
    Ok(RoiConfig {
        window_days,
        survey_min_age_days,
    })
}

fn weights(raw: &RawWeights) -> Result<PerMeasure<u32>, ConfigError> {
    let weight = |measure: Measure, value: i64| {
        let key = format!("scoring.weights.{measure}");
        number(&key, value, 0..=i64::from(u32::MAX))
    };
    let weights = PerMeasure {
        deployment: weight(Measure::Deployment, raw.deployment)?,
        engagement: weight(Measure::Engagement, raw.engagement)?,
        adoption: weight(Measure::Adoption, raw.adoption)?,
        roi: weight(Measure::Roi, raw.roi)?,
    };
    if Measure::ALL.iter().all(|&m| *weights.get(m) == 0) {
        let problem = "all weights are 0: at least one measure must count";
        return Err(ConfigError::new("scoring.weights", problem));
    }
    Ok(weights)
}

fn points(raw: &RawPoints) -> Result<Points, ConfigError> {
    let point = |name: &str, value: i64, floor: i64| {
        let key = format!("scoring.points.{name}");
        number::<u8>(&key, value, floor..=100)
    };
    let red = point("red", raw.red, 0)?;
    let yellow = point("yellow", raw.yellow, i64::from(red))
        .map_err(|e| ConfigError::new(e.key, format!("{} (red <= yellow)", e.problem)))?;
    let green = point("green", raw.green, i64::from(yellow))
        .map_err(|e| ConfigError::new(e.key, format!("{} (yellow <= green)", e.problem)))?;
    Ok(Points { green, yellow, red })
}

fn bands(raw: &RawBands) -> Result<Bands, ConfigError> {
    let green_from: u8 = number("scoring.bands.green_from", raw.green_from, 0..=100)?;
    let yellow_from: u8 = number(
        "scoring.bands.yellow_from",
        raw.yellow_from,
        0..=i64::from(green_from),
    )
    .map_err(|e| ConfigError::new(e.key, format!("{} (yellow_from <= green_from)", e.problem)))?;
    Ok(Bands {
        green_from,
        yellow_from,
    })
}

fn window(key: &str, days: i64) -> Result<u32, ConfigError> {
    number(key, days, 1..=MAX_WINDOW_DAYS)
}

/// An integer that must lie in `range`, converted to the type the model keeps it in; the
/// error states the range and the value found.
fn number<T: TryFrom<i64>>(
    key: &str,
    value: i64,
    range: RangeInclusive<i64>,
) -> Result<T, ConfigError> {
    let (low, high) = (*range.start(), *range.end());
    if high < low {
        let problem = format!("no value is valid here (the range {low}..={high} is empty)");
        return Err(ConfigError::new(key, problem));
    }
    if !range.contains(&value) {
        let problem = format!("must be between {low} and {high}, got {value}");
        return Err(ConfigError::new(key, problem));
    }
    T::try_from(value).map_err(|_| ConfigError::new(key, format!("{value} is out of range")))
}

fn non_blank(key: &str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ConfigError::new(key, "must not be empty"));
    }
    Ok(trimmed.to_owned())
}

/// A non-empty list of distinct, non-blank names; duplicates are found ignoring ASCII case
/// because matching ignores it too.
fn names(key: &str, raw: &[String]) -> Result<Vec<String>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(key, "must list at least one name"));
    }
    let mut seen = HashSet::new();
    let mut names = Vec::with_capacity(raw.len());
    for (index, value) in raw.iter().enumerate() {
        let item_key = format!("{key}[{index}]");
        let name = non_blank(&item_key, value)?;
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(ConfigError::new(
                item_key,
                format!("{name:?} is listed twice"),
            ));
        }
        names.push(name);
    }
    Ok(names)
}

/// Something a config names by its contract spelling (`executive_sponsor`, `call`).
trait Named: Copy + PartialEq {
    fn name(self) -> &'static str;
}

impl Named for Persona {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Named for ActivityType {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// Parses a list of names into `allowed` values, naming the offending item and the choices.
fn enum_list<T: Named>(key: &str, raw: &[String], allowed: &[T]) -> Result<Vec<T>, ConfigError> {
    let mut values = Vec::with_capacity(raw.len());
    for (index, name) in names(key, raw)?.iter().enumerate() {
        let found = allowed.iter().find(|v| v.name().eq_ignore_ascii_case(name));
        let Some(&value) = found else {
            let choices: Vec<&str> = allowed.iter().map(|v| v.name()).collect();
            let problem = format!("{name:?} is not one of {}", choices.join(", "));
            return Err(ConfigError::new(format!("{key}[{index}]"), problem));
        };
        values.push(value);
    }
    Ok(values)
}
