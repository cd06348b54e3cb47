//! Checks that the generated book is well-formed, deterministic and looks like a real book.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::*;
use crate::model::{Account, Activity, Contact, Owner, SurveyResponse, UsageRow};

fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 15).expect("a date")
}

fn book(accounts: usize) -> Arc<Generated> {
    Arc::new(Generated::build(accounts, 42, anchor()).expect("a book"))
}

fn rows(list: &dyn Sorted) -> Vec<Value> {
    (0..list.len())
        .filter_map(|index| list.row(index))
        .collect()
}

fn parse_all<T: DeserializeOwned>(list: &dyn Sorted) -> Vec<T> {
    rows(list)
        .into_iter()
        .map(|row| serde_json::from_value(row.clone()).unwrap_or_else(|e| panic!("{e}: {row}")))
        .collect()
}

fn usage(book: &Arc<Generated>, days: u32, features: Option<Vec<String>>) -> Vec<UsageRow> {
    let query = UsageQuery {
        window_end: anchor(),
        window_days: days,
        features,
    };
    let view = Arc::clone(book).usage(&query).expect("a usage view");
    parse_all(view.as_ref())
}

#[test]
fn every_row_is_a_contract_record_in_contract_order() {
    let book = book(300);

    let accounts: Vec<Account> = parse_all(book.accounts());
    let keys: Vec<_> = accounts
        .iter()
        .map(|a| (a.updated_at, a.id.clone()))
        .collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!(accounts.len(), 300);

    let owners: Vec<Owner> = parse_all(book.owners());
    assert_eq!(owners.len(), 3);
    assert_eq!(owners.iter().filter(|owner| !owner.active).count(), 1);

    let contacts: Vec<Contact> = parse_all(book.contacts());
    let keys: Vec<_> = contacts
        .iter()
        .map(|c| (c.updated_at, c.id.clone()))
        .collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));

    let activities: Vec<Activity> = parse_all(book.activities());
    let keys: Vec<_> = activities
        .iter()
        .map(|a| (a.updated_at, a.id.clone()))
        .collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));

    let answers: Vec<SurveyResponse> = parse_all(book.survey_responses());
    let keys: Vec<_> = answers
        .iter()
        .map(|r| (r.submitted_at, r.id.clone()))
        .collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));

    let used = usage(&book, 30, None);
    let keys: Vec<_> = used
        .iter()
        .map(|u| (u.account_id.clone(), &u.feature))
        .collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn the_same_seed_gives_the_same_book() {
    let (first, second) = (book(200), book(200));
    assert_eq!(rows(first.contacts()), rows(second.contacts()));
    assert_eq!(rows(first.activities()), rows(second.activities()));
    assert_eq!(usage(&first, 90, None), usage(&second, 90, None));

    let other = Arc::new(Generated::build(200, 43, anchor()).expect("a book"));
    assert_ne!(rows(first.accounts()), rows(other.accounts()));
}

#[test]
fn tenure_set_up_and_owners_look_like_a_real_book() {
    let book = book(3000);
    let accounts: Vec<Account> = parse_all(book.accounts());
    let share = |count: usize| count as f64 / accounts.len() as f64;

    let not_set_up = accounts
        .iter()
        .filter(|a| a.basic_setup_done == Some(false));
    assert!((0.05..0.25).contains(&share(not_set_up.count())));
    assert!(accounts.iter().any(|a| a.basic_setup_done.is_none()));

    let starts: Vec<NaiveDate> = accounts
        .iter()
        .filter_map(|a| a.contract_start_date)
        .collect();
    assert!(starts.iter().any(|d| d.month() == 2 && d.day() == 29));
    let month_end = |d: &NaiveDate| (*d + Days::new(1)).day() == 1;
    assert!(starts.iter().filter(|d| month_end(d)).count() > 100);
    let tenure = |d: &NaiveDate| (anchor() - *d).num_days();
    assert!(starts.iter().any(|d| tenure(d) < 14));
    assert!(starts.iter().any(|d| tenure(d) > 5 * 365));

    let summary = book.summary().counts;
    for count in [
        "accounts.no_owner",
        "accounts.inactive_owner",
        "accounts.archived",
    ] {
        assert!(summary.get(count).copied().unwrap_or(0) > 0, "{count}");
    }
}

#[test]
fn contacts_carry_the_dirt_of_a_real_crm() {
    let book = book(2000);
    let contacts: Vec<Contact> = parse_all(book.contacts());

    let mut per_account: HashMap<&str, usize> = HashMap::new();
    for contact in &contacts {
        *per_account.entry(contact.account_id.as_str()).or_default() += 1;
    }
    assert!(per_account.values().all(|count| (1..=6).contains(count)));

    let emails: Vec<&str> = contacts.iter().filter_map(|c| c.email.as_deref()).collect();
    assert!(emails.iter().all(|email| email.ends_with(".example.com")));
    assert!(emails.iter().any(|email| !email.contains('@')));
    assert!(contacts.iter().any(|c| c.email.is_none()));
    assert!(contacts.iter().any(|c| c.name.is_none()));
    assert!(contacts.iter().any(|c| c.merged_into.is_some()));
    assert!(contacts.iter().any(|c| c.archived));
    assert!(contacts.iter().any(|c| c.persona.is_none()));

    let mut accounts_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    for contact in &contacts {
        if let Some(email) = contact.email.as_deref() {
            accounts_of
                .entry(email)
                .or_default()
                .insert(contact.account_id.as_str());
        }
    }
    assert!(accounts_of.values().any(|accounts| accounts.len() > 1));

    let zones: HashSet<&str> = contacts
        .iter()
        .filter_map(|c| c.timezone.as_deref())
        .collect();
    assert!(zones.contains("Asia/Kolkata") && zones.contains("America/Sao_Paulo"));
}

