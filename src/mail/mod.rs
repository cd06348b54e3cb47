//! Delivery of survey emails: building the message and handing it to the configured backend.
//!
//! The backend is chosen once, at start-up: [`Mailer::Smtp`] (lettre, a connection pool,
//! STARTTLS required by default, implicit TLS as an option, plain text only when explicitly
//! allowed and only for a loopback relay) or [`Mailer::File`], which writes each message as an
//! `.eml` file and is the default so that nothing leaves the machine until SMTP is configured.
//! Both run the same code up to the last step. What to send, and when, is the surveys module's
//! business; this one only sends.
//!
//! SMTP replies are classified for the outbox: 4xx, lost connections, timeouts and TLS trouble
//! are temporary (retried on a later cycle); 5xx replies are final. lettre does not say which
//! command a reply answered, so a permanent reply is taken as a hard bounce, and the address
//! suppressed, only when it refuses the mailbox: an enhanced status 5.1.x, or 550, 551 or 553
//! with no enhanced status. A 5.7.x reply (relaying denied, sender rejected) is about us, not
//! the recipient: the email fails and the address stays. Server replies are logged and stored
//! with any address in them masked. Credentials come from `TOUCHPOINT_SMTP_USERNAME` and
//! `TOUCHPOINT_SMTP_PASSWORD` only and are never logged.

pub mod settings;

use std::path::{Path, PathBuf};

use anyhow::Context;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

pub use settings::{Backend, MailSettings, SmtpSettings, TlsMode};

use crate::settings::ConfigError;
use crate::telemetry::mask_email;

pub const USERNAME_VARIABLE: &str = "TOUCHPOINT_SMTP_USERNAME";
pub const PASSWORD_VARIABLE: &str = "TOUCHPOINT_SMTP_PASSWORD";

/// Server replies longer than this are cut before they are logged or stored.
const MAX_REPLY_CHARS: usize = 300;

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (SMTP 4xx, network, timeout, TLS).
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Final (SMTP 5xx). `bounce`: the server refused the recipient's mailbox.
    #[error("permanent failure: {error}")]
    Permanent { error: String, bounce: bool },
}

/// One survey email, ready to be built.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub to: Mailbox,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// Without angle brackets: `tp.<hash>@<sender domain>`.
    pub message_id: String,
    /// The one-click unsubscribe URL (RFC 8058).
    pub unsubscribe_url: String,
}

/// The configured backend.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Mailer {
    /// Builds the backend the settings name, reading SMTP credentials from the environment.
    pub fn new(settings: &MailSettings) -> anyhow::Result<Self> {
        match &settings.backend {
            Backend::File { dir } => Ok(Mailer::File(dir.clone())),
            Backend::Smtp(smtp) => Ok(Mailer::Smtp(smtp_transport(smtp, credentials()?)?)),
        }
    }

    /// Whether emails leave the machine (SMTP), rather than being written as files.
    pub fn delivers(&self) -> bool {
        matches!(self, Mailer::Smtp(_))
    }

    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp(_) => "SMTP".to_owned(),
            Mailer::File(dir) => format!(".eml files in {}", dir.display()),
        }
    }

    /// Sends one message; `file_stem` names the file of the file backend.
    pub async fn send(&self, message: &Message, file_stem: &str) -> Result<(), SendError> {
        match self {
            Mailer::Smtp(transport) => transport
                .send(message.clone())
                .await
                .map(drop)
                .map_err(classify),
            Mailer::File(dir) => write_eml(dir, file_stem, &message.formatted())
                .await
                .map_err(|e| SendError::Transient(format!("{e:#}"))),
        }
    }
}

/// Checks the SMTP credentials in the environment as the SMTP backend will read them, for
/// `check-config`: both variables or neither.
pub fn check_credentials() -> Result<(), ConfigError> {
    credentials().map(drop)
}

/// Both SMTP variables, or neither; the error names the one that is missing.
fn credentials() -> Result<Option<Credentials>, ConfigError> {
    let read = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        read(USERNAME_VARIABLE),
        read(PASSWORD_VARIABLE).map(SecretString::from),
    ) {
        (Some(user), Some(password)) => Ok(Some(Credentials::new(
            user,
            password.expose_secret().to_owned(),
        ))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(
            PASSWORD_VARIABLE,
            format!("is not set, but {USERNAME_VARIABLE} is: SMTP needs both or neither"),
        )),
        (None, Some(_)) => Err(ConfigError::new(
            USERNAME_VARIABLE,
            format!("is not set, but {PASSWORD_VARIABLE} is: SMTP needs both or neither"),
        )),
    }
}

