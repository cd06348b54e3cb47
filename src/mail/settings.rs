//! The `[mail]` section: which backend carries survey emails, the sender, retries.

use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use lettre::message::Mailbox;
use serde::Deserialize;

use crate::settings::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailSettings {
    backend: String,
    file_dir: String,
    from_address: String,
    from_name: String,
    reply_to: String,
    max_attempts: u32,
    retry_base_minutes: u32,
    retry_max_minutes: u32,
    smtp: RawSmtp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: u16,
    tls: String,
    allow_plaintext: bool,
    timeout_secs: u64,
    pool_size: u32,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS; a server that does not offer it is an error.
    StartTls,
    /// TLS from the first byte (usually port 465).
    Implicit,
    /// No encryption: only with `allow_plaintext = true`, and only for a loopback relay
    /// (`localhost` or a loopback address), where mail never crosses the network.
    None,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub timeout: Duration,
    pub pool_size: u32,
}

/// Where survey emails go.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Each email becomes an `.eml` file in this folder; nothing leaves the machine.
    File {
        dir: PathBuf,
    },
    Smtp(SmtpSettings),
}

/// The validated `[mail]` section.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub backend: Backend,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub max_attempts: u32,
    pub retry_base: TimeDelta,
    pub retry_max: TimeDelta,
}

impl MailSettings {
    pub fn from_raw(raw: RawMailSettings) -> Result<Self, ConfigError> {
        let smtp = smtp_settings(raw.smtp)?;
        let backend = match raw.backend.as_str() {
            "file" if raw.file_dir.trim().is_empty() => {
                return Err(ConfigError::new("mail.file_dir", "is empty; give a folder"));
            }
            "file" => Backend::File {
                dir: PathBuf::from(raw.file_dir.trim()),
            },
            "smtp" => Backend::Smtp(smtp),
            other => {
                return Err(ConfigError::new(
                    "mail.backend",
                    format!("{other:?} is not a mail backend; use \"file\" or \"smtp\""),
                ));
            }
        };
        let from = mailbox(
            ("mail.from_address", &raw.from_address),
            ("mail.from_name", &raw.from_name),
        )?;
        let reply_to = match raw.reply_to.trim() {
            "" => None,
            _ => Some(mailbox(
                ("mail.reply_to", &raw.reply_to),
                ("mail.reply_to", ""),
            )?),
        };
        if raw.max_attempts == 0 {
            return Err(ConfigError::new("mail.max_attempts", "must be at least 1"));
        }
        if raw.retry_base_minutes == 0 || raw.retry_base_minutes > raw.retry_max_minutes {
            return Err(ConfigError::new(
                "mail.retry_base_minutes",
                "must be at least 1 and at most mail.retry_max_minutes",
            ));
        }
        Ok(Self {
            backend,
            from,
            reply_to,
            max_attempts: raw.max_attempts,
            retry_base: TimeDelta::minutes(raw.retry_base_minutes.into()),
            retry_max: TimeDelta::minutes(raw.retry_max_minutes.into()),
        })
    }
}

fn smtp_settings(raw: RawSmtp) -> Result<SmtpSettings, ConfigError> {
    let host = raw.host.trim().to_owned();
    if host.is_empty() {
        return Err(ConfigError::new("mail.smtp.host", "is empty"));
    }
    let tls = match raw.tls.as_str() {
        "starttls" => TlsMode::StartTls,
        "implicit" => TlsMode::Implicit,
        "none" if !raw.allow_plaintext => {
            return Err(ConfigError::new(
                "mail.smtp.tls",
                "\"none\" sends mail unencrypted; set mail.smtp.allow_plaintext = true to allow \
                 it (only for a relay on the loopback interface)",
            ));
        }
        "none" if !is_loopback(&host) => {
            return Err(ConfigError::new(
                "mail.smtp.tls",
                format!(
                    "\"none\" is allowed only for a relay on the loopback interface, and \
                     mail.smtp.host = {host:?} is not one (use localhost, 127.0.0.1 or ::1); \
                     use \"starttls\" or \"implicit\" for a relay across the network"
                ),
            ));
        }
        "none" => TlsMode::None,
        other => {
            return Err(ConfigError::new(
                "mail.smtp.tls",
                format!("{other:?} is not one of \"starttls\", \"implicit\", \"none\""),
            ));
        }
    };
    if raw.timeout_secs == 0 {
        return Err(ConfigError::new(
            "mail.smtp.timeout_secs",
            "must be at least 1",
        ));
    }
    if raw.pool_size == 0 {
        return Err(ConfigError::new(
            "mail.smtp.pool_size",
            "must be at least 1",
        ));
    }
    Ok(SmtpSettings {
        host,
        port: raw.port,
        tls,
        timeout: Duration::from_secs(raw.timeout_secs),
        pool_size: raw.pool_size,
    })
}

/// `localhost` or a loopback address: mail to it never crosses the network.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A sender or reply-to mailbox from its `(key, value)` address and display name.
///
/// A control character (a line break, a tab, NUL) is refused in either: a header cannot carry
/// one, and the mail library cannot encode it, so it would stop every send instead of one.
fn mailbox(
    (address_key, address): (&str, &str),
    (name_key, name): (&str, &str),
) -> Result<Mailbox, ConfigError> {
    no_control_characters(address_key, address)?;
    no_control_characters(name_key, name)?;
    let address = address.trim().parse().map_err(|e| {
        ConfigError::new(address_key, format!("{address:?} is not an address: {e}"))
    })?;
    let name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
    Ok(Mailbox::new(name, address))
}

fn no_control_characters(key: &str, value: &str) -> Result<(), ConfigError> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(ConfigError::new(
            key,
            format!(
                "holds the control character {:?} (U+{:04X}); a mail header cannot carry line \
                 breaks, tabs or other control characters",
                c, c as u32
            ),
        )),
        None => Ok(()),
    }
}
