//! A small hand-made book whose colours were worked out by hand from the brief's rules, served
//! by the sandbox from CSV and read directly as a CSV source.

use std::path::Path;

use tempfile::TempDir;
use touchpoint::cycle::{CycleReport, Trend};

use crate::helpers::{App, settings_for};

const ACCOUNTS: &str = "\
id,name,domain,owner_id,basic_setup_done,contract_start_date,timezone,archived,updated_at
A-green,Green Co OLD,,O-1,false,2023-06-30,Europe/London,false,2024-01-01T00:00:00Z
A-green,Green Co,green.example.com,O-1,true,2023-06-30,Europe/London,false,2024-12-01T00:00:00Z
A-red,Red Co,,O-1,false,2022-02-28,,false,2024-12-01T10:00:00+02:00
A-new,New Co,,,,2024-12-20,,false,1734652800000
A-mid,Mid Co,,O-1,true,2024-02-29,,false,2024-12-01
A-gone,Gone Co,,O-1,true,2020-01-31,,true,2024-06-01T00:00:00
";

const OWNERS: &str = "\
id,email,name,timezone,active
O-1,owner.one@example.com,Owner One,America/New_York,true
";

const CONTACTS: &str = "\
id,account_id,email,name,persona,timezone,email_opt_out,merged_into,archived,updated_at
P-g1,A-green,g1@example.com,Gee One,executive_sponsor,,false,,false,2024-01-01T00:00:00Z
P-r1,A-red,r1@example.com,Arr One,executive_sponsor,,false,,false,2024-01-01T00:00:00Z
P-m1,A-mid,m1@example.com,Em One,champion,,false,,false,2024-01-01T00:00:00Z
P-m2,A-mid,m2@example.com,Em Two,executive_sponsor,,false,,true,2024-01-01T00:00:00Z
P-n1,A-new,,,,,false,,false,2024-12-20T00:00:00Z
";

const ACTIVITIES: &str = "\
id,account_id,type,series,occurred_at,outcome,contact_ids,updated_at
AC-1,A-green,call,,2024-12-01T15:00:00Z,completed,P-g1,2024-12-01T16:00:00Z
AC-2,A-green,webinar,office_hours,2024-12-10T16:00:00Z,attended,P-g1,2024-12-10T17:00:00Z
AC-3,A-red,call,,2024-12-05T15:00:00Z,canceled,P-r1,2024-12-05T16:00:00Z
AC-4,A-red,webinar,office_hours,2024-11-12T16:00:00Z,no_show,P-r1,2024-11-12T17:00:00Z
AC-5,A-mid,meeting,,2024-12-15T10:00:00Z,completed,P-m1;P-m2,2024-12-15T11:00:00Z
AC-6,A-mid,webinar,office_hours,2024-10-08T16:00:00Z,attended,P-m1,2024-10-08T17:00:00Z
AC-7,A-new,webinar,office_hours,2024-12-10T16:00:00Z,attended,P-n1,2024-12-10T17:00:00Z
AC-8,A-red,call,,2024-09-01T10:00:00Z,completed,P-r1,2024-09-01T11:00:00Z
";

const ANSWERS: &str = "\
id,account_id,contact_id,survey,submitted_at,score,goal_achieved,comment
SR-1,A-green,P-g1,goal,2024-07-05T10:00:00Z,,true,
SR-2,A-red,P-r1,goal,2024-07-05T10:00:00Z,,false,
SR-3,A-mid,P-m1,nps,2024-11-05T10:00:00Z,9,,Great
SR-4,A-mid,P-m1,goal,2023-08-01T00:00:00Z,,true,
";

