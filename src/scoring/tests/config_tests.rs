//! The `[scoring]` section: the shipped file, validation errors naming their key, and the
//! config version.

use crate::scoring::{RawScoringConfig, RawStage, ScoringConfig};
use crate::settings::ConfigError;

const SHIPPED: &str = include_str!("../../../config/default.toml");

/// The `[scoring]` table of a TOML document, as the settings loader will see it.
#[derive(serde::Deserialize)]
struct Document {
    scoring: RawScoringConfig,
}

fn error_of(edit: impl FnOnce(&mut RawScoringConfig)) -> ConfigError {
    let mut raw = RawScoringConfig::default();
    edit(&mut raw);
    ScoringConfig::from_raw(raw).expect_err("config should be rejected")
}

fn key_of(edit: impl FnOnce(&mut RawScoringConfig)) -> String {
    error_of(edit).key
}

#[test]
fn shipped_file_parses_validates_and_matches_the_defaults() {
    let document: Document = toml::from_str(SHIPPED).expect("config/default.toml parses");
    assert_eq!(document.scoring, RawScoringConfig::default());
    ScoringConfig::from_raw(document.scoring).expect("config/default.toml is valid");
}

#[test]
fn shipped_file_loads_through_the_config_crate() {
    let source = config::File::from_str(SHIPPED, config::FileFormat::Toml);
    let loaded = config::Config::builder()
        .add_source(source)
        .build()
        .unwrap();
    let raw: RawScoringConfig = loaded.get("scoring").expect("[scoring] deserialises");
    assert_eq!(raw, RawScoringConfig::default());
}

#[test]
fn unknown_keys_are_rejected() {
    let text = SHIPPED.replace("min_measures = 2", "min_measures = 2\nmin_measure = 3");
    let error = toml::from_str::<Document>(&text)
        .err()
        .expect("typo is rejected");
    assert!(error.to_string().contains("min_measure"), "{error}");
}

#[test]
fn weights_must_be_non_negative_and_not_all_zero() {
    assert_eq!(key_of(|raw| raw.weights.roi = -1), "scoring.weights.roi");
    let all_zero = error_of(|raw| {
        raw.weights.deployment = 0;
        raw.weights.engagement = 0;
        raw.weights.adoption = 0;
        raw.weights.roi = 0;
    });
    assert_eq!(all_zero.key, "scoring.weights");
    assert!(all_zero.problem.contains("all weights are 0"));
}

#[test]
fn stage_thresholds_are_checked_and_named() {
    let error = error_of(|raw| raw.adoption.stages[2].yellow_at = Some(4));
    assert_eq!(error.key, "scoring.adoption.stages[2].yellow_at");
    assert_eq!(error.problem, "must be between 0 and 3, got 4 (green_at)");

    let error = error_of(|raw| raw.adoption.stages[2].green_at = Some(6));
    assert_eq!(error.key, "scoring.adoption.stages[2].green_at");
    assert!(
        error.problem.contains("5 key features"),
        "{}",
        error.problem
    );

    let key = key_of(|raw| raw.adoption.stages[1].green_at = None);
    assert_eq!(key, "scoring.adoption.stages[1].green_at");
}

#[test]
fn stages_start_at_zero_and_increase() {
    let key = key_of(|raw| raw.adoption.stages[0].from_days = 1);
    assert_eq!(key, "scoring.adoption.stages[0].from_days");

    let key = key_of(|raw| raw.adoption.stages[2].from_days = 30);
    assert_eq!(key, "scoring.adoption.stages[2].from_days");

    assert_eq!(
        key_of(|raw| raw.adoption.stages.clear()),
        "scoring.adoption.stages"
    );

    let unjudged_later_stage = RawStage {
        from_days: 400,
        green_at: None,
        yellow_at: None,
    };
    let mut raw = RawScoringConfig::default();
    raw.adoption.stages.push(unjudged_later_stage);
    assert!(ScoringConfig::from_raw(raw).is_ok());
}

