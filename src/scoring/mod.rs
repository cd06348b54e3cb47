//! The D.E.A.R. health score: Deployment, Engagement, Adoption and ROI, each judged GREEN,
//! YELLOW, RED or N/A with a one-line reason, combined into a 0-100 score and a band, with a
//! [`Receipt`] that records everything behind the verdict.
//!
//! This module is pure: plain data and an explicit `now` go in, a [`Scorecard`] comes out.
//! It never reads the clock, the network or the database, so a run "as of" any date is
//! reproducible and every rule is testable to the second. It owns the `[scoring]`
//! configuration ([`RawScoringConfig`], validated into [`ScoringConfig`]), the windows, the
//! per-account evidence ([`AccountFacts`]) and the rules that fold raw records into it
//! ([`FactsBuilder`]). Pulling the records, storing receipts, writing scores back to the CRM
//! and turning "turned red" into tasks belong to other modules.
//!
//! # Windows
//!
//! "The last N days" as of `now` has one meaning everywhere:
//!
//! - For timestamps (meetings, webinars, survey answers and sends) it is the half-open
//!   interval `[now − N × 24 h, now)`: an activity exactly N days before `now` counts, one at
//!   `now` does not (it is in the future of an as-of run).
//! - For daily data (feature usage) it is the N whole UTC days before `now`'s UTC date,
//!   `[date(now) − N, date(now))`; the usage source is asked for `window_end = date(now)` and
//!   `window_days = N`, and today, still in progress, is left out.
//! - With `now` at 00:00 UTC (what `--as-of YYYY-MM-DD` gives) the two coincide exactly.
//! - Tenure is the number of whole days from the original contract date to `date(now)`.
//! - A goal survey counts as "asked" when sent in the ROI window and at least
//!   `survey_min_age_days` before `now` (exactly 14 days counts).
//!
//! [`Windows`] computes them all from the config and `now`; the puller uses the same struct to
//! build its source queries, so the puller and the rules cannot disagree.

mod adoption;
mod config;
mod deployment;
mod engagement;
mod facts;
mod overall;
mod receipt;
mod roi;
mod types;
mod windows;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use adoption::{AdoptionInputs, FeatureUse, StageApplied};
pub use config::{
    AdoptionConfig, Bands, EngagementConfig, Points, RawAdoption, RawBands, RawEngagement,
    RawPoints, RawRoi, RawScoringConfig, RawStage, RawWeights, RoiConfig, ScoringConfig, Stage,
    Targets,
};
pub use deployment::DeploymentInputs;
pub use engagement::EngagementInputs;
pub use facts::{AccountFacts, Evidence, FactsBuilder, FeatureDays, Folded, GoalAnswer, Skip};
pub use overall::{Overall, Part};
pub use receipt::{MeasureResult, Receipt};
pub use roi::RoiInputs;
pub use types::{Colour, Measure, PerMeasure, Score};
pub use windows::{DayWindow, Window, Windows};

use crate::model::AccountId;

/// One account's health as of one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scorecard {
    pub account_id: AccountId,
    /// `None` when too few measures have data.
    pub score: Option<Score>,
    /// GREEN, YELLOW or RED by the configured bands; N/A exactly when `score` is `None`.
    pub band: Colour,
    /// The colour per measure, shaped as the contract's `measures` object.
    pub measures: PerMeasure<Colour>,
    /// The reasons, inputs, windows, thresholds and arithmetic behind all of the above.
    pub receipt: Receipt,
}

/// Scores one account as of `now`.
pub fn score(facts: &AccountFacts, config: &ScoringConfig, now: DateTime<Utc>) -> Scorecard {
    let windows = Windows::new(config, now);

    let deployment = deployment::judge(facts);
    let engagement = engagement::judge(facts, config, &windows);
    let adoption = adoption::judge(facts, config, &windows);
    let roi = roi::judge(facts, config, &windows);

    let measures = PerMeasure {
        deployment: deployment.colour,
        engagement: engagement.colour,
        adoption: adoption.colour,
        roi: roi.colour,
    };
    let overall = overall::combine(measures, config);

    Scorecard {
        account_id: facts.account_id.clone(),
        score: overall.score,
        band: overall.band,
        measures,
        receipt: Receipt {
            account_id: facts.account_id.clone(),
            as_of: now,
            model_version: config.model_version().to_owned(),
            config_version: config.version(),
            deployment,
            engagement,
            adoption,
            roi,
            overall,
        },
    }
}