/// Daily usage: `account, feature index, days` in December 2024 (inside the 30 days before
/// 2025-01-01), plus rows that fall just outside the window and must not count.
fn usage(features: &[String]) -> String {
    let mut csv = String::from("account_id,feature,date,event_count,active_users\n");
    let mut add = |account: &str, feature: usize, days: &[&str]| {
        for date in days {
            csv.push_str(&format!("{account},{},{date},5,2\n", features[feature]));
        }
    };
    let four = ["2024-12-02", "2024-12-09", "2024-12-16", "2024-12-23"];
    for feature in 0..4 {
        add("A-green", feature, &four);
    }
    add(
        "A-mid",
        0,
        &[
            "2024-12-02",
            "2024-12-03",
            "2024-12-04",
            "2024-12-05",
            "2024-12-06",
        ],
    );
    add("A-mid", 1, &four);
    add("A-mid", 2, &four);
    add(
        "A-mid",
        3,
        &["2024-12-01", "2024-12-10", "2024-12-11", "2024-12-12"],
    );
    add(
        "A-mid",
        4,
        &["2024-12-20", "2024-12-21", "2024-12-22", "2025-01-01"],
    );
    add("A-red", 0, &["2024-12-20", "2024-12-21"]);
    csv.push_str("A-red,unrelated_feature,2024-12-20,9,1\n");
    csv
}

pub fn write_book(dir: &Path, features: &[String]) {
    let files = [
        ("accounts.csv", ACCOUNTS.to_owned()),
        ("owners.csv", OWNERS.to_owned()),
        ("contacts.csv", CONTACTS.to_owned()),
        ("activities.csv", ACTIVITIES.to_owned()),
        ("usage.csv", usage(features)),
        ("survey_responses.csv", ANSWERS.to_owned()),
    ];
    for (name, body) in files {
        std::fs::write(dir.join(name), body).expect("the test book is written");
    }
}

fn key_features() -> Vec<String> {
    let dir = TempDir::new().expect("a temporary folder");
    settings_for("http://127.0.0.1:1", dir.path(), &[])
        .scoring
        .adoption()
        .key_features
        .clone()
}

fn colours(report: &CycleReport, account: &str) -> (Option<u8>, String, String) {
    let scored = report
        .accounts
        .iter()
        .find(|a| a.account_id == account)
        .unwrap_or_else(|| panic!("{account} was scored"));
    (
        scored.current.score,
        scored.current.band.to_string(),
        scored.current.measures.map(|c| c.as_str()).join("/"),
    )
}

