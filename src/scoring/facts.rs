//! The compact per-account evidence the rules read, and the folding rules that build it one
//! record at a time.
//!
//! A book can hold 100,000 accounts with millions of activity and usage rows, so the puller
//! never keeps raw records: it folds each one into its account's [`AccountFacts`] with a
//! [`FactsBuilder`], which applies the windows and the "what counts" rules here, in the pure
//! core, where they are tested. The facts keep only what a rule or a receipt needs: the latest
//! piece of evidence and a few counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::config::ScoringConfig;
use super::windows::Windows;
use crate::model::{
    Account, AccountId, Activity, ActivityId, ActivityType, Contact, ContactId, Outcome,
    ResponseId, SurveyKind, SurveyResponse, UsageRow,
};

/// Everything the D.E.A.R. rules look at for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFacts {
    pub account_id: AccountId,
    /// The original contract date (OCD) tenure counts from.
    pub contract_start_date: Option<NaiveDate>,
    pub basic_setup_done: Option<bool>,
    /// Live contacts whose persona is a configured key persona.
    pub key_personas: u32,
    /// The latest completed call/meeting (configured types) in the engagement window with at
    /// least one key-persona contact.
    pub key_persona_meeting: Option<Evidence>,
    /// Completed calls/meetings in the window without a key persona; only for the reason text.
    pub other_meetings: u32,
    /// The latest attended session of the configured webinar series in the window.
    pub office_hours: Option<Evidence>,
    /// No-shows at that series in the window; only for the reason text.
    pub office_hours_no_shows: u32,
    /// Distinct active days per key feature in the adoption window, keyed by the configured
    /// spelling; an absent feature had 0 days.
    pub feature_days: FeatureDays,
    /// Goal-survey answers. The builder keeps those submitted in the ROI window; the ROI rule
    /// re-checks the window, so facts assembled by hand may hold answers of any age.
    pub goal_answers: Vec<GoalAnswer>,
    /// The latest goal survey sent to the account that counts as "asked": sent in the ROI
    /// window and at least `survey_min_age_days` before now. Keeping the latest *old enough*
    /// one matters: a survey sent last week must not hide one sent five months ago.
    pub goal_survey_sent_at: Option<DateTime<Utc>>,
}

impl AccountFacts {
    /// Facts with no evidence at all: every measure of such an account is N/A or RED.
    pub fn new(account_id: AccountId) -> AccountFacts {
        AccountFacts {
            account_id,
            contract_start_date: None,
            basic_setup_done: None,
            key_personas: 0,
            key_persona_meeting: None,
            other_meetings: 0,
            office_hours: None,
            office_hours_no_shows: 0,
            feature_days: FeatureDays::default(),
            goal_answers: Vec::new(),
            goal_survey_sent_at: None,
        }
    }
}

/// One activity that proves something, quoted by id in the receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub activity_id: ActivityId,
    pub occurred_at: DateTime<Utc>,
}

impl Evidence {
    fn from_activity(activity: &Activity) -> Evidence {
        Evidence {
            activity_id: activity.id.clone(),
            occurred_at: activity.occurred_at,
        }
    }

    /// The later of two, ties broken by id so the choice never depends on record order.
    fn latest(current: Option<Evidence>, candidate: Evidence) -> Evidence {
        match current {
            Some(existing) if existing.key() >= candidate.key() => existing,
            _ => candidate,
        }
    }

    fn key(&self) -> (DateTime<Utc>, &str) {
        (self.occurred_at, self.activity_id.as_str())
    }
}

/// One answer to the goal survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalAnswer {
    pub id: ResponseId,
    pub submitted_at: DateTime<Utc>,
    /// `None` when the respondent left the question unanswered: it still shows the account
    /// was asked.
    pub goal_achieved: Option<bool>,
}

/// What folding did with a record, so the puller can count and log what it skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folded {
    Counted,
    Skipped(Skip),
}

/// Why a record was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The record belongs to another account than the facts.
    OtherAccount,
    /// It happened outside the measure's window (including at or after `now`).
    OutsideWindow,
    /// A contact that is archived, merged away, or not of a key persona.
    NotKeyPersona,
    /// An activity type, outcome or series that no measure uses.
    NotScored,
    /// A usage row for a feature that is not a key feature.
    NotKeyFeature,
    /// A survey answer that is not a goal answer (NPS is not part of D.E.A.R.).
    NotGoalSurvey,
    /// A goal answer already folded (the same response read from two sources).
    Duplicate,
    /// A goal survey sent too recently to expect an answer yet.
    TooRecent,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::OtherAccount => "belongs to another account",
            Skip::OutsideWindow => "outside the window",
            Skip::NotKeyPersona => "not a live key-persona contact",
            Skip::NotScored => "not used by any measure",
            Skip::NotKeyFeature => "not a key feature",
            Skip::NotGoalSurvey => "not a goal-survey answer",
            Skip::Duplicate => "already counted",
            Skip::TooRecent => "sent too recently to count",
        }
    }
}

