//! Pulling a book from a [`Source`] into compact per-account facts.
//!
//! A pull runs in two phases. First owners, accounts and contacts are read (concurrently), so
//! that every contact's account and persona are known. Then activities, usage and survey
//! answers are read (concurrently) and folded at once into each account's
//! [`AccountFacts`]: only the evidence scoring needs is kept, never the raw rows, so memory
//! grows with the number of accounts and contacts, not with the number of activities.
//!
//! Records are deduplicated by id (the same row on two pages counts once; the newest
//! `updated_at` wins). What the source noticed about the data beyond bad rows (see
//! [`Source::take_notes`]) and usage counted past its window are kept as [`Book::notes`] for
//! the run report. A row that cannot be read costs that row only: it is kept as a
//! [`Rejected`] record with its reason and, when it names its account, holds that account
//! back (its data is incomplete, and touchpoint never scores missing data as if it were
//! empty). A row that names no account holds none back; the rest of the book is scored. A
//! list that cannot be read to its end, or that sent rows none of which could be read (a
//! renamed column, a bridge that changed its format), fails the whole pull.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

use crate::model::{
    Account, AccountId, Activity, ActivityId, Contact, ContactId, Owner, OwnerId, Rejected,
    ResponseId, SurveyKind, SurveyResponse, UsageRow,
};
use crate::scoring::{AccountFacts, FactsBuilder, Folded, ScoringConfig};
use crate::source::{ActivityQuery, Source, SourceError, UsageQuery};

/// How far back survey answers are read: the ROI window, plus a margin so an answer's
/// late-arriving sync still lands in the window it belongs to.
const ANSWER_MARGIN_DAYS: i64 = 31;

/// A list that could not be read to its end.
#[derive(Debug, Clone)]
pub struct ListFailure {
    pub dataset: &'static str,
    pub error: SourceError,
}

/// Rows read per list, for the run report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RowCounts {
    pub owners: u64,
    pub accounts: u64,
    pub contacts: u64,
    pub activities: u64,
    pub usage: u64,
    pub survey_responses: u64,
}

/// Everything a pull learned.
#[derive(Debug, Default)]
pub struct Book {
    pub accounts: BTreeMap<AccountId, Account>,
    pub owners: HashMap<OwnerId, Owner>,
    /// Every contact, newest version of each, ordered by id. A sorted vector rather than a
    /// map: a large book has several contacts per account, and a map's spare capacity would
    /// cost more than the contacts themselves.
    pub contacts: Vec<Contact>,
    pub facts: HashMap<AccountId, AccountFacts>,
    pub rejected: Vec<Rejected>,
    /// Accounts whose data is incomplete, with the first reason found.
    pub held: BTreeMap<AccountId, String>,
    pub failures: Vec<ListFailure>,
    pub rows: RowCounts,
    /// NPS answers submitted in `[nps_since, now)`, which may open follow-up tasks.
    pub recent_nps: Vec<SurveyResponse>,
    /// What the data looked like beyond its rejected rows (an id on several rows of a file, a
    /// value the contract does not list, a count past its window), one line each, for the
    /// run report's data warnings.
    pub notes: Vec<String>,
}

impl Book {
    /// Whether every list was read to its end.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }

    fn reject(&mut self, rejected: Rejected) {
        if let Some(account) = rejected
            .account_id
            .as_deref()
            .and_then(|id| AccountId::parse(id).ok())
        {
            let reason = format!(
                "a row of {} was rejected: {}",
                rejected.dataset, rejected.reason
            );
            self.held.entry(account).or_insert(reason);
        }
        tracing::warn!(
            dataset = %rejected.dataset,
            record.id = rejected.record_id.as_deref().unwrap_or("?"),
            account.id = rejected.account_id.as_deref().unwrap_or("?"),
            "skipped a record: {}",
            crate::telemetry::mask_emails_in(&rejected.reason)
        );
        self.rejected.push(rejected);
    }
}