fn assert_hand_worked_colours(report: &CycleReport) {
    assert_eq!(
        report.accounts_pulled, 5,
        "the duplicated account counts once"
    );
    assert_eq!(report.archived, 1);
    assert_eq!(report.scored, 4);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);

    let expect = |account, score: Option<u8>, band: &str, measures: &str| {
        assert_eq!(
            colours(report, account),
            (score, band.to_owned(), measures.to_owned()),
            "{account}"
        );
    };
    expect("A-green", Some(100), "green", "green/green/green/green");
    expect("A-red", Some(0), "red", "red/red/red/red");
    expect("A-mid", Some(67), "yellow", "green/yellow/yellow/na");
    expect("A-new", None, "na", "na/yellow/na/na");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_against_a_csv_book_served_over_http_gives_the_rules_colours() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    let app = App::from_csv(book.path()).await;

    let report = app.plan("2025-01-01").await;

    assert_hand_worked_colours(&report);
    assert!(report.accounts.iter().all(|a| a.trend == Trend::New));
    assert!(
        app.crm.health().is_empty(),
        "plan writes nothing to the CRM"
    );
    assert!(
        !app.settings.store.path.exists(),
        "plan creates no store file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_csv_source_reads_the_same_book_to_the_same_colours() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    let dir = TempDir::new().expect("a temporary folder");

    let (report, _) = cycle_over(book.path(), dir.path()).await;

    assert_hand_worked_colours(&report);
    assert!(
        report.writeback_note.is_some(),
        "a CSV book has no CRM to write to"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_rows_that_spell_a_key_feature_in_capitals_still_count_for_it() {
    let book = TempDir::new().expect("a temporary folder");
    let features = key_features();
    write_book(book.path(), &features);
    let usage = book.path().join("usage.csv");
    let text = std::fs::read_to_string(&usage).expect("written");
    let first = &features[0];
    let capitalised = format!("{}{}", first[..1].to_uppercase(), &first[1..]);
    assert_ne!(&capitalised, first);
    let rewritten = text.replace(&format!(",{first},"), &format!(",{capitalised},"));
    assert_ne!(rewritten, text, "some rows now spell `{capitalised}`");
    std::fs::write(&usage, rewritten).expect("rewritten");
    let dir = TempDir::new().expect("a temporary folder");
    let settings = csv_settings(book.path(), dir.path());

    let served = App::from_csv(book.path()).await.plan("2025-01-01").await;
    let read = touchpoint::cli::cycle_once(
        &settings,
        None,
        "plan",
        crate::helpers::start_of("2025-01-01"),
        touchpoint::cycle::Mode::Plan,
    )
    .await
    .expect("the plan runs");

    assert_hand_worked_colours(&served);
    assert_hand_worked_colours(&read);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_stores_receipts_that_explain_each_colour() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    let app = App::from_csv(book.path()).await;

    app.cycle("2025-01-01").await;
    let explained = app
        .store()
        .await
        .explain("A-mid")
        .await
        .expect("the store answers")
        .expect("A-mid has a score");

    let receipt = explained.receipt.to_string();
    for evidence in ["AC-6", "2024-02-29", "dear"] {
        assert!(
            receipt.contains(evidence),
            "the receipt quotes {evidence}: {receipt}"
        );
    }
    assert_eq!(
        explained.history.len(),
        1,
        "the first score is the baseline"
    );
    assert_eq!(explained.scored.score, Some(67));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_feature_nobody_uses_is_flagged_as_a_data_problem() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    let app = App::from_csv(book.path()).await.with(&[(
        "TOUCHPOINT__SCORING__ADOPTION__KEY_FEATURES",
        "dashboards,alerts,integrations,reports,dashbords",
    )]);

    let report = app.plan("2025-01-01").await;

    let about_features: Vec<&String> = report
        .warnings
        .iter()
        .filter(|warning| warning.contains("key feature"))
        .collect();
    assert_eq!(about_features.len(), 1, "{:?}", report.warnings);
    assert!(about_features[0].contains("`dashbords`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_column_fails_the_pull_instead_of_scoring_empty_data() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    let activities = book.path().join("activities.csv");
    let text = std::fs::read_to_string(&activities).expect("written");
    std::fs::write(&activities, text.replacen("account_id", "acct_id", 1)).expect("rewritten");
    let dir = TempDir::new().expect("a temporary folder");
    let settings = csv_settings(book.path(), dir.path());

    let report = touchpoint::cli::cycle_once(
        &settings,
        None,
        "plan",
        crate::helpers::start_of("2025-01-01"),
        touchpoint::cycle::Mode::Plan,
    )
    .await
    .expect("the plan runs");

    assert_eq!(report.status, touchpoint::store::RunStatus::Failed);
    let reason = report.reason.expect("a reason");
    assert!(
        reason.contains("activities.csv has no `account_id` column, which the contract requires"),
        "{reason}"
    );
    assert!(
        report.accounts.is_empty(),
        "nothing is scored from a list it cannot trust"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_that_names_no_account_costs_that_row_and_the_book_is_still_scored() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    let activities = book.path().join("activities.csv");
    let mut text = std::fs::read_to_string(&activities).expect("written");
    text.push_str("AC-9,,call,,2024-12-20T15:00:00Z,completed,P-g1,2024-12-20T16:00:00Z\n");
    std::fs::write(&activities, text).expect("rewritten");
    let dir = TempDir::new().expect("a temporary folder");

    let (report, store) = cycle_over(book.path(), dir.path()).await;

    assert_eq!(report.status, touchpoint::store::RunStatus::Partial);
    let reason = report.reason.clone().expect("a partial run says why");
    assert!(reason.contains("1 record(s) rejected"), "{reason}");
    assert!(report.held.is_empty(), "the row names no account to hold");
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    let rejected = &report.rejected[0];
    assert_eq!(
        (rejected.dataset.as_str(), rejected.record_id.as_deref()),
        ("activities", Some("AC-9"))
    );
    assert_eq!(
        rejected.reason,
        "line 10, column `account_id`: expected an id, found nothing"
    );
    let run_id = report.run_id.clone().expect("a run id");
    let kept = store
        .run_rejections(&run_id)
        .await
        .expect("the run's rejections");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].reason, rejected.reason);
    let mut hand_worked = report;
    hand_worked.rejected.clear();
    assert_hand_worked_colours(&hand_worked);
}

/// Settings that read the CSV book in `book` directly, with a store of their own in `dir`.
fn csv_settings(book: &Path, dir: &Path) -> touchpoint::settings::Settings {
    let csv_dir = book.display().to_string();
    settings_for(
        "http://127.0.0.1:1",
        dir,
        &[
            ("TOUCHPOINT__SOURCE__KIND", "csv"),
            ("TOUCHPOINT__SOURCE__CSV_DIR", &csv_dir),
        ],
    )
}

/// A cycle over the CSV book in `book`, read directly, with a store of its own in `dir`.
async fn cycle_over(book: &Path, dir: &Path) -> (CycleReport, touchpoint::store::Store) {
    let settings = csv_settings(book, dir);
    let store = touchpoint::store::Store::open(&settings.store)
        .await
        .expect("the store opens");
    let report = touchpoint::cli::cycle_once(
        &settings,
        Some(&store),
        "cycle",
        crate::helpers::start_of("2025-01-01"),
        touchpoint::cycle::Mode::Act,
    )
    .await
    .expect("the cycle runs to a report");
    (report, store)
}

/// Rewrites one file of the book in `dir` with `change`.
fn edit(dir: &Path, file: &str, change: impl FnOnce(String) -> String) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("written");
    std::fs::write(&path, change(text)).expect("rewritten");
}

/// `text` (a CSV file without quoted values) without its column `name`.
fn drop_column(text: &str, name: &str) -> String {
    let header = text.lines().next().expect("a header");
    let index = header
        .split(',')
        .position(|column| column == name)
        .expect("the column is there");
    let mut kept = String::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split(',').collect();
        let others: Vec<&str> = cells
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, cell)| *cell)
            .collect();
        kept.push_str(&others.join(","));
        kept.push('\n');
    }
    kept
}

