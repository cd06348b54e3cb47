//! Generated feature usage, computed on demand for any window.
//!
//! Whether an account used a feature on a day, how often and by how many people is a pure
//! function of the seed, the account, the feature and the day. `GET /v1/usage` therefore
//! aggregates any window on the fly and no daily row is ever stored, which is what lets a book
//! of 100,000 accounts (hundreds of millions of account-feature-days) fit in memory.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Weekday};
use serde_json::{Value, json};

use super::Generated;
use super::accounts::{AccountRec, Profile, account_id};
use crate::sandbox::book::{SortKey, Sorted, UsageQuery};
use crate::sandbox::hash::{Draws, hash, mix, unit};

/// The product's features, in name order (the order usage rows are served in).
pub const FEATURES: [&str; 40] = [
    "alerts",
    "annotations",
    "api_access",
    "approvals",
    "audit_log",
    "automations",
    "bulk_edit",
    "calendar_sync",
    "comments",
    "custom_fields",
    "dashboards",
    "data_export",
    "data_import",
    "email_digest",
    "file_uploads",
    "filters",
    "forecasting",
    "forms",
    "goals",
    "integrations",
    "kanban_board",
    "mobile_app",
    "notifications",
    "permissions",
    "reports",
    "roadmaps",
    "saved_views",
    "scheduling",
    "search",
    "sharing",
    "single_sign_on",
    "sla_timers",
    "tags",
    "templates",
    "time_tracking",
    "timeline",
    "user_groups",
    "webhooks",
    "widgets",
    "workflows",
];

/// The five features that show a customer gets value: the default key features of scoring.
pub const KEY_FEATURES: [&str; 5] = [
    "alerts",
    "automations",
    "dashboards",
    "integrations",
    "reports",
];

/// On a weekend, use is this share of a weekday's.
const WEEKEND_FACTOR: f64 = 0.15;
/// A new customer's first two weeks, while they set up, run at this share of full use.
const ONBOARDING_FACTOR: f64 = 0.4;

/// How much an account uses a feature: its chance of use on a weekday at full engagement, or 0
/// when the account never uses it.
fn intensity(seed: u64, account: &AccountRec, feature: usize) -> f64 {
    let mut draws = Draws::new(&[seed, 0x05, u64::from(account.index), feature as u64]);
    let key = KEY_FEATURES.contains(&FEATURES[feature]);
    let share_using = match (key, account.profile) {
        (false, _) => 0.35,
        (true, Profile::Healthy) => 0.92,
        (true, Profile::Sliding) => 0.85,
        (true, Profile::Dormant) => 0.6,
        (true, Profile::New) => 0.75,
    };
    if !draws.chance(share_using) {
        return 0.0;
    }
    if key {
        draws.uniform(0.25, 0.7)
    } else {
        draws.uniform(0.03, 0.35)
    }
}

/// One pair's totals over a window.
#[derive(Default)]
struct Totals {
    days_active: u32,
    event_count: u32,
    active_users: u32,
}

/// The usage of every (account, feature) pair over one window, in `(account_id, feature)`
/// order; positions without use render as nothing.
pub struct UsageView {
    book: Arc<Generated>,
    wanted: [bool; FEATURES.len()],
    first: NaiveDate,
    end: NaiveDate,
}

impl UsageView {
    pub fn new(book: Arc<Generated>, query: &UsageQuery) -> anyhow::Result<Self> {
        let first = query
            .window_end
            .checked_sub_days(chrono::Days::new(u64::from(query.window_days)))
            .ok_or_else(|| anyhow::anyhow!("the window starts before the calendar does"))?;
        let mut wanted = [query.features.is_none(); FEATURES.len()];
        for name in query.features.iter().flatten() {
            let name = name.trim();
            if let Some(index) = FEATURES.iter().position(|f| f.eq_ignore_ascii_case(name)) {
                wanted[index] = true;
            }
        }
        Ok(Self {
            book,
            wanted,
            first,
            end: query.window_end,
        })
    }

    fn totals(&self, account: &AccountRec, feature: usize) -> Totals {
        let seed = self.book.clock.seed;
        let intensity = intensity(seed, account, feature);
        let mut totals = Totals::default();
        if intensity <= 0.0 {
            return totals;
        }
        let first = self.first.max(account.start);
        let end = self.end.min(account.end(self.book.clock.anchor));
        for day in first.iter_days().take_while(|day| *day < end) {
            let chance = intensity * self.factor(account, day);
            let draw = hash(&[
                seed,
                0xDA,
                u64::from(account.index),
                feature as u64,
                day_number(day),
            ]);
            if unit(draw) >= chance {
                continue;
            }
            let events = 1 + mix(draw ^ 1) % (3 + (intensity * 40.0) as u64);
            let crowd = (f64::from(account.seats) * intensity / 2.0).max(1.0) as u64;
            let users = 1 + mix(draw ^ 2) % crowd;
            totals.days_active += 1;
            totals.event_count += events as u32;
            totals.active_users = totals.active_users.max(users as u32);
        }
        totals
    }

    /// The account's engagement on a day, times the weekly rhythm.
    fn factor(&self, account: &AccountRec, day: NaiveDate) -> f64 {
        let days_ago = (self.book.clock.anchor - day).num_days();
        let weekly = match day.weekday() {
            Weekday::Sat | Weekday::Sun => WEEKEND_FACTOR,
            _ => 1.0,
        };
        let onboarding = if (day - account.start).num_days() < 14 {
            ONBOARDING_FACTOR
        } else {
            1.0
        };
        account.profile.factor(days_ago) * weekly * onboarding
    }
}

fn day_number(day: NaiveDate) -> u64 {
    u64::try_from(day.num_days_from_ce()).unwrap_or_default()
}

impl Sorted for UsageView {
    fn len(&self) -> usize {
        self.book.accounts.recs.len() * FEATURES.len()
    }

    fn key(&self, index: usize) -> SortKey {
        let (account, feature) = (index / FEATURES.len(), index % FEATURES.len());
        SortKey::pair(account_id(account as u32), FEATURES[feature])
    }

    fn row(&self, index: usize) -> Option<Value> {
        let (account, feature) = (index / FEATURES.len(), index % FEATURES.len());
        if !self.wanted[feature] {
            return None;
        }
        let account = &self.book.accounts.recs[account];
        let totals = self.totals(account, feature);
        (totals.days_active > 0).then(|| {
            json!({
                "account_id": account_id(account.index),
                "feature": FEATURES[feature],
                "days_active": totals.days_active,
                "event_count": totals.event_count,
                "active_users": totals.active_users,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_in_name_order_and_include_the_key_ones() {
        assert!(FEATURES.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(KEY_FEATURES.iter().all(|key| FEATURES.contains(key)));
    }
}
