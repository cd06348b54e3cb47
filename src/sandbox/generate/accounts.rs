//! Generated accounts, owners and contacts: who the customers are and who works with them.
//!
//! Each account is drawn from its own seeded stream, so account 7 is the same whatever the size
//! of the book. Records are kept compact (numbers and flags); names, addresses and ids are
//! rendered when a row is served.

use chrono::{Datelike, Days, Months, NaiveDate};
use serde_json::{Value, json};

use super::people::{self, draw_zone, zone};
use super::time::{Clock, day_start, iso};
use crate::model::Persona;
use crate::sandbox::book::{Filter, SortKey, Sorted};
use crate::sandbox::hash::Draws;

/// How an account uses the product; drives its activities, usage and answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Steady use and contact.
    Healthy,
    /// Was healthy; use and contact have been falling for the last few months.
    Sliding,
    /// Little or no use for most of the last year.
    Dormant,
    /// Signed in the last 90 days.
    New,
}

impl Profile {
    /// How engaged an account with this profile is `days_ago` days before the anchor, from 0
    /// to 1, as a factor on the chance of each use, call or answer.
    pub fn factor(self, days_ago: i64) -> f64 {
        match self {
            Profile::Healthy | Profile::New => 1.0,
            Profile::Sliding if days_ago >= 150 => 1.0,
            Profile::Sliding => 0.15 + 0.85 * days_ago as f64 / 150.0,
            Profile::Dormant if days_ago >= 270 => 0.5,
            Profile::Dormant => 0.04,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Healthy => "healthy",
            Profile::Sliding => "sliding",
            Profile::Dormant => "dormant",
            Profile::New => "new",
        }
    }
}

/// One generated account.
#[derive(Clone, Debug)]
pub struct AccountRec {
    /// From 0; the id is `A-` and the number from 1, six digits.
    pub index: u32,
    /// The original contract date used for everything generated.
    pub start: NaiveDate,
    /// False for the few accounts whose CRM lost the contract date.
    pub shows_start: bool,
    pub shows_domain: bool,
    pub archived_on: Option<NaiveDate>,
    pub updated: i64,
    pub owner: Option<u32>,
    pub zone: Option<u8>,
    pub setup: Option<bool>,
    pub profile: Profile,
    pub seats: u16,
}

impl AccountRec {
    /// The first day with nothing on record: the archive date or the anchor.
    pub fn end(&self, anchor: NaiveDate) -> NaiveDate {
        self.archived_on.unwrap_or(anchor).min(anchor)
    }
}

pub fn account_id(index: u32) -> String {
    format!("A-{:06}", u64::from(index) + 1)
}

/// The index behind an id this book issues (`prefix`, then `digits` digits counting from 1),
/// if it is one of the first `count`.
fn index_of(id: &str, prefix: &str, digits: usize, count: usize) -> Option<u32> {
    let number = id.strip_prefix(prefix).filter(|d| d.len() == digits)?;
    let number: usize = number.parse().ok()?;
    let index = number.checked_sub(1).filter(|index| *index < count)?;
    u32::try_from(index).ok()
}

pub fn account_index(id: &str, accounts: usize) -> Option<u32> {
    index_of(id, "A-", 6, accounts)
}

/// Whether a filter on `account_id` lets the account with this index through.
pub fn wants_account(filter: &Filter, index: u32) -> bool {
    filter
        .account_id
        .as_deref()
        .is_none_or(|id| index_of(id, "A-", 6, usize::MAX) == Some(index))
}

pub fn owner_index(id: &str, owners: u32) -> Option<u32> {
    index_of(id, "O-", 4, owners as usize)
}

pub fn owner_id(index: u32) -> String {
    format!("O-{:04}", u64::from(index) + 1)
}

pub fn contact_id(account: u32, n: u8) -> String {
    format!("C-{:06}-{n}", u64::from(account) + 1)
}

