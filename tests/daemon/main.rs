//! The daemon as an operator runs it: the real `touchpoint run` binary as a child process,
//! against a sandbox CRM served by the test on loopback and a SQLite file in a temporary
//! folder. Each test starts its own world; every child process is killed when its test ends.

mod helpers;
mod lease;
mod lifecycle;
mod readiness;
// The integration tests' loopback SMTP server; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../integration/smtp.rs"]
mod smtp;
mod timing;
