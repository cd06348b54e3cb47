//! The `[web]` section: where the answer pages are reached and how long their links live.

use std::net::SocketAddr;

use chrono::TimeDelta;
use serde::Deserialize;
use url::Url;

use crate::settings::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebSettings {
    base_url: String,
    bind: String,
    answer_link_days: u32,
    unsubscribe_link_days: u32,
}

/// The validated `[web]` section.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// Public base of the links, with a trailing slash.
    pub base_url: Url,
    pub bind: SocketAddr,
    pub answer_link_life: TimeDelta,
    pub unsubscribe_link_life: TimeDelta,
}

impl WebSettings {
    pub fn from_raw(raw: RawWebSettings) -> Result<Self, ConfigError> {
        let with_slash = if raw.base_url.ends_with('/') {
            raw.base_url.clone()
        } else {
            format!("{}/", raw.base_url)
        };
        let base_url = Url::parse(&with_slash)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.query().is_none())
            .ok_or_else(|| {
                ConfigError::new(
                    "web.base_url",
                    format!("{:?} is not an http(s) URL without a query", raw.base_url),
                )
            })?;
        let bind = raw.bind.trim().parse().map_err(|_| {
            ConfigError::new(
                "web.bind",
                format!("{:?} is not an address such as 127.0.0.1:8080", raw.bind),
            )
        })?;
        for (key, days) in [
            ("web.answer_link_days", raw.answer_link_days),
            ("web.unsubscribe_link_days", raw.unsubscribe_link_days),
        ] {
            if !(1..=3650).contains(&days) {
                return Err(ConfigError::new(key, format!("{days} is outside 1..=3650")));
            }
        }
        Ok(Self {
            base_url,
            bind,
            answer_link_life: TimeDelta::days(raw.answer_link_days.into()),
            unsubscribe_link_life: TimeDelta::days(raw.unsubscribe_link_days.into()),
        })
    }

    /// The answer page of a token: `<base>s/<token>`.
    pub fn answer_url(&self, token: &str) -> String {
        format!("{}s/{token}", self.base_url)
    }

    /// The unsubscribe page of a token: `<base>u/<token>`.
    pub fn unsubscribe_url(&self, token: &str) -> String {
        format!("{}u/{token}", self.base_url)
    }
}