/// Folds records into [`AccountFacts`] with the same windows the rules use. Build one per
/// scoring run (it holds that run's `now`) and share it across accounts.
#[derive(Debug, Clone)]
pub struct FactsBuilder<'a> {
    config: &'a ScoringConfig,
    windows: Windows,
    /// The configured key features, shared by every account's [`FeatureDays`].
    key_features: Vec<Arc<str>>,
}

impl<'a> FactsBuilder<'a> {
    pub fn new(config: &'a ScoringConfig, now: DateTime<Utc>) -> FactsBuilder<'a> {
        FactsBuilder {
            config,
            windows: Windows::new(config, now),
            key_features: config
                .adoption()
                .key_features
                .iter()
                .map(|f| Arc::from(f.as_str()))
                .collect(),
        }
    }

    /// The run's windows, for building source queries.
    pub fn windows(&self) -> &Windows {
        &self.windows
    }

    /// The key features, as configured: the usage source is asked for these only.
    pub fn key_features(&self) -> &[String] {
        &self.config.adoption().key_features
    }

    /// The activity types any measure reads: the meeting types and webinars.
    pub fn activity_types(&self) -> Vec<ActivityType> {
        let mut types = self.config.engagement().meeting_types.clone();
        types.push(ActivityType::Webinar);
        types
    }

    /// Starts an account's facts from its own record.
    pub fn start(&self, account: &Account) -> AccountFacts {
        AccountFacts {
            contract_start_date: account.contract_start_date,
            basic_setup_done: account.basic_setup_done,
            ..AccountFacts::new(account.id.clone())
        }
    }

    /// Whether a contact's presence in a meeting makes it a key-persona meeting. The puller
    /// keeps the ids of the contacts for which this is true and answers `fold_activity`'s
    /// lookup from them.
    pub fn is_key_persona(&self, contact: &Contact) -> bool {
        let key_personas = &self.config.engagement().key_personas;
        contact.is_live() && contact.persona.is_some_and(|p| key_personas.contains(&p))
    }

    pub fn fold_contact(&self, facts: &mut AccountFacts, contact: &Contact) -> Folded {
        if contact.account_id != facts.account_id {
            return Folded::Skipped(Skip::OtherAccount);
        }
        if !self.is_key_persona(contact) {
            return Folded::Skipped(Skip::NotKeyPersona);
        }
        facts.key_personas += 1;
        Folded::Counted
    }

    /// Folds a call, meeting or webinar row. `is_key_persona` answers for the account's
    /// contact ids (see [`FactsBuilder::is_key_persona`]); ids it does not know count as not
    /// key. The counts assume the puller folds each activity id once.
    pub fn fold_activity(
        &self,
        facts: &mut AccountFacts,
        activity: &Activity,
        is_key_persona: impl Fn(&ContactId) -> bool,
    ) -> Folded {
        if activity.account_id != facts.account_id {
            return Folded::Skipped(Skip::OtherAccount);
        }
        if !self.windows.engagement.contains(activity.occurred_at) {
            return Folded::Skipped(Skip::OutsideWindow);
        }
        if self.is_meeting(activity) {
            return fold_meeting(facts, activity, is_key_persona);
        }
        if self.is_office_hours(activity) {
            return fold_office_hours(facts, activity);
        }
        Folded::Skipped(Skip::NotScored)
    }

    /// Folds one usage row, which the source already aggregated over the adoption window
    /// (`window_end = windows().adoption.end`). Should a source send a feature twice, the
    /// larger count is kept: adding them could double-count the same days.
    pub fn fold_usage(&self, facts: &mut AccountFacts, row: &UsageRow) -> Folded {
        if row.account_id != facts.account_id {
            return Folded::Skipped(Skip::OtherAccount);
        }
        let found = self
            .key_features
            .iter()
            .find(|name| name.eq_ignore_ascii_case(row.feature.trim()));
        let Some(feature) = found else {
            return Folded::Skipped(Skip::NotKeyFeature);
        };
        facts.feature_days.raise(feature, row.days_active);
        Folded::Counted
    }

    /// Folds a survey answer; only goal answers submitted in the ROI window count.
    pub fn fold_response(&self, facts: &mut AccountFacts, response: &SurveyResponse) -> Folded {
        if response.account_id != facts.account_id {
            return Folded::Skipped(Skip::OtherAccount);
        }
        if response.survey != SurveyKind::Goal {
            return Folded::Skipped(Skip::NotGoalSurvey);
        }
        if !self.windows.roi.contains(response.submitted_at) {
            return Folded::Skipped(Skip::OutsideWindow);
        }
        if facts.goal_answers.iter().any(|a| a.id == response.id) {
            return Folded::Skipped(Skip::Duplicate);
        }
        facts.goal_answers.push(GoalAnswer {
            id: response.id.clone(),
            submitted_at: response.submitted_at,
            goal_achieved: response.goal_achieved,
        });
        Folded::Counted
    }

    /// Folds the send time of a goal survey touchpoint sent to the account.
    pub fn fold_goal_survey_sent(
        &self,
        facts: &mut AccountFacts,
        sent_at: DateTime<Utc>,
    ) -> Folded {
        if !self.windows.roi.contains(sent_at) {
            return Folded::Skipped(Skip::OutsideWindow);
        }
        if !self.windows.survey_counts(sent_at) {
            return Folded::Skipped(Skip::TooRecent);
        }
        facts.goal_survey_sent_at = facts.goal_survey_sent_at.max(Some(sent_at));
        Folded::Counted
    }

    fn is_meeting(&self, activity: &Activity) -> bool {
        let types: &[ActivityType] = &self.config.engagement().meeting_types;
        types.contains(&activity.kind) && activity.outcome == Outcome::Completed
    }

    fn is_office_hours(&self, activity: &Activity) -> bool {
        let series = &self.config.engagement().webinar_series;
        let in_series = activity
            .series
            .as_deref()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case(series));
        activity.kind == ActivityType::Webinar && in_series
    }
}