#[test]
fn bands_and_points_are_ordered_and_bounded() {
    let error = error_of(|raw| raw.bands.yellow_from = 80);
    assert_eq!(error.key, "scoring.bands.yellow_from");
    assert!(error.problem.contains("yellow_from <= green_from"));
    assert_eq!(
        key_of(|raw| raw.bands.green_from = 101),
        "scoring.bands.green_from"
    );
    assert_eq!(key_of(|raw| raw.points.green = 101), "scoring.points.green");
    assert_eq!(key_of(|raw| raw.points.red = 60), "scoring.points.yellow");
    assert_eq!(
        key_of(|raw| raw.points.yellow = 120),
        "scoring.points.yellow"
    );
    assert_eq!(key_of(|raw| raw.points.red = -5), "scoring.points.red");
}

#[test]
fn personas_and_types_must_name_contract_values() {
    let error = error_of(|raw| raw.engagement.key_personas = vec!["ceo".into()]);
    assert_eq!(error.key, "scoring.engagement.key_personas[0]");
    assert!(
        error
            .problem
            .contains("executive_sponsor, champion, admin, end_user")
    );

    let key = key_of(|raw| raw.engagement.meeting_types.push("webinar".into()));
    assert_eq!(key, "scoring.engagement.meeting_types[2]");
    let key = key_of(|raw| raw.engagement.key_personas.clear());
    assert_eq!(key, "scoring.engagement.key_personas");
    assert_eq!(
        key_of(|raw| raw.engagement.webinar_series = "  ".into()),
        "scoring.engagement.webinar_series"
    );
}

#[test]
fn key_features_are_non_empty_and_distinct() {
    let key = key_of(|raw| raw.adoption.key_features.push("Alerts".into()));
    assert_eq!(key, "scoring.adoption.key_features[5]");
    let key = key_of(|raw| raw.adoption.key_features.clear());
    assert_eq!(key, "scoring.adoption.key_features");
}

#[test]
fn windows_and_counts_are_positive() {
    assert_eq!(
        key_of(|raw| raw.engagement.window_days = 0),
        "scoring.engagement.window_days"
    );
    assert_eq!(
        key_of(|raw| raw.adoption.window_days = -3),
        "scoring.adoption.window_days"
    );
    assert_eq!(
        key_of(|raw| raw.roi.window_days = 0),
        "scoring.roi.window_days"
    );
    assert_eq!(
        key_of(|raw| raw.adoption.min_days_active = 0),
        "scoring.adoption.min_days_active"
    );
    assert_eq!(
        key_of(|raw| raw.adoption.min_days_active = 31),
        "scoring.adoption.min_days_active"
    );
    assert_eq!(
        key_of(|raw| raw.roi.survey_min_age_days = 365),
        "scoring.roi.survey_min_age_days"
    );
    assert_eq!(key_of(|raw| raw.min_measures = 0), "scoring.min_measures");
    assert_eq!(key_of(|raw| raw.min_measures = 5), "scoring.min_measures");
    assert_eq!(
        key_of(|raw| raw.model_version = "".into()),
        "scoring.model_version"
    );
}

#[test]
fn error_message_names_the_key() {
    let error = error_of(|raw| raw.weights.roi = -1);
    assert_eq!(
        error.to_string(),
        "configuration key `scoring.weights.roi`: must be between 0 and 4294967295, got -1"
    );
}

#[test]
fn version_is_a_stable_short_digest_of_the_validated_model() {
    let default = ScoringConfig::from_raw(RawScoringConfig::default()).unwrap();
    let version = default.version();
    assert_eq!(version.len(), 12);
    assert!(version.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        version,
        ScoringConfig::from_raw(RawScoringConfig::default())
            .unwrap()
            .version()
    );

    let mut spaced = RawScoringConfig::default();
    spaced.engagement.webinar_series = " office_hours ".into();
    assert_eq!(ScoringConfig::from_raw(spaced).unwrap().version(), version);

    let mut heavier = RawScoringConfig::default();
    heavier.weights.roi = 30;
    assert_ne!(ScoringConfig::from_raw(heavier).unwrap().version(), version);
}
