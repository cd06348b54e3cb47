//! Where touchpoint's records come from.
//!
//! - [`csv_dir`]: a CSV book, a directory of exports with one file per contract list.
pub mod csv_dir;
