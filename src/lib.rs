//! touchpoint: customer-success automation for tech-touch accounts.
//!
//! - [`model`]: the records of the REST contract and their lenient parsing.
//! - [`settings`]: configuration loading and validation, every key typed.
//! - [`source`]: reading a book from the REST contract or a CSV directory.
//! - [`pull`]: a whole pull, folded into compact per-account facts.
//! - [`scoring`]: the pure D.E.A.R. health score with receipts.
//! - [`store`]: the SQLite file: runs, latest scores, history.
//! - [`writeback`]: scores back to the CRM, only what changed.
//! - [`tasks`]: follow-up tasks in the CRM, never duplicated.
//! - [`surveys`]: the goal and NPS surveys: cadence, outbox, tokens, templates, answers.
//! - [`mail`]: survey emails over SMTP or into `.eml` files.
//! - [`web`]: the answer and unsubscribe pages the survey links open.
//! - [`cycle`]: pull, score, store, write back; `plan` does the same and changes nothing.
//! - [`runs`]: the run history, as `touchpoint runs`, `/readyz` and `/metrics` read it.
//! - [`daemon`]: `touchpoint run`: schedules, the scheduler lease, health, readiness, metrics.
//! - [`sandbox`]: a CRM that speaks the contract, for the demo, the tests and benchmarks.
//! - [`demo`]: the out-of-the-box demo.
//! - [`cli`]: the commands a person types.
//! - [`telemetry`]: logging set-up, and masking of people's details in logs.
pub mod cli;
pub mod cycle;
pub mod daemon;
pub mod demo;
pub mod mail;
pub mod model;
pub mod pull;
pub mod runs;
pub mod sandbox;
pub mod scoring;
pub mod settings;
pub mod source;
pub mod store;
pub mod surveys;
pub mod tasks;
pub mod telemetry;
pub mod web;
pub mod writeback;