fn assert_failed_saying(report: &CycleReport, said: &str) {
    assert_eq!(report.status, touchpoint::store::RunStatus::Failed);
    let reason = report.reason.as_deref().unwrap_or_default();
    assert!(reason.contains(said), "{said:?} in {reason}");
    assert!(report.accounts.is_empty(), "nothing is scored");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_csv_file_without_a_column_the_contract_requires_fails_the_run_naming_both() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    let other_book = TempDir::new().expect("a temporary folder");
    write_book(other_book.path(), &key_features());
    edit(book.path(), "accounts.csv", |text| {
        drop_column(&text, "archived")
    });
    edit(other_book.path(), "contacts.csv", |text| {
        drop_column(&text, "email_opt_out")
    });
    let (dir, other_dir) = (
        TempDir::new().expect("a folder"),
        TempDir::new().expect("a folder"),
    );

    let (without_archived, _) = cycle_over(book.path(), dir.path()).await;
    let (without_opt_out, _) = cycle_over(other_book.path(), other_dir.path()).await;

    assert_failed_saying(
        &without_archived,
        "accounts.csv has no `archived` column, which the contract requires",
    );
    assert_failed_saying(
        &without_opt_out,
        "contacts.csv has no `email_opt_out` column, which the contract requires",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stray_quote_fails_the_run_naming_the_line_where_it_opened() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    edit(book.path(), "accounts.csv", |text| {
        text.replacen("\nA-new,", "\n\"A-new,", 1)
    });
    let dir = TempDir::new().expect("a temporary folder");

    let (report, _) = cycle_over(book.path(), dir.path()).await;

    assert_failed_saying(&report, "accounts.csv, line 5: a quoted value opens here");
}

/// Rewrites every file of the book with CR LF line ends, as spreadsheets on Windows save them.
fn to_crlf(book: &Path) {
    for entry in std::fs::read_dir(book).expect("the book") {
        let path = entry.expect("a file").path();
        let text = std::fs::read_to_string(&path).expect("text");
        std::fs::write(&path, text.replace('\n', "\r\n")).expect("rewritten");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_are_numbered_the_same_in_a_book_saved_with_crlf_line_ends() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    edit(book.path(), "activities.csv", |mut text| {
        text.push_str("AC-9,,call,,2024-12-20T15:00:00Z,completed,P-g1,2024-12-20T16:00:00Z\n");
        text
    });
    let lf_dir = TempDir::new().expect("a temporary folder");
    let (lf, _) = cycle_over(book.path(), lf_dir.path()).await;
    to_crlf(book.path());
    let crlf_dir = TempDir::new().expect("a temporary folder");

    let (crlf, _) = cycle_over(book.path(), crlf_dir.path()).await;

    let reasons = |report: &CycleReport| -> Vec<String> {
        report.rejected.iter().map(|r| r.reason.clone()).collect()
    };
    assert_eq!(
        reasons(&lf),
        ["line 10, column `account_id`: expected an id, found nothing"]
    );
    assert_eq!(reasons(&crlf), reasons(&lf));

    edit(book.path(), "accounts.csv", |text| {
        text.replacen("\r\nA-new,", "\r\n\"A-new,", 1)
    });
    let quoted_dir = TempDir::new().expect("a temporary folder");
    let (quoted, _) = cycle_over(book.path(), quoted_dir.path()).await;
    assert_failed_saying(&quoted, "accounts.csv, line 5: a quoted value opens here");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_csv_file_fails_the_run_saying_it_has_no_header_row() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    std::fs::write(book.path().join("activities.csv"), "").expect("emptied");
    let dir = TempDir::new().expect("a temporary folder");

    let (report, _) = cycle_over(book.path(), dir.path()).await;

    assert_failed_saying(&report, "activities.csv has no header row");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_is_not_utf8_costs_its_record_and_holds_its_account() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    let contacts = book.path().join("contacts.csv");
    let text = std::fs::read_to_string(&contacts).expect("written");
    let (before, after) = text.split_once("Arr One").expect("the contact's name");
    let latin1 = [before.as_bytes(), b"Arr \xD8ne", after.as_bytes()].concat();
    std::fs::write(&contacts, latin1).expect("rewritten");
    let dir = TempDir::new().expect("a temporary folder");

    let (report, _) = cycle_over(book.path(), dir.path()).await;

    assert_eq!(report.status, touchpoint::store::RunStatus::Partial);
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    let rejected = &report.rejected[0];
    assert_eq!(
        (
            rejected.record_id.as_deref(),
            rejected.account_id.as_deref()
        ),
        (Some("P-r1"), Some("A-red"))
    );
    assert!(
        rejected.reason.contains("column `name`"),
        "{}",
        rejected.reason
    );
    assert_eq!(report.held.len(), 1, "{:?}", report.held);
    assert_eq!(report.held[0].0, "A-red");
    assert_eq!(report.scored, 3, "the rest of the book is scored");
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_ids_and_unlisted_values_are_warned_once_and_kept_in_the_run_report() {
    let book = TempDir::new().expect("a temporary folder");
    write_book(book.path(), &key_features());
    edit(book.path(), "contacts.csv", |mut text| {
        text.push_str("P-m1,A-mid,m1@example.com,Em One,Champion ,,false,,false,2024-02-01\n");
        text.push_str("P-m3,A-mid,,,chief,,false,,false,2024-01-01T00:00:00Z\n");
        text.push_str("P-m4,A-mid,,,chief,,false,,false,2024-01-01T00:00:00Z\n");
        text
    });
    edit(book.path(), "activities.csv", |mut text| {
        text.push_str("AC-9,A-mid,demo,,2024-12-20T15:00:00Z,completed,P-m1,2024-12-20\n");
        text.push_str("AC-10,A-mid,demo,,2024-12-21T15:00:00Z,completed,P-m1,2024-12-21\n");
        text
    });
    let dir = TempDir::new().expect("a temporary folder");

    let (report, store) = cycle_over(book.path(), dir.path()).await;

    let warned = |about: &str| {
        let found: Vec<&String> = report
            .warnings
            .iter()
            .filter(|w| w.contains(about))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one warning about {about:?}: {:?}",
            report.warnings
        );
        found[0].clone()
    };
    assert!(warned("accounts.csv: 1 row(s) repeat").contains("A-green on lines 2 and 3"));
    assert!(warned("contacts.csv: 1 row(s) repeat").contains("P-m1 on lines 4 and 7"));
    assert!(warned("persona \"chief\"").contains("its 2 row(s) are read as `other`"));
    assert!(warned("type \"demo\"").contains("its 2 row(s) count for nothing"));
    assert_eq!(report.rejected.len(), 0, "{:?}", report.rejected);
    let run_id = report.run_id.as_deref().expect("a run id");
    let run = store
        .run_record(run_id)
        .await
        .expect("the store answers")
        .expect("the run is recorded");
    assert_eq!(run.summary["warnings"], serde_json::json!(report.warnings));
}