fn fold_meeting(
    facts: &mut AccountFacts,
    activity: &Activity,
    is_key_persona: impl Fn(&ContactId) -> bool,
) -> Folded {
    if activity.contact_ids.iter().any(is_key_persona) {
        let evidence = Evidence::from_activity(activity);
        facts.key_persona_meeting =
            Some(Evidence::latest(facts.key_persona_meeting.take(), evidence));
    } else {
        facts.other_meetings += 1;
    }
    Folded::Counted
}

fn fold_office_hours(facts: &mut AccountFacts, activity: &Activity) -> Folded {
    match activity.outcome {
        Outcome::Attended => {
            let evidence = Evidence::from_activity(activity);
            facts.office_hours = Some(Evidence::latest(facts.office_hours.take(), evidence));
            Folded::Counted
        }
        Outcome::NoShow => {
            facts.office_hours_no_shows += 1;
            Folded::Counted
        }
        _ => Folded::Skipped(Skip::NotScored),
    }
}

/// Distinct active days per key feature, keyed by the configured spelling; an absent feature
/// had 0 days. A short list rather than a map: there are a handful of key features, every
/// account of the book has one of these, and the names are shared with the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BTreeMap<String, u32>", into = "BTreeMap<String, u32>")]
pub struct FeatureDays(Vec<(Arc<str>, u32)>);

impl FeatureDays {
    /// Sets the days of `feature`.
    pub fn insert(&mut self, feature: impl Into<Arc<str>>, days: u32) {
        let feature = feature.into();
        match self.0.iter_mut().find(|(name, _)| *name == feature) {
            Some((_, known)) => *known = days,
            None => self.0.push((feature, days)),
        }
    }

    /// Raises the days of `feature` to `days`, if that is more: two rows for one feature
    /// (a usage feed split by source) count the busier one.
    pub fn raise(&mut self, feature: &Arc<str>, days: u32) {
        match self.0.iter_mut().find(|(name, _)| name == feature) {
            Some((_, known)) => *known = (*known).max(days),
            None => self.0.push((Arc::clone(feature), days)),
        }
    }

    pub fn get(&self, feature: &str) -> Option<&u32> {
        self.0
            .iter()
            .find(|(name, _)| &**name == feature)
            .map(|(_, days)| days)
    }

    pub fn contains_key(&self, feature: &str) -> bool {
        self.get(feature).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &u32)> {
        self.0.iter().map(|(name, days)| (name, days))
    }
}

impl<'a> IntoIterator for &'a FeatureDays {
    type Item = (&'a Arc<str>, &'a u32);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Arc<str>, u32)>,
        fn(&'a (Arc<str>, u32)) -> (&'a Arc<str>, &'a u32),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(name, days)| (name, days))
    }
}

impl<S: AsRef<str>> FromIterator<(S, u32)> for FeatureDays {
    fn from_iter<I: IntoIterator<Item = (S, u32)>>(items: I) -> Self {
        let mut days = FeatureDays::default();
        for (feature, count) in items {
            days.insert(feature.as_ref(), count);
        }
        days
    }
}

impl From<BTreeMap<String, u32>> for FeatureDays {
    fn from(map: BTreeMap<String, u32>) -> Self {
        map.into_iter().collect()
    }
}

impl From<FeatureDays> for BTreeMap<String, u32> {
    fn from(days: FeatureDays) -> Self {
        days.0
            .into_iter()
            .map(|(name, count)| (name.to_string(), count))
            .collect()
    }
}