fn smtp_transport(
    smtp: &SmtpSettings,
    credentials: Option<Credentials>,
) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let tls = match smtp.tls {
        TlsMode::StartTls => Tls::Required(tls_parameters(&smtp.host)?),
        TlsMode::Implicit => Tls::Wrapper(tls_parameters(&smtp.host)?),
        // Settings allow it only for a loopback relay.
        TlsMode::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(smtp.timeout))
        .pool_config(PoolConfig::new().max_size(smtp.pool_size));
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    Ok(builder.build())
}

fn tls_parameters(host: &str) -> anyhow::Result<TlsParameters> {
    TlsParameters::new(host.to_owned())
        .with_context(|| format!("failed to set up TLS for the SMTP server {host}"))
}

/// A display name a header can carry, from one a CRM sent: line breaks, tabs and other
/// whitespace become single spaces, any other control character (NUL, DEL...) is dropped, and
/// `None` is left when nothing remains. The mail library cannot encode a line break in a name
/// (it panics building the header) and mangles the address behind a NUL, so a name must never
/// reach it raw; the address alone is enough to deliver the email.
pub fn display_name(raw: Option<&str>) -> Option<String> {
    Some(crate::model::one_line(raw?)).filter(|name| !name.is_empty())
}

/// The subject with every `=?` broken by an invisible WORD JOINER (U+2060). A subject carries
/// CRM text (a contact's name), and a name that spells an RFC 2047 encoded word
/// (`=?utf-8?b?...?=`) would otherwise pass through as ASCII and be decoded by the reader's
/// client into text of the sender's choosing; broken, its word is encoded like any other
/// non-ASCII word and reads as the characters it was.
fn literal_subject(subject: &str) -> String {
    subject.replace("=?", "=\u{2060}?")
}

/// Builds the message: multipart/alternative (plain text, then HTML), RFC 2047 encoded
/// headers where they are not ASCII, and the RFC 8058 one-click unsubscribe headers.
///
/// The recipient's display name comes from the CRM: it is cleaned with [`display_name`], and
/// should the library still refuse the `To` header with it, the email is built with the bare
/// address instead, since a name is never a reason not to send.
pub fn build(settings: &MailSettings, email: &Outgoing) -> anyhow::Result<Message> {
    let name = display_name(email.to.name.as_deref());
    let to = Mailbox::new(name, email.to.email.clone());
    match build_to(settings, email, &to) {
        Err(error) if to.name.is_some() => {
            tracing::debug!(
                "the recipient's display name does not fit a header ({error:#}); \
                 the email goes to the bare address"
            );
            build_to(settings, email, &Mailbox::new(None, to.email))
        }
        built => built,
    }
}

fn build_to(settings: &MailSettings, email: &Outgoing, to: &Mailbox) -> anyhow::Result<Message> {
    let mut builder = Message::builder()
        .from(settings.from.clone())
        .to(to.clone())
        .subject(literal_subject(&email.subject))
        .message_id(Some(format!("<{}>", email.message_id)))
        .header(ListUnsubscribe(format!("<{}>", email.unsubscribe_url)))
        .header(ListUnsubscribePost);
    if let Some(reply_to) = &settings.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
        .context("failed to build a survey email")
}

/// `List-Unsubscribe: <https://...>`.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

fn classify(error: lettre::transport::smtp::Error) -> SendError {
    let text = scrub(&error.to_string());
    if !error.is_permanent() {
        return SendError::Transient(text);
    }
    let code = error.status().map(|c| c.to_string()).unwrap_or_default();
    let bounce = is_hard_bounce(&code, &text);
    SendError::Permanent {
        error: text,
        bounce,
    }
}

/// Whether a permanent reply refuses the recipient's mailbox, which suppresses the address.
///
/// An enhanced status code (RFC 3463) decides when the reply has one: only class 5 with
/// subject 1 (addressing: 5.1.1 no such mailbox, 5.1.2 bad domain, 5.1.10 null MX...) is a
/// bounce. 5.7.x (relaying denied, sender rejected, policy) and every other subject are about
/// the sender or the relay, and suppressing the recipient for them would silence the whole
/// book. Without an enhanced code, 550, 551 and 553 are the replies that refuse a mailbox.
fn is_hard_bounce(code: &str, text: &str) -> bool {
    match enhanced_status(text) {
        Some((class, subject)) => class == 5 && subject == 1,
        None => matches!(code, "550" | "551" | "553"),
    }
}