/// Reads a whole book as of `now`, keeping the NPS answers submitted since `nps_since`.
pub async fn pull<S: Source>(
    source: &S,
    config: &ScoringConfig,
    now: DateTime<Utc>,
    nps_since: DateTime<Utc>,
) -> Book {
    let builder = FactsBuilder::new(config, now);
    let mut book = Book::default();

    read_people(source, &mut book).await;
    book.notes.extend(source.take_notes());
    if !book.is_complete() {
        return book;
    }

    start_facts(&builder, &mut book);
    read_evidence(source, &builder, (nps_since, now), &mut book).await;
    book.notes.extend(source.take_notes());
    book
}

/// Phase one: owners, accounts and contacts.
async fn read_people<S: Source>(source: &S, book: &mut Book) {
    let mut owners: Vec<Result<Owner, Rejected>> = Vec::new();
    let mut accounts = Vec::<Account>::new();
    let mut contacts = Vec::<Contact>::new();
    let mut account_rejects = Vec::new();
    let mut contact_rejects = Vec::new();
    let mut rows = RowCounts::default();

    let (owners_read, accounts_read, contacts_read) = {
        let mut owner_sink = |row| owners.push(row);
        let mut account_sink = |row: Result<Account, Rejected>| {
            rows.accounts += 1;
            match row {
                Ok(account) => accounts.push(account),
                Err(r) => account_rejects.push(r),
            }
        };
        let mut contact_sink = |row: Result<Contact, Rejected>| {
            rows.contacts += 1;
            match row {
                Ok(contact) => contacts.push(contact),
                Err(r) => contact_rejects.push(r),
            }
        };
        tokio::join!(
            source.owners(&mut owner_sink),
            source.accounts(&mut account_sink),
            source.contacts(&mut contact_sink),
        )
    };

    rows.owners = owners.len() as u64;
    book.rows = rows;
    for row in owners {
        match row {
            Ok(owner) => {
                book.owners.insert(owner.id.clone(), owner);
            }
            Err(r) => book.reject(r),
        }
    }
    account_rejects
        .into_iter()
        .chain(contact_rejects)
        .for_each(|r| book.reject(r));
    let lists = [
        ("owners", book.rows.owners, owners_read),
        ("accounts", book.rows.accounts, accounts_read),
        ("contacts", book.rows.contacts, contacts_read),
    ];
    for (dataset, read, result) in lists {
        note_failure(book, dataset, unreadable(book, dataset, read, result));
    }
    newest_by_id(&mut accounts, |a| (&a.id, a.updated_at));
    newest_by_id(&mut contacts, |c| (&c.id, c.updated_at));
    book.accounts = accounts
        .into_iter()
        .map(|account| (account.id.clone(), account))
        .collect();
    book.contacts = contacts;
}

/// Keeps the newest version of each record read more than once (on two pages, or twice in a
/// file), leaving the records ordered by id. Sorted in place and not shrunk afterwards: on a
/// large book a stable sort's scratch space, or a shrinking copy, would be a second copy of
/// every contact at the moment memory is fullest; the spare capacity was never touched.
fn newest_by_id<T, K: Ord>(records: &mut Vec<T>, key: impl Fn(&T) -> (&K, DateTime<Utc>)) {
    records.sort_unstable_by(|a, b| {
        let ((a_id, a_at), (b_id, b_at)) = (key(a), key(b));
        a_id.cmp(b_id).then(b_at.cmp(&a_at))
    });
    records.dedup_by(|later, kept| key(later).0 == key(kept).0);
}

/// Starts every account's facts from its record and its live key-persona contacts.
fn start_facts(builder: &FactsBuilder<'_>, book: &mut Book) {
    book.facts = book
        .accounts
        .values()
        .map(|account| (account.id.clone(), builder.start(account)))
        .collect();
    for contact in &book.contacts {
        if let Some(facts) = book.facts.get_mut(&contact.account_id) {
            builder.fold_contact(facts, contact);
        }
    }
}

/// The state the three evidence lists fold into. They are read concurrently within one task;
/// the mutex is never contended for long, it only lets three sinks share the facts.
struct Folding<'b> {
    facts: &'b mut HashMap<AccountId, AccountFacts>,
    rejected: Vec<Rejected>,
    seen_activities: HashSet<ActivityId>,
    seen_answers: HashSet<ResponseId>,
    recent_nps: Vec<SurveyResponse>,
    rows: RowCounts,
    past_window: PastWindow,
}