/// About one owner per 250 accounts, at least three; the last one has left (inactive).
pub fn owner_count(accounts: usize) -> u32 {
    u32::try_from(accounts.div_ceil(250).max(3)).unwrap_or(u32::MAX)
}

/// Draws account `index` of a book.
pub fn account(clock: &Clock, index: u32, owners: u32) -> AccountRec {
    let mut draws = Draws::new(&[clock.seed, 0xA1, u64::from(index)]);
    let start = contract_start(&mut draws, clock.anchor);
    let tenure = (clock.anchor - start).num_days();
    let profile = match draws.weighted(&[55, 20, 25]) {
        _ if tenure < 90 => Profile::New,
        0 => Profile::Healthy,
        1 => Profile::Sliding,
        _ => Profile::Dormant,
    };
    let archived_on = (profile != Profile::New && draws.chance(0.04))
        .then(|| clock.anchor - Days::new(draws.between(1, (tenure - 30).clamp(2, 300) as u64)));
    let updated = match archived_on {
        Some(day) => day_start(day) + draws.between(8 * 3600, 18 * 3600) as i64,
        None => clock.recent_second(&mut draws, tenure.min(365)),
    };

    AccountRec {
        index,
        start,
        shows_start: !draws.chance(0.005),
        shows_domain: !draws.chance(0.05),
        archived_on,
        updated,
        owner: draw_owner(&mut draws, owners),
        zone: (!draws.chance(0.03)).then(|| draw_zone(&mut draws)),
        setup: draw_setup(&mut draws, profile),
        profile,
        seats: draws.between(1, 5) as u16 * draws.between(1, 40) as u16,
    }
}

/// From a few days to six years before the anchor; some on a month's end, a few on 29 February.
fn contract_start(draws: &mut Draws, anchor: NaiveDate) -> NaiveDate {
    let days = match draws.weighted(&[6, 12, 37, 45]) {
        0 => draws.between(3, 90),
        1 => draws.between(90, 365),
        2 => draws.between(365, 1095),
        _ => draws.between(1095, 2190),
    };
    let start = anchor - Days::new(days);
    if draws.chance(0.01) {
        return last_leap_day(anchor).unwrap_or(start);
    }
    if draws.chance(0.05) {
        return month_end(start)
            .filter(|end| *end < anchor)
            .unwrap_or(start);
    }
    start
}

fn month_end(day: NaiveDate) -> Option<NaiveDate> {
    let first = day.with_day(1)?;
    first.checked_add_months(Months::new(1))?.pred_opt()
}

/// The latest 29 February at least a week before the anchor.
fn last_leap_day(anchor: NaiveDate) -> Option<NaiveDate> {
    (anchor.year() - 8..=anchor.year())
        .rev()
        .filter_map(|year| NaiveDate::from_ymd_opt(year, 2, 29))
        .find(|day| *day + Days::new(7) <= anchor)
}

/// Most accounts have an active owner; a few have none and a few sit with the one who left.
fn draw_owner(draws: &mut Draws, owners: u32) -> Option<u32> {
    let inactive = owners - 1;
    match draws.weighted(&[2, 2, 96]) {
        0 => None,
        1 => Some(inactive),
        _ => Some(draws.between(0, u64::from(inactive)) as u32),
    }
}

/// Whether the basic set-up is done: mostly yes, less so for dormant and new accounts; a few
/// unknown.
fn draw_setup(draws: &mut Draws, profile: Profile) -> Option<bool> {
    let weights = match profile {
        Profile::Healthy => [95, 3, 2],
        Profile::Sliding => [85, 10, 5],
        Profile::Dormant => [60, 33, 7],
        Profile::New => [50, 45, 5],
    };
    match draws.weighted(&weights) {
        0 => Some(true),
        1 => Some(false),
        _ => None,
    }
}

/// The accounts, in id order, with their `(updated_at, id)` order beside.
pub struct AccountList {
    pub seed: u64,
    pub recs: Vec<AccountRec>,
    pub by_update: Vec<u32>,
}

