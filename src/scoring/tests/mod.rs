//! Tests of the scoring engine as a whole: each rule and boundary, the configuration, the
//! folding of records, the receipts, and properties over random inputs.

mod config_tests;
mod facts_tests;
mod overall_tests;
mod properties;
mod receipt_tests;
mod rules_tests;
mod support;
