//! touchpoint's integration tests: the real code against the sandbox CRM on loopback (port 0)
//! and a temporary SQLite file per test.

mod book;
mod browser;
mod cli;
mod client;
mod config;
mod cycle;
mod deploy;
mod faults;
mod helpers;
mod jobs;
mod privacy;
mod smtp;
mod surveys;
mod tasks;