impl AccountList {
    pub fn new(seed: u64, recs: Vec<AccountRec>) -> Self {
        let mut by_update: Vec<u32> = recs.iter().map(|account| account.index).collect();
        by_update.sort_by_key(|index| (recs[*index as usize].updated, *index));
        Self {
            seed,
            recs,
            by_update,
        }
    }

    fn render(&self, account: &AccountRec) -> Value {
        let (name, slug) = people::company(self.seed, account.index);
        json!({
            "id": account_id(account.index),
            "name": name,
            "domain": account.shows_domain.then(|| format!("{slug}.example.com")),
            "owner_id": account.owner.map(owner_id),
            "basic_setup_done": account.setup,
            "contract_start_date": account.shows_start.then(|| account.start.to_string()),
            "timezone": account.zone.and_then(zone).map(|tz| tz.name()),
            "archived": account.archived_on.is_some(),
            "updated_at": iso(account.updated),
        })
    }
}

impl Sorted for AccountList {
    fn len(&self) -> usize {
        self.by_update.len()
    }

    fn key(&self, index: usize) -> SortKey {
        let account = &self.recs[self.by_update[index] as usize];
        SortKey::at_second(account.updated, account_id(account.index))
    }

    fn row(&self, index: usize) -> Option<Value> {
        Some(self.render(&self.recs[self.by_update[index] as usize]))
    }
}

/// The owners (CSMs): rendered from the seed alone.
pub struct OwnerList {
    pub seed: u64,
    pub count: u32,
}

impl Sorted for OwnerList {
    fn len(&self) -> usize {
        self.count as usize
    }

    fn key(&self, index: usize) -> SortKey {
        SortKey::named(owner_id(index as u32))
    }

    fn row(&self, index: usize) -> Option<Value> {
        let index = index as u32;
        let mut draws = Draws::new(&[self.seed, 0x0E, u64::from(index)]);
        let (first, last) = people::person(self.seed, u64::from(index) << 40);
        Some(json!({
            "id": owner_id(index),
            "email": people::address(&first, &last, "vendor.example.com"),
            "name": format!("{first} {last}"),
            "timezone": zone(draw_zone(&mut draws)).map(|tz| tz.name()),
            "active": index + 1 < self.count,
        }))
    }
}

/// How a contact's address is (or is not) on record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Email {
    Normal,
    Missing,
    /// `first.last.slug.example.com`: the `@` was lost.
    NoAt,
    /// `first@@slug.example.com`.
    DoubleAt,
    /// The same person as contact 1 of another account (a consultant on two accounts).
    SharedWith(u32),
}

/// One generated contact.
#[derive(Clone, Debug)]
pub struct ContactRec {
    pub account: u32,
    /// 1 to 6 within the account.
    pub n: u8,
    pub persona: Option<Persona>,
    pub email: Email,
    pub zone: Option<u8>,
    pub named: bool,
    pub opt_out: bool,
    pub archived: bool,
    pub merged: bool,
    pub updated: i64,
}

impl ContactRec {
    pub fn is_live(&self) -> bool {
        !self.archived && !self.merged
    }

    pub fn has_email(&self) -> bool {
        matches!(self.email, Email::Normal | Email::SharedWith(_))
    }
}

/// Draws the 1 to 6 contacts of an account.
pub fn contacts(clock: &Clock, account: &AccountRec) -> Vec<ContactRec> {
    let mut draws = Draws::new(&[clock.seed, 0xC1, u64::from(account.index)]);
    let count = 1 + draws.weighted(&[15, 25, 25, 18, 10, 7]) as u8;
    let tenure = (account.end(clock.anchor) - account.start)
        .num_days()
        .max(1);

    (1..=count)
        .map(|n| {
            let shared = n == count && n > 1 && account.index > 0 && draws.chance(0.03);
            let mut contact = contact(&mut draws, n);
            if shared {
                contact.email = Email::SharedWith(account.index - 1);
                contact.named = true;
            }
            contact.account = account.index;
            contact.updated = clock.second_before(&mut draws, account.end(clock.anchor), tenure);
            contact
        })
        .collect()
}

