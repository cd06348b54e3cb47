//! The generated book: a deterministic, realistic set of SaaS customers of any size.
//!
//! The same number of accounts, seed and anchor give byte-identical rows. Accounts, contacts,
//! activities and survey answers are drawn once at start-up into compact records (numbers and
//! flags, about 100 bytes per account all told) and sorted once into contract order; names,
//! addresses and ids are rendered only when a row is served. Usage is never stored: see
//! [`usage`]. Ids are zero-padded (`A-000042`, `C-000042-3`, `AC-000042-017`), so their text
//! order is their numeric order; a book holds at most [`MAX_ACCOUNTS`] accounts.
//!
//! What makes the book look real is described where it is drawn: [`accounts`] (tenure, set-up,
//! owners, dirty contact data), [`activity`] (calls, the monthly webinar, survey answers) and
//! [`usage`] (features and engagement profiles).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::bail;
use chrono::NaiveDate;

use crate::sandbox::book::{Book, BookSummary, Sorted, UsageQuery};

pub mod accounts;
pub mod activity;
pub mod people;
pub mod time;
pub mod usage;

use accounts::{AccountList, ContactList, Email, OwnerList};
use activity::{ActivityList, ResponseList};
use time::Clock;

/// The most accounts a generated book holds: ids have six digits.
pub const MAX_ACCOUNTS: usize = 999_999;

pub struct Generated {
    clock: Clock,
    accounts: AccountList,
    owners: OwnerList,
    contacts: ContactList,
    activities: ActivityList,
    responses: ResponseList,
}

impl Generated {
    /// Draws a book of `accounts` accounts.
    pub fn build(accounts: usize, seed: u64, anchor: NaiveDate) -> anyhow::Result<Self> {
        if accounts > MAX_ACCOUNTS {
            bail!("a generated book holds at most {MAX_ACCOUNTS} accounts, not {accounts}");
        }
        let clock = Clock { seed, anchor };
        let owner_count = accounts::owner_count(accounts);

        let mut account_recs = Vec::with_capacity(accounts);
        let mut contact_recs = Vec::with_capacity(accounts * 4);
        let mut activity_recs = Vec::with_capacity(accounts * 20);
        let mut response_recs = Vec::with_capacity(accounts * 4);
        for index in 0..accounts as u32 {
            let account = accounts::account(&clock, index, owner_count);
            let people = accounts::contacts(&clock, &account);
            activity_recs.extend(activity::activities(&clock, &account, &people));
            response_recs.extend(activity::responses(&clock, &account, &people));
            contact_recs.extend(people);
            account_recs.push(account);
        }

        Ok(Self {
            clock,
            accounts: AccountList::new(seed, account_recs),
            owners: OwnerList {
                seed,
                count: owner_count,
            },
            contacts: ContactList::new(seed, contact_recs),
            activities: ActivityList::new(activity_recs),
            responses: ResponseList::new(response_recs),
        })
    }

    fn account_counts(&self, counts: &mut BTreeMap<String, u64>) {
        let inactive = self.owners.count - 1;
        for account in &self.accounts.recs {
            let mut tally = |name: String| *counts.entry(name).or_default() += 1;
            tally("accounts".to_owned());
            tally(format!("accounts.profile.{}", account.profile.as_str()));
            let setup = account
                .setup
                .map_or("null", |done| if done { "true" } else { "false" });
            tally(format!("accounts.basic_setup_done.{setup}"));
            if account.archived_on.is_some() {
                tally("accounts.archived".to_owned());
            }
            match account.owner {
                None => tally("accounts.no_owner".to_owned()),
                Some(owner) if owner == inactive => tally("accounts.inactive_owner".to_owned()),
                Some(_) => {}
            }
        }
    }

    fn contact_counts(&self, counts: &mut BTreeMap<String, u64>) {
        for contact in &self.contacts.recs {
            let mut tally = |name: &str| *counts.entry(name.to_owned()).or_default() += 1;
            tally("contacts");
            match contact.email {
                Email::Missing => tally("contacts.no_email"),
                Email::NoAt | Email::DoubleAt => tally("contacts.invalid_email"),
                Email::SharedWith(_) => tally("contacts.shared_with_another_account"),
                Email::Normal => {}
            }
            if contact.merged {
                tally("contacts.merged");
            }
            if contact.archived {
                tally("contacts.archived");
            }
        }
    }
}

impl Book for Generated {
    fn accounts(&self) -> &dyn Sorted {
        &self.accounts
    }

    fn owners(&self) -> &dyn Sorted {
        &self.owners
    }

    fn contacts(&self) -> &dyn Sorted {
        &self.contacts
    }

    fn activities(&self) -> &dyn Sorted {
        &self.activities
    }

    fn survey_responses(&self) -> &dyn Sorted {
        &self.responses
    }

    fn usage(self: Arc<Self>, query: &UsageQuery) -> anyhow::Result<Arc<dyn Sorted>> {
        Ok(Arc::new(usage::UsageView::new(self, query)?))
    }

    fn has_account(&self, id: &str) -> bool {
        accounts::account_index(id, self.accounts.recs.len()).is_some()
    }

    fn has_owner(&self, id: &str) -> bool {
        accounts::owner_index(id, self.owners.count).is_some()
    }

    fn summary(&self) -> BookSummary {
        let mut counts = BTreeMap::new();
        self.account_counts(&mut counts);
        self.contact_counts(&mut counts);
        counts.insert("owners".to_owned(), u64::from(self.owners.count));
        counts.insert("activities".to_owned(), self.activities.len() as u64);
        counts.insert("survey_responses".to_owned(), self.responses.len() as u64);
        BookSummary {
            source: "generated".to_owned(),
            anchor: self.clock.anchor,
            counts,
        }
    }
}

#[cfg(test)]
mod tests;
