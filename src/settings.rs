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
