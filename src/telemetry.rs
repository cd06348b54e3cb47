//! Logging set-up: `tracing` to stderr, readable text by default or JSON for log collectors.
//!
//! `RUST_LOG`, when set, overrides the configured level so an operator can turn on detail for
//! one run without editing the configuration.

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// Installs the global subscriber. Later calls (tests, the demo's in-process sandbox) are
/// ignored rather than failing.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _already_set = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Defaults for commands that run before (or without) a configuration.
pub fn init_default() {
    init(&LogSettings {
        format: LogFormat::Text,
        level: "info".to_owned(),
    });
}