fn contact(draws: &mut Draws, n: u8) -> ContactRec {
    let persona = if n == 1 {
        [
            Some(Persona::ExecutiveSponsor),
            Some(Persona::Champion),
            Some(Persona::Admin),
        ][draws.weighted(&[85, 10, 5])]
    } else {
        [
            Some(Persona::ExecutiveSponsor),
            Some(Persona::Champion),
            Some(Persona::Admin),
            Some(Persona::EndUser),
            Some(Persona::Other),
            None,
        ][draws.weighted(&[4, 30, 20, 34, 7, 5])]
    };
    let email = [Email::Normal, Email::Missing, Email::NoAt, Email::DoubleAt]
        [draws.weighted(&[945, 40, 10, 5])];
    let archived = n > 1 && draws.chance(0.02);
    ContactRec {
        account: 0,
        n,
        persona,
        email,
        zone: draws.chance(0.3).then(|| draw_zone(draws)),
        named: !draws.chance(0.03),
        opt_out: draws.chance(0.03),
        archived,
        merged: n > 1 && !archived && draws.chance(0.015),
        updated: 0,
    }
}

/// The contacts in `(updated_at, id)` order.
pub struct ContactList {
    pub seed: u64,
    pub recs: Vec<ContactRec>,
}

impl ContactList {
    pub fn new(seed: u64, mut recs: Vec<ContactRec>) -> Self {
        recs.sort_by_key(|contact| (contact.updated, contact.account, contact.n));
        Self { seed, recs }
    }

    /// The person behind a contact: themself, or contact 1 of the account they are shared with.
    fn person(&self, contact: &ContactRec) -> (u32, (String, String)) {
        let (account, n) = match contact.email {
            Email::SharedWith(other) => (other, 1),
            _ => (contact.account, contact.n),
        };
        let who = people::contact_person(account, n);
        (account, people::person(self.seed, who))
    }

    fn email(&self, contact: &ContactRec) -> Option<String> {
        let (account, (first, last)) = self.person(contact);
        let (_, slug) = people::company(self.seed, account);
        let domain = format!("{slug}.example.com");
        let address = people::address(&first, &last, &domain);
        match contact.email {
            Email::Normal | Email::SharedWith(_) => Some(address),
            Email::Missing => None,
            Email::NoAt => Some(address.replace('@', ".")),
            Email::DoubleAt => Some(format!("{}@@{domain}", first.to_ascii_lowercase())),
        }
    }

    fn name(&self, contact: &ContactRec) -> Option<String> {
        let (_, (first, last)) = self.person(contact);
        contact.named.then(|| format!("{first} {last}"))
    }
}

impl Sorted for ContactList {
    fn len(&self) -> usize {
        self.recs.len()
    }

    fn key(&self, index: usize) -> SortKey {
        let contact = &self.recs[index];
        SortKey::at_second(contact.updated, contact_id(contact.account, contact.n))
    }

    fn row(&self, index: usize) -> Option<Value> {
        let contact = &self.recs[index];
        Some(json!({
            "id": contact_id(contact.account, contact.n),
            "account_id": account_id(contact.account),
            "email": self.email(contact),
            "name": self.name(contact),
            "persona": contact.persona.map(Persona::as_str),
            "timezone": contact.zone.and_then(zone).map(|tz| tz.name()),
            "email_opt_out": contact.opt_out,
            "merged_into": contact.merged.then(|| contact_id(contact.account, 1)),
            "archived": contact.archived,
            "updated_at": iso(contact.updated),
        }))
    }

    fn passes(&self, index: usize, filter: &Filter) -> bool {
        wants_account(filter, self.recs[index].account)
    }
}
