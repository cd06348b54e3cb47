//! Signed, expiring link tokens: what an answer or unsubscribe link carries.
//!
//! A token names its purpose, the outbox key of the email it was sent in and its expiry, and
//! is signed with HMAC-SHA256 under the link secret (`TOUCHPOINT_LINK_SECRET`). It is two
//! base64url parts joined by a dot: the payload `purpose.expiry.key` and the signature. A token
//! that was altered, signed with another secret, used for another purpose or past its expiry
//! is refused; the answer pages then change nothing. Tokens are bearer secrets: whoever holds
//! the email can answer it, as with every survey link.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::settings::ConfigError;

/// The environment variable holding the link secret.
pub const SECRET_VARIABLE: &str = "TOUCHPOINT_LINK_SECRET";
/// A shorter secret is too easy to guess.
const MIN_SECRET_CHARS: usize = 32;

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Answer,
    Unsubscribe,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Answer => "a",
            Purpose::Unsubscribe => "u",
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is not one of ours (it was altered or is incomplete)")]
    Invalid,
    #[error("the link is for something else")]
    WrongPurpose,
    #[error("the link has expired")]
    Expired,
}

/// A token that holds: the outbox key it names and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key: String,
    pub expires_at: DateTime<Utc>,
}

/// The key that signs and checks tokens.
#[derive(Clone)]
pub struct LinkSigner {
    secret: SecretString,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    pub fn new(secret: SecretString) -> Result<Self, ConfigError> {
        if secret.expose_secret().chars().count() < MIN_SECRET_CHARS {
            return Err(ConfigError::new(
                SECRET_VARIABLE,
                format!("the link secret must be at least {MIN_SECRET_CHARS} characters"),
            ));
        }
        Ok(Self { secret })
    }

    /// Reads the secret from [`SECRET_VARIABLE`].
    /// Space around it (a line end left by `$(cat file)` or an editor) is not part of the key,
    /// and does not count towards its length.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var(SECRET_VARIABLE) {
            Ok(secret) if !secret.trim().is_empty() => {
                Self::new(SecretString::from(secret.trim().to_owned()))
            }
            _ => Err(ConfigError::new(
                SECRET_VARIABLE,
                "the link secret is not set; secrets are read from the environment only",
            )),
        }
    }

    /// A random secret, for the demo and previews: links die with the process.
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self {
            secret: SecretString::from(hex::encode(bytes)),
        }
    }

    /// A token for the email `key`, valid until `expires`.
    pub fn sign(&self, purpose: Purpose, key: &str, expires: DateTime<Utc>) -> String {
        let payload = format!("{}.{}.{key}", purpose.as_str(), expires.timestamp());
        let signature = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// Checks a token and returns the outbox key it names.
    pub fn verify(
        &self,
        token: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<Verified, TokenError> {
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Invalid)?;
        self.mac(&payload)
            .verify_slice(&signature)
            .map_err(|_| TokenError::Invalid)?;

        let payload = String::from_utf8(payload).map_err(|_| TokenError::Invalid)?;
        let mut parts = payload.splitn(3, '.');
        let (Some(kind), Some(expires), Some(key)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        if kind != purpose.as_str() {
            return Err(TokenError::WrongPurpose);
        }
        let expires: i64 = expires.parse().map_err(|_| TokenError::Invalid)?;
        let expires_at = DateTime::from_timestamp(expires, 0).ok_or(TokenError::Invalid)?;
        if now >= expires_at {
            return Err(TokenError::Expired);
        }
        Ok(Verified {
            key: key.to_owned(),
            expires_at,
        })
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.expose_secret().as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(payload);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer(secret: &str) -> LinkSigner {
        LinkSigner::new(SecretString::from(secret.to_owned())).expect("a long enough secret")
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("an instant")
    }

    const KEY: &str = "nps:2025-Q2:A-000001:C-000001-1";

    #[test]
    fn a_token_verifies_until_just_before_it_expires() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let token = s.sign(Purpose::Answer, KEY, at("2025-07-01T00:00:00Z"));
        let ok = s.verify(&token, Purpose::Answer, at("2025-06-30T23:59:59Z"));
        assert_eq!(ok.map(|v| v.key).as_deref(), Ok(KEY));
        let late = s.verify(&token, Purpose::Answer, at("2025-07-01T00:00:00Z"));
        assert_eq!(late, Err(TokenError::Expired));
    }

    #[test]
    fn tampered_foreign_and_misused_tokens_are_refused() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let now = at("2025-06-01T00:00:00Z");
        let token = s.sign(Purpose::Answer, KEY, at("2025-07-01T00:00:00Z"));

        let other = signer("another secret, also long enough!!");
        assert_eq!(
            other.verify(&token, Purpose::Answer, now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            s.verify(&token, Purpose::Unsubscribe, now),
            Err(TokenError::WrongPurpose)
        );
        let (payload, signature) = token.split_once('.').expect("two parts");
        let forged = URL_SAFE_NO_PAD.encode(format!("a.4102444800.{KEY}"));
        assert_eq!(
            s.verify(&format!("{forged}.{signature}"), Purpose::Answer, now),
            Err(TokenError::Invalid)
        );
        for broken in [
            "",
            ".",
            "abc",
            &format!("{payload}."),
            &format!("{payload}.!!"),
        ] {
            assert_eq!(
                s.verify(broken, Purpose::Answer, now),
                Err(TokenError::Invalid)
            );
        }
    }

    #[test]
    fn short_secrets_are_refused_naming_the_variable() {
        let err = LinkSigner::new(SecretString::from("short")).unwrap_err();
        assert_eq!(err.key, SECRET_VARIABLE);
        assert!(!format!("{:?}", signer(&"x".repeat(40))).contains("xxx"));
    }

    proptest! {
        #[test]
        fn changing_any_character_breaks_the_token(
            index in 0usize..200,
            replacement in "[A-Za-z0-9_.-]",
        ) {
            let s = signer("0123456789abcdef0123456789abcdef");
            let token = s.sign(Purpose::Answer, KEY, at("2030-01-01T00:00:00Z"));
            let index = index % token.len();
            let mut changed = token.clone();
            changed.replace_range(index..=index, &replacement);
            prop_assume!(changed != token);
            let verdict = s.verify(&changed, Purpose::Answer, at("2025-01-01T00:00:00Z"));
            prop_assert!(verdict.is_err(), "{changed} was accepted");
        }
    }
}
