//! touchpoint: customer-success automation for tech-touch accounts.
//!
//! - [`model`]: the records of the REST contract and their lenient parsing.
//! - [`settings`]: configuration loading and validation.
pub mod model;
pub mod settings;
