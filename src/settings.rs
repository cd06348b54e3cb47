//! touchpoint's configuration: loading, validation, and the typed values the rest of the crate
//! uses.
//!
//! Settings come from `config/default.toml` (embedded in the binary), an optional user file named
//! with `--config`, and environment overrides `TOUCHPOINT__SECTION__KEY`. Everything is converted
//! to typed values right after loading; the first problem stops start-up with a [`ConfigError`]
//! that names the key.

use std::fmt;

/// A configuration problem, naming the key (dotted path, e.g. `scoring.weights.roi`) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration key `{}`: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use std::sync::Arc;

use crate::daemon::settings::{DaemonSettings, HttpSettings, RawDaemonSettings, RawHttpSettings};
use crate::mail::settings::{MailSettings, RawMailSettings};
use crate::scoring::{RawScoringConfig, ScoringConfig};
use crate::surveys::settings::{RawSurveySettings, SurveySettings};
use crate::surveys::templates::Templates;
use crate::tasks::{RawTaskSettings, TaskSettings};
use crate::web::settings::{RawWebSettings, WebSettings};

/// The checked-in defaults, embedded so the binary runs with no files beside it.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The environment variable that holds the CRM API token. Secrets are never read from files.
pub const TOKEN_VARIABLE: &str = "TOUCHPOINT_SOURCE_TOKEN";

/// Every setting, typed and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: SourceSettings,
    pub scoring: ScoringConfig,
    pub tasks: TaskSettings,
    pub surveys: SurveySettings,
    pub mail: MailSettings,
    pub web: WebSettings,
    /// The survey emails and answer pages, loaded and checked against sample data.
    pub templates: Arc<Templates>,
    pub store: StoreSettings,
    pub writeback: WritebackSettings,
    pub cycle: CycleSettings,
    pub log: LogSettings,
    pub daemon: DaemonSettings,
    pub http: HttpSettings,
}

/// Where the book is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Rest,
    Csv { dir: PathBuf },
}