/// The class and subject of the first enhanced status code (`5.1.1`) in a reply's text.
fn enhanced_status(text: &str) -> Option<(u16, u16)> {
    text.split_whitespace().find_map(|word| {
        let word = word.trim_end_matches([':', ',', ';', '.']);
        let mut parts = word.split('.');
        let class = parts.next()?.parse::<u16>().ok()?;
        let subject = parts.next()?.parse::<u16>().ok()?;
        let detail = parts.next()?;
        let known = matches!(class, 2 | 4 | 5) && subject < 1000;
        let detail_ok = !detail.is_empty() && detail.len() <= 3;
        let digits = detail.bytes().all(|b| b.is_ascii_digit());
        (known && detail_ok && digits && parts.next().is_none()).then_some((class, subject))
    })
}

/// A server reply fit for logs: addresses masked, length capped.
pub fn scrub(reply: &str) -> String {
    let masked: Vec<String> = reply
        .split(' ')
        .map(|word| {
            if word.contains('@') {
                mask_email(word.trim_matches(|c| c == '<' || c == '>' || c == ':'))
            } else {
                word.to_owned()
            }
        })
        .collect();
    masked.join(" ").chars().take(MAX_REPLY_CHARS).collect()
}

/// Writes `bytes` to `dir/stem.eml` through a temporary file, so a reader never sees half a
/// message.
async fn write_eml(dir: &Path, stem: &str, bytes: &[u8]) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("failed to create the folder {}", dir.display()))?;
    let path = dir.join(format!("{stem}.eml"));
    let partial = dir.join(format!(".{stem}.eml.partial"));
    tokio::fs::write(&partial, bytes)
        .await
        .with_context(|| format!("failed to write {}", partial.display()))?;
    tokio::fs::rename(&partial, &path)
        .await
        .with_context(|| format!("failed to move the email into {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_masked_before_they_are_logged() {
        let reply = "permanent error (550): 5.1.1 <zoe.angstrom@example.com>: unknown user";
        assert_eq!(
            scrub(reply),
            "permanent error (550): 5.1.1 z***@e***.com unknown user"
        );
    }

    #[test]
    fn only_a_refused_mailbox_is_a_hard_bounce() {
        let bounces = [
            (
                "550",
                "permanent error (550): 5.1.1 z***@e***.com: no such user",
            ),
            ("550", "permanent error (550): 5.1.2 bad destination domain"),
            ("553", "permanent error (553): 5.1.10 null MX"),
            ("551", "permanent error (551): user not local"),
            ("550", "permanent error (550): mailbox unavailable"),
            ("554", "permanent error (554): 5.1.1 unknown user"),
        ];
        for (code, text) in bounces {
            assert!(is_hard_bounce(code, text), "{text}");
        }
        let not_bounces = [
            ("550", "permanent error (550): 5.7.1 relaying denied"),
            ("553", "permanent error (553): 5.7.1 sender rejected"),
            ("550", "permanent error (550): 5.2.2 mailbox full"),
            ("554", "permanent error (554): 5.7.1 rejected by policy"),
            ("552", "permanent error (552): message too large"),
            ("500", "permanent error (500): syntax error"),
        ];
        for (code, text) in not_bounces {
            assert!(!is_hard_bounce(code, text), "{text}");
        }
    }

    #[test]
    fn an_enhanced_status_is_read_from_the_first_code_shaped_word() {
        assert_eq!(enhanced_status("(550): 5.1.10 null MX"), Some((5, 1)));
        assert_eq!(enhanced_status("(550): 5.7.1: denied"), Some((5, 7)));
        assert_eq!(enhanced_status("(550): version 1.2 of z***@e***.com"), None);
        assert_eq!(enhanced_status("(550): 10.0.0.1 refused"), None);
        assert_eq!(enhanced_status("(550): no code here"), None);
    }

    fn default_mail() -> MailSettings {
        let settings = crate::settings::Settings::load_from(None, Some(Default::default()));
        settings.expect("the defaults load").mail
    }

    fn outgoing_to(name: &str) -> Outgoing {
        Outgoing {
            to: Mailbox::new(
                Some(name.to_owned()),
                "zoe@example.com".parse().expect("ok"),
            ),
            subject: "How likely are you to recommend us?".into(),
            html: "<p>Hello</p>".into(),
            text: "Hello".into(),
            message_id: "tp.0123@example.com".into(),
            unsubscribe_url: "https://answers.example.com/u/token".into(),
        }
    }

    /// The `To` header of a built message, unfolded.
    fn to_header(message: &Message) -> String {
        let raw = String::from_utf8(message.formatted()).expect("UTF-8");
        let headers = raw.split("\r\n\r\n").next().unwrap_or_default().to_owned();
        let unfolded = headers.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded
            .lines()
            .find(|line| line.starts_with("To:"))
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn a_name_that_spells_an_encoded_word_reads_as_written_in_the_subject() {
        let mail = default_mail();
        let written = "=?utf-8?b?SGk=?= Zoë, how likely are you to recommend us?";
        let email = Outgoing {
            subject: written.into(),
            ..outgoing_to("Zoë")
        };
        let raw = build(&mail, &email).expect("the email builds").formatted();

        let parsed = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("parses");
        let shown = parsed.subject().expect("a subject").replace('\u{2060}', "");
        assert_eq!(shown, written);
    }

    #[test]
    fn control_characters_in_a_crm_name_are_dropped_and_the_email_still_builds() {
        let mail = default_mail();
        let cases = [
            ("Zoe\r\nBcc: eve@example.net", "Zoe Bcc: eve@example.net"),
            ("Zo\u{0}e Smith", "Zoe Smith"),
            ("Zoe\tSmith\u{7f}", "Zoe Smith"),
            ("Zoe\u{85}Smith\u{2028}", "Zoe Smith"),
            ("\r\n", ""),
        ];
        for (raw, shown) in cases {
            let message = build(&mail, &outgoing_to(raw)).expect("the email builds");

            let to = to_header(&message);
            let raw = message.formatted();
            let parsed = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("parses");
            let name = parsed.to().and_then(|a| a.first()).and_then(|a| a.name());
            let address = parsed
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address());
            assert_eq!(address, Some("zoe@example.com"), "{raw:?}: {to}");
            assert_eq!(name.unwrap_or_default(), shown, "{raw:?}: {to}");
            assert!(parsed.bcc().is_none(), "no header injected: {to}");
        }
    }

    #[test]
    fn display_names_lose_control_characters_only() {
        assert_eq!(
            display_name(Some("Zoë  Ångström")),
            Some("Zoë Ångström".into())
        );
        assert_eq!(display_name(Some("A\u{0}B\nC")), Some("AB C".into()));
        assert_eq!(display_name(Some(" \t\u{1b} ")), None);
        assert_eq!(display_name(None), None);
    }

    proptest::proptest! {
        #[test]
        fn any_crm_name_builds_an_email_to_the_same_address(
            chars in proptest::collection::vec(proptest::char::any(), 0..40)
        ) {
            let name: String = chars.into_iter().collect();
            let message = build(&default_mail(), &outgoing_to(&name)).expect("the email builds");
            let to: Vec<String> = message.envelope().to().iter().map(ToString::to_string).collect();
            proptest::prop_assert_eq!(to, vec!["zoe@example.com".to_owned()]);
        }
    }

    #[test]
    fn a_control_character_in_the_sender_stops_start_up_naming_the_key() {
        use crate::settings::Settings;
        let cases = [
            (
                "TOUCHPOINT__MAIL__FROM_NAME",
                "Customer\nSuccess",
                "mail.from_name",
            ),
            (
                "TOUCHPOINT__MAIL__FROM_NAME",
                "Customer\u{0}Success",
                "mail.from_name",
            ),
            (
                "TOUCHPOINT__MAIL__FROM_ADDRESS",
                "cs@example.com\r\n",
                "mail.from_address",
            ),
            (
                "TOUCHPOINT__MAIL__REPLY_TO",
                "help@example.com\n",
                "mail.reply_to",
            ),
        ];
        for (variable, value, key) in cases {
            let env = [(variable.to_owned(), value.to_owned())]
                .into_iter()
                .collect();
            let Err(error) = Settings::load_from(None, Some(env)) else {
                panic!("{variable}={value:?} was accepted");
            };
            assert_eq!(error.key, key, "{error}");
            assert!(error.problem.contains("control character"), "{error}");
        }
    }

    #[test]
    fn plain_text_smtp_must_be_allowed_explicitly() {
        use crate::settings::Settings;
        let env = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        };
        let err =
            Settings::load_from(None, env(&[("TOUCHPOINT__MAIL__SMTP__TLS", "none")])).unwrap_err();
        assert_eq!(err.key, "mail.smtp.tls");
        let ok = Settings::load_from(
            None,
            env(&[
                ("TOUCHPOINT__MAIL__SMTP__TLS", "none"),
                ("TOUCHPOINT__MAIL__SMTP__ALLOW_PLAINTEXT", "true"),
            ]),
        );
        assert!(ok.is_ok());
    }
}