/// Usage rows whose `days_active` exceeded the days of the window they cover: a bridge that
/// counts over a longer window, or counts events rather than days. They are clamped to the
/// window and noted once.
#[derive(Default)]
struct PastWindow {
    rows: u64,
    largest: u32,
}

impl PastWindow {
    /// Clamps `row` to a window of `days`, counting it when it needed that.
    fn clamp(&mut self, row: &mut UsageRow, days: u32) {
        if row.days_active <= days {
            return;
        }
        self.rows += 1;
        self.largest = self.largest.max(row.days_active);
        row.days_active = days;
    }

    fn note(&self, days: u32) -> Option<String> {
        (self.rows > 0).then(|| {
            format!(
                "usage: {} row(s) say a feature was used on more days than the {days}-day \
                 adoption window has (up to {}); they count as {days}",
                self.rows, self.largest
            )
        })
    }
}

impl Folding<'_> {
    fn fold(
        &mut self,
        account_id: &AccountId,
        fold: impl FnOnce(&mut AccountFacts) -> Folded,
    ) -> Option<Folded> {
        self.facts.get_mut(account_id).map(fold)
    }
}

/// Phase two: activities, usage and survey answers, folded into the facts as they arrive.
async fn read_evidence<S: Source>(
    source: &S,
    builder: &FactsBuilder<'_>,
    (nps_since, now): (DateTime<Utc>, DateTime<Utc>),
    book: &mut Book,
) {
    let windows = *builder.windows();
    let activity_query = ActivityQuery {
        since: windows.engagement.start,
        until: windows.engagement.end,
        types: builder.activity_types(),
    };
    let usage_query = UsageQuery {
        window_end: windows.adoption.end,
        window_days: windows.adoption.days() as u32,
        features: builder.key_features().to_vec(),
    };
    let answers_since = (windows.roi.start - TimeDelta::days(ANSWER_MARGIN_DAYS)).min(nps_since);
    let key_contacts: HashSet<ContactId> = book
        .contacts
        .iter()
        .filter(|c| builder.is_key_persona(c))
        .map(|c| c.id.clone())
        .collect();

    let folding = Mutex::new(Folding {
        facts: &mut book.facts,
        rejected: Vec::new(),
        seen_activities: HashSet::new(),
        seen_answers: HashSet::new(),
        recent_nps: Vec::new(),
        rows: RowCounts::default(),
        past_window: PastWindow::default(),
    });
    let lock = || folding.lock().unwrap_or_else(PoisonError::into_inner);
    let mut activity_sink = |row: Result<Activity, Rejected>| {
        let mut f = lock();
        f.rows.activities += 1;
        match row {
            Ok(a) if !f.seen_activities.contains(&a.id) => {
                let folded = f.fold(&a.account_id, |facts| {
                    builder.fold_activity(facts, &a, |id| key_contacts.contains(id))
                });
                // Only counted activities can be counted twice, so only they are remembered.
                if folded == Some(Folded::Counted) {
                    f.seen_activities.insert(a.id);
                }
            }
            Ok(_duplicate) => {}
            Err(r) => f.rejected.push(r),
        }
    };
    let mut usage_sink = |row: Result<UsageRow, Rejected>| {
        let mut f = lock();
        f.rows.usage += 1;
        match row {
            Ok(mut u) => {
                f.past_window.clamp(&mut u, usage_query.window_days);
                f.fold(&u.account_id, |facts| builder.fold_usage(facts, &u));
            }
            Err(r) => f.rejected.push(r),
        }
    };
    let mut answer_sink = |row: Result<SurveyResponse, Rejected>| {
        let mut f = lock();
        f.rows.survey_responses += 1;
        match row {
            Ok(a) if f.seen_answers.insert(a.id.clone()) => {
                let recent = (nps_since..now).contains(&a.submitted_at);
                if a.survey == SurveyKind::Nps && a.score.is_some() && recent {
                    f.recent_nps.push(a.clone());
                }
                f.fold(&a.account_id, |facts| builder.fold_response(facts, &a));
            }
            Ok(_duplicate) => {}
            Err(r) => f.rejected.push(r),
        }
    };
    let (activities_read, usage_read, answers_read) = tokio::join!(
        source.activities(&activity_query, &mut activity_sink),
        source.usage(&usage_query, &mut usage_sink),
        source.survey_responses(answers_since, &mut answer_sink),
    );

    let folded = folding.into_inner().unwrap_or_else(PoisonError::into_inner);
    book.rows.activities = folded.rows.activities;
    book.rows.usage = folded.rows.usage;
    book.rows.survey_responses = folded.rows.survey_responses;
    book.recent_nps = folded.recent_nps;
    book.notes
        .extend(folded.past_window.note(usage_query.window_days));
    folded.rejected.into_iter().for_each(|r| book.reject(r));
    let lists = [
        ("activities", book.rows.activities, activities_read),
        ("usage", book.rows.usage, usage_read),
        ("survey_responses", book.rows.survey_responses, answers_read),
    ];
    for (dataset, read, result) in lists {
        note_failure(book, dataset, unreadable(book, dataset, read, result));
    }
}