#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub kind: SourceKind,
    pub base_url: Url,
    pub page_size: u32,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_body_bytes: u64,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub max_retry_after: Duration,
    pub requests_per_second: u32,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub busy_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct WritebackSettings {
    pub enabled: bool,
    pub batch_size: usize,
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct CycleSettings {
    /// A pull that returns fewer accounts than this share of the last good pull is treated as
    /// incomplete.
    pub min_book_share: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    source: RawSource,
    scoring: RawScoringConfig,
    tasks: RawTaskSettings,
    surveys: RawSurveySettings,
    mail: RawMailSettings,
    web: RawWebSettings,
    store: RawStore,
    writeback: RawWriteback,
    cycle: RawCycle,
    log: RawLog,
    daemon: RawDaemonSettings,
    http: RawHttpSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: String,
    base_url: String,
    csv_dir: String,
    page_size: u32,
    connect_timeout_secs: u64,
    request_timeout_secs: u64,
    max_body_bytes: u64,
    max_retries: u32,
    backoff_base_ms: u64,
    backoff_max_ms: u64,
    max_retry_after_secs: u64,
    requests_per_second: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: String,
    busy_timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWriteback {
    enabled: bool,
    batch_size: usize,
    concurrency: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCycle {
    #[serde(deserialize_with = "number_or_nan")]
    min_book_share: f64,
}

/// A float setting, with `nan` and `inf` read back as NaN. The merged settings pass through a
/// JSON tree to name the key of an error, and JSON holds neither, so they arrive as null; the
/// key's own check then says what a valid value is, instead of "invalid type: null".
pub(crate) fn number_or_nan<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<f64, D::Error> {
    Option::<f64>::deserialize(deserializer).map(|value| value.unwrap_or(f64::NAN))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: String,
    level: String,
}

impl Settings {
    /// Loads the defaults, then `user_file` if given, then `TOUCHPOINT__SECTION__KEY` variables
    /// from the process environment.
    pub fn load(user_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(user_file, None)
    }

    /// Like [`Settings::load`], with the environment given as a map (for tests).
    pub fn load_from(
        user_file: Option<&Path>,
        environment: Option<HashMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = user_file {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            check_numbers(path)?;
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        let environment = Environment::with_prefix("TOUCHPOINT")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("scoring.adoption.key_features")
            .with_list_parse_key("scoring.engagement.key_personas")
            .with_list_parse_key("scoring.engagement.meeting_types")
            .with_list_parse_key("surveys.goal_personas")
            .with_list_parse_key("surveys.send_window.days")
            .source(environment);

        let merged = builder
            .add_source(environment)
            .build()
            .map_err(|e| ConfigError::new("configuration", e.to_string()))?;
        let tree: serde_json::Value = merged
            .try_deserialize()
            .map_err(|e| ConfigError::new("configuration", e.to_string()))?;
        let raw: RawSettings = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            let problem = e.into_inner().to_string();
            match problem.strip_prefix("invalid type: null, expected ") {
                Some(expected) => ConfigError::new(
                    key,
                    format!("NaN and infinity are not numbers here; give {expected}"),
                ),
                None => ConfigError::new(key, problem),
            }
        })?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawSettings) -> Result<Self, ConfigError> {
        let surveys = SurveySettings::from_raw(raw.surveys)?;
        let templates = Arc::new(Templates::load(surveys.templates_dir.as_deref())?);
        Ok(Self {
            source: source_settings(raw.source)?,
            scoring: ScoringConfig::from_raw(raw.scoring)?,
            tasks: TaskSettings::from_raw(raw.tasks)?,
            surveys,
            mail: MailSettings::from_raw(raw.mail)?,
            web: WebSettings::from_raw(raw.web)?,
            templates,
            store: StoreSettings {
                path: non_empty_path("store.path", &raw.store.path)?,
                busy_timeout: Duration::from_millis(at_most(
                    "store.busy_timeout_ms",
                    raw.store.busy_timeout_ms,
                    600_000,
                )?),
            },
            writeback: writeback_settings(raw.writeback)?,
            cycle: CycleSettings {
                min_book_share: share("cycle.min_book_share", raw.cycle.min_book_share)?,
            },
            log: log_settings(raw.log)?,
            daemon: DaemonSettings::from_raw(raw.daemon)?,
            http: HttpSettings::from_raw(raw.http)?,
        })
    }

    /// The CRM API token, from [`TOKEN_VARIABLE`].
    pub fn source_token() -> Result<SecretString, ConfigError> {
        match std::env::var(TOKEN_VARIABLE) {
            Ok(token) if !token.trim().is_empty() => Ok(SecretString::from(token)),
            _ => Err(ConfigError::new(
                TOKEN_VARIABLE,
                "the CRM API token is not set; secrets are read from the environment only",
            )),
        }
    }
}

fn source_settings(raw: RawSource) -> Result<SourceSettings, ConfigError> {
    let kind = match raw.kind.as_str() {
        "rest" => SourceKind::Rest,
        "csv" => SourceKind::Csv {
            dir: non_empty_path("source.csv_dir", &raw.csv_dir)?,
        },
        other => {
            return Err(ConfigError::new(
                "source.kind",
                format!("{other:?} is not a source kind; use \"rest\" or \"csv\""),
            ));
        }
    };
    let base_url = parse_base_url(&raw.base_url)?;
    if !(1..=1000).contains(&raw.page_size) {
        return Err(ConfigError::new(
            "source.page_size",
            format!(
                "{} is outside 1..=1000 (the contract's maximum)",
                raw.page_size
            ),
        ));
    }
    if raw.backoff_base_ms > raw.backoff_max_ms {
        return Err(ConfigError::new(
            "source.backoff_base_ms",
            "must not exceed source.backoff_max_ms",
        ));
    }
    Ok(SourceSettings {
        kind,
        base_url,
        page_size: raw.page_size,
        connect_timeout: positive_secs("source.connect_timeout_secs", raw.connect_timeout_secs)?,
        request_timeout: positive_secs("source.request_timeout_secs", raw.request_timeout_secs)?,
        max_body_bytes: at_least("source.max_body_bytes", raw.max_body_bytes, 1024)?,
        max_retries: raw.max_retries,
        backoff_base: Duration::from_millis(raw.backoff_base_ms),
        backoff_max: Duration::from_millis(raw.backoff_max_ms),
        max_retry_after: Duration::from_secs(raw.max_retry_after_secs),
        requests_per_second: at_least(
            "source.requests_per_second",
            raw.requests_per_second.into(),
            1,
        )? as u32,
    })
}

/// Parses the CRM's base URL; a trailing slash is added so that relative paths such as
/// `v1/accounts` join below it rather than replacing its last segment.
fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let with_slash = if raw.ends_with('/') {
        raw.to_owned()
    } else {
        format!("{raw}/")
    };
    let url = Url::parse(&with_slash)
        .map_err(|e| ConfigError::new("source.base_url", format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            "source.base_url",
            format!("{raw:?} must be an http or https URL"),
        ));
    }
    Ok(url)
}

