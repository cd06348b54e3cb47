//! touchpoint: customer-success automation for tech-touch accounts.
//!
//! - [`model`]: the records of the REST contract and their lenient parsing.
//! - [`sandbox`]: the sandbox CRM, a contract server with generated data and switchable faults.
//! - [`settings`]: configuration loading and validation.
//! - [`source`]: where records come from (a CSV book; the REST client joins it later).
pub mod model;
pub mod sandbox;
pub mod settings;
pub mod source;