/// A rough D.E.A.R. under the brief's defaults, enough to check the book's mix of colours.
mod dear {
    pub const GREEN: u32 = 100;
    pub const YELLOW: u32 = 50;
    pub const RED: u32 = 0;

    pub fn overall(measures: &[Option<u32>]) -> Option<u32> {
        let known: Vec<u32> = measures.iter().flatten().copied().collect();
        if known.len() < 2 {
            return None;
        }
        let score = known.iter().sum::<u32>() as f64 / known.len() as f64;
        Some(score.round() as u32)
    }

    pub fn adoption(tenure: i64, adopted: usize) -> Option<u32> {
        let (green, yellow) = match tenure {
            ..30 => return None,
            30..90 => (2, 1),
            90..180 => (3, 2),
            _ => (4, 3),
        };
        Some(if adopted >= green {
            GREEN
        } else if adopted >= yellow {
            YELLOW
        } else {
            RED
        })
    }
}

#[test]
fn the_book_scores_a_mix_of_green_yellow_and_red() {
    let book = book(2000);
    let now: DateTime<Utc> = anchor().and_time(chrono::NaiveTime::MIN).and_utc();
    let days_before = |days: i64| now - chrono::TimeDelta::days(days);

    let contacts: Vec<Contact> = parse_all(book.contacts());
    let sponsors: HashSet<String> = contacts
        .iter()
        .filter(|c| c.persona == Some(crate::model::Persona::ExecutiveSponsor))
        .map(|c| c.id.to_string())
        .collect();

    let mut met_sponsor = HashSet::new();
    let mut attended = HashSet::new();
    for activity in parse_all::<Activity>(book.activities()) {
        if activity.occurred_at < days_before(90) || activity.occurred_at >= now {
            continue;
        }
        let account = activity.account_id.to_string();
        match (activity.kind, activity.outcome) {
            (crate::model::ActivityType::Webinar, crate::model::Outcome::Attended) => {
                attended.insert(account);
            }
            (_, crate::model::Outcome::Completed)
                if activity
                    .contact_ids
                    .iter()
                    .any(|c| sponsors.contains(c.as_str())) =>
            {
                met_sponsor.insert(account);
            }
            _ => {}
        }
    }

    let mut goals: HashMap<String, bool> = HashMap::new();
    for answer in parse_all::<SurveyResponse>(book.survey_responses()) {
        if answer.survey == crate::model::SurveyKind::Goal
            && answer.submitted_at >= days_before(365)
        {
            let achieved = goals.entry(answer.account_id.to_string()).or_default();
            *achieved |= answer.goal_achieved == Some(true);
        }
    }

    let key: Vec<String> = usage::KEY_FEATURES.iter().map(|f| f.to_string()).collect();
    let mut adopted: HashMap<String, usize> = HashMap::new();
    for row in usage(&book, 30, Some(key)) {
        if row.days_active >= 4 {
            *adopted.entry(row.account_id.to_string()).or_default() += 1;
        }
    }

    let mut bands: HashMap<&str, usize> = HashMap::new();
    let accounts: Vec<Account> = parse_all(book.accounts());
    for account in accounts.iter().filter(|a| !a.archived) {
        let id = account.id.to_string();
        let deployment = account
            .basic_setup_done
            .map(|done| if done { dear::GREEN } else { dear::RED });
        let engaged = usize::from(met_sponsor.contains(&id)) + usize::from(attended.contains(&id));
        let engagement = [dear::RED, dear::YELLOW, dear::GREEN][engaged];
        let tenure = account
            .contract_start_date
            .map_or(0, |start| (anchor() - start).num_days());
        let adoption = dear::adoption(tenure, adopted.get(&id).copied().unwrap_or(0));
        let roi = goals
            .get(&id)
            .map(|achieved| if *achieved { dear::GREEN } else { dear::RED });
        let band = match dear::overall(&[deployment, Some(engagement), adoption, roi]) {
            None => "na",
            Some(75..) => "green",
            Some(50..) => "yellow",
            Some(_) => "red",
        };
        *bands.entry(band).or_default() += 1;
    }

    let live = accounts.iter().filter(|a| !a.archived).count() as f64;
    let share = |band: &str| bands.get(band).copied().unwrap_or(0) as f64 / live;
    for band in ["green", "yellow", "red"] {
        assert!(share(band) > 0.12, "{band}: {bands:?}");
    }
    assert!(share("green") < 0.7, "{bands:?}");
}