fn writeback_settings(raw: RawWriteback) -> Result<WritebackSettings, ConfigError> {
    if !(1..=100).contains(&raw.batch_size) {
        return Err(ConfigError::new(
            "writeback.batch_size",
            format!(
                "{} is outside 1..=100 (the contract's maximum)",
                raw.batch_size
            ),
        ));
    }
    Ok(WritebackSettings {
        enabled: raw.enabled,
        batch_size: raw.batch_size,
        concurrency: at_least("writeback.concurrency", raw.concurrency as u64, 1)? as usize,
    })
}

fn log_settings(raw: RawLog) -> Result<LogSettings, ConfigError> {
    let format = match raw.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::new(
                "log.format",
                format!("{other:?} is not a log format; use \"text\" or \"json\""),
            ));
        }
    };
    tracing_subscriber::EnvFilter::try_new(&raw.level)
        .map_err(|e| ConfigError::new("log.level", format!("{:?}: {e}", raw.level)))?;
    check_log_directives(&raw.level).map_err(|problem| ConfigError::new("log.level", problem))?;
    Ok(LogSettings {
        format,
        level: raw.level,
    })
}

/// The filter syntax takes a bare word for a target to log at every level (`verbose` logs
/// the target `verbose` only, and nothing of touchpoint), and a directive with nothing after
/// its `=` for the same: both are more likely a mistyped level, so both are refused.
fn check_log_directives(directives: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |word: &str| {
        LEVELS.iter().any(|level| level.eq_ignore_ascii_case(word))
            || matches!(word, "0" | "1" | "2" | "3" | "4" | "5")
    };
    for directive in directives.split(',').map(str::trim) {
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level.trim(),
            None => directive,
        };
        if directive.is_empty() || is_level(level) {
            continue;
        }
        return Err(format!(
            "{directive:?} is neither a level ({}) nor `target=level`",
            LEVELS.join(", ")
        ));
    }
    Ok(())
}

fn non_empty_path(key: &str, raw: &str) -> Result<PathBuf, ConfigError> {
    if raw.trim().is_empty() {
        return Err(ConfigError::new(key, "is empty; give a path"));
    }
    Ok(PathBuf::from(raw))
}

fn positive_secs(key: &str, secs: u64) -> Result<Duration, ConfigError> {
    at_least(key, secs, 1).map(Duration::from_secs)
}

fn at_most(key: &str, value: u64, maximum: u64) -> Result<u64, ConfigError> {
    if value > maximum {
        return Err(ConfigError::new(
            key,
            format!("{value} is too large; the maximum is {maximum}"),
        ));
    }
    Ok(value)
}

fn at_least(key: &str, value: u64, minimum: u64) -> Result<u64, ConfigError> {
    if value < minimum {
        return Err(ConfigError::new(
            key,
            format!("{value} is too small; the minimum is {minimum}"),
        ));
    }
    Ok(value)
}

/// A share: a number from 0 to 1 (NaN is none).
pub(crate) fn share(key: &str, value: f64) -> Result<f64, ConfigError> {
    if !(0.0..=1.0).contains(&value) {
        let given = if value.is_finite() {
            value.to_string()
        } else {
            "NaN or infinity".to_owned()
        };
        return Err(ConfigError::new(
            key,
            format!("must be a number between 0 and 1, not {given}"),
        ));
    }
    Ok(value)
}

/// Finds an integer in a user file too large for any setting, and names its key. The TOML
/// reader of the `config` crate refuses such a file as a whole without saying where, so this
/// reads the file once more to find the key. A file that does not parse is left to that
/// reader, whose message says where the syntax is wrong.
fn check_numbers(path: &Path) -> Result<(), ConfigError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let Ok(table) = toml::de::DeTable::parse(&text) else {
        return Ok(());
    };
    oversized_integer(table.get_ref(), "").map_or(Ok(()), |(key, raw)| {
        Err(ConfigError::new(
            key,
            format!("{raw} is too large a number for any setting"),
        ))
    })
}

/// The dotted key and text of the first integer under `table` that does not fit 64 bits.
fn oversized_integer(table: &toml::de::DeTable<'_>, prefix: &str) -> Option<(String, String)> {
    table.iter().find_map(|(name, value)| {
        let key = if prefix.is_empty() {
            name.get_ref().to_string()
        } else {
            format!("{prefix}.{}", name.get_ref())
        };
        oversized_in(value.get_ref(), key)
    })
}

fn oversized_in(value: &toml::de::DeValue<'_>, key: String) -> Option<(String, String)> {
    match value {
        toml::de::DeValue::Integer(number) => {
            let fits = i64::from_str_radix(number.as_str(), number.radix()).is_ok();
            (!fits).then(|| (key, number.as_str().to_owned()))
        }
        toml::de::DeValue::Table(table) => oversized_integer(table, &key),
        toml::de::DeValue::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| oversized_in(item.get_ref(), format!("{key}[{i}]"))),
        _ => None,
    }
}
