//! touchpoint: customer-success automation for tech-touch accounts.
//!
//! - [`model`]: the records of the REST contract and their lenient parsing.
//! - [`scoring`]: the pure D.E.A.R. health score, its configuration and its receipts.
//! - [`settings`]: configuration loading and validation.
pub mod model;
pub mod scoring;
pub mod settings;