/// Folds what touchpoint itself knows into a pulled book: answers collected through its own
/// pages and the goal surveys it sent. An answer the CRM also returned (touchpoint pushed it in
/// an earlier cycle) has the same id: it is counted once, and the local copy wins, because a
/// person may have replaced their answer since it was pushed.
pub fn fold_local(
    book: &mut Book,
    config: &ScoringConfig,
    (nps_since, now): (DateTime<Utc>, DateTime<Utc>),
    answers: &[SurveyResponse],
    goal_surveys_sent: &[(AccountId, DateTime<Utc>)],
) {
    let builder = FactsBuilder::new(config, now);
    for answer in answers {
        if let Some(facts) = book.facts.get_mut(&answer.account_id) {
            facts.goal_answers.retain(|a| a.id != answer.id);
            builder.fold_response(facts, answer);
        }
        book.recent_nps.retain(|a| a.id != answer.id);
        let recent = (nps_since..now).contains(&answer.submitted_at);
        if answer.survey == SurveyKind::Nps && answer.score.is_some() && recent {
            book.recent_nps.push(answer.clone());
        }
    }
    for (account, sent_at) in goal_surveys_sent {
        if let Some(facts) = book.facts.get_mut(account) {
            builder.fold_goal_survey_sent(facts, *sent_at);
        }
    }
}

/// A list that sent rows of which none could be read has the wrong shape (a renamed or
/// missing column, a bridge that changed its format), not a few bad records: scoring without
/// it would score every account as if it had no such rows, so it fails like a list that could
/// not be read. A list with some good rows costs only its bad ones.
fn unreadable(
    book: &Book,
    dataset: &str,
    rows: u64,
    result: Result<(), SourceError>,
) -> Result<(), SourceError> {
    result?;
    let mut rejected = book.rejected.iter().filter(|r| r.dataset == dataset);
    let Some(first) = rejected.next() else {
        return Ok(());
    };
    let unread = 1 + rejected.count() as u64;
    if unread < rows {
        return Ok(());
    }
    Err(SourceError::Malformed {
        what: format!("the {dataset} list"),
        reason: format!(
            "none of its {rows} row(s) could be read, so it cannot be trusted for any account \
             (first: {})",
            first.reason
        ),
    })
}

fn note_failure(book: &mut Book, dataset: &'static str, result: Result<(), SourceError>) {
    if let Err(error) = result {
        tracing::error!(dataset, "could not read the {dataset} list: {error}");
        book.failures.push(ListFailure { dataset, error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(days_active: u32) -> UsageRow {
        UsageRow {
            account_id: AccountId::parse("A-1").expect("an id"),
            feature: "alerts".to_owned(),
            days_active,
            event_count: 10,
            active_users: 1,
        }
    }

    #[test]
    fn days_active_past_the_window_count_as_the_window_and_are_noted_once() {
        let mut past = PastWindow::default();
        let mut rows = [usage(12), usage(45), usage(31), usage(30)];

        for row in &mut rows {
            past.clamp(row, 30);
        }

        let days: Vec<u32> = rows.iter().map(|row| row.days_active).collect();
        assert_eq!(days, [12, 30, 30, 30]);
        assert_eq!(
            past.note(30).as_deref(),
            Some(
                "usage: 2 row(s) say a feature was used on more days than the 30-day adoption \
                 window has (up to 45); they count as 30"
            )
        );
        assert_eq!(PastWindow::default().note(30), None, "nothing to say");
    }
}
