//! Logging set-up: `tracing` to stderr, readable text by default or JSON for log collectors,
//! and the masking of people's details before they reach a log line.
//!
//! `RUST_LOG`, when set, overrides the configured level so an operator can turn on detail for
//! one run without editing the configuration. Logs never carry email addresses or names in
//! clear: [`mask_email`], [`mask_name`] and [`mask_emails_in`] keep enough to tell records
//! apart while a log file leaks nothing useful.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// The scheduler library reports every job it adds at `info`; only its warnings matter here.
const QUIET_SCHEDULER: &str = "tokio_cron_scheduler=warn";

/// Installs the global subscriber. Later calls (tests, the demo's in-process sandbox) are
/// ignored rather than failing.
pub fn init(settings: &LogSettings) {
    let from_environment = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .and_then(|directives| filter(&directives));
    let filter = from_environment
        .or_else(|| filter(&settings.level))
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _already_set = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// A filter from `directives`, quieting the scheduler library unless they mention it.
fn filter(directives: &str) -> Option<EnvFilter> {
    let directives = directives.trim();
    if directives.is_empty() {
        return None;
    }
    let directives = if directives.contains("tokio_cron_scheduler") {
        directives.to_owned()
    } else {
        format!("{directives},{QUIET_SCHEDULER}")
    };
    EnvFilter::try_new(directives).ok()
}

/// Defaults for commands that run before (or without) a configuration.
pub fn init_default() {
    init(&LogSettings {
        format: LogFormat::Text,
        level: "info".to_owned(),
    });
}

/// An email address with the local part and the domain's name cut to their first letter:
/// `jane.doe@example.com` becomes `j***@e***.com`.
pub fn mask_email(address: &str) -> String {
    let Some((local, domain)) = address.trim().rsplit_once('@') else {
        return mask_word(address.trim());
    };
    let masked_domain = match domain.rsplit_once('.') {
        Some((name, tld)) => format!("{}.{tld}", mask_word(name)),
        None => mask_word(domain),
    };
    format!("{}@{masked_domain}", mask_word(local))
}

/// A person's name cut to initials: `Jane Doe` becomes `J*** D***`.
pub fn mask_name(name: &str) -> String {
    name.split_whitespace()
        .map(mask_word)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Free text (an error message, a rejected row's reason) with every email address in it
/// masked.
pub fn mask_emails_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if is_address_char(c) {
            word.push(c);
            continue;
        }
        flush_word(&mut out, &mut word);
        out.push(c);
    }
    flush_word(&mut out, &mut word);
    out
}

fn is_address_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '@' | '.' | '_' | '-' | '+' | '%')
}

fn flush_word(out: &mut String, word: &mut String) {
    let looks_like_address = word
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if looks_like_address {
        out.push_str(&mask_email(word));
    } else {
        out.push_str(word);
    }
    word.clear();
}

fn mask_word(word: &str) -> String {
    match word.chars().next() {
        Some(first) => format!("{first}***"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_keep_only_initials() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@e***.com");
        assert_eq!(mask_email("ops@localhost"), "o***@l***");
        assert_eq!(mask_email("not an address"), "n***");
        assert_eq!(mask_name("Jane  van Doe"), "J*** v*** D***");
        assert_eq!(mask_name(""), "");
    }

    #[test]
    fn addresses_inside_text_are_masked_and_the_rest_is_kept() {
        let text = "invalid value: string \"jane.doe@example.com\", expected a date (row 4)";
        assert_eq!(
            mask_emails_in(text),
            "invalid value: string \"j***@e***.com\", expected a date (row 4)"
        );
        assert_eq!(mask_emails_in("no address @ here."), "no address @ here.");
    }
}
