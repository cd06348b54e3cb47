//! The CSV reader against real files in a temporary folder.

use super::*;
use crate::model::{Account, Activity, Contact, Outcome, Persona};

/// Every row of one list, or the error that ended the file.
fn rows<T: DeserializeOwned>(dir: &Path, dataset: &str) -> Vec<Result<T, Rejected>> {
    read_rows(dir, dataset)
        .expect("the file opens")
        .collect::<Result<_, _>>()
        .expect("the file reads to its end")
}

/// The error that ends a list, at its start or on the way.
fn list_error<T: DeserializeOwned>(dir: &Path, dataset: &str) -> String {
    match read_rows::<T>(dir, dataset) {
        Err(error) => format!("{error:#}"),
        Ok(mut rows) => match rows.find_map(Result::err) {
            Some(error) => error.to_string(),
            None => panic!("{dataset} reads without an error"),
        },
    }
}

fn book(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("a CSV file");
    }
    dir
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a test date")
}

const ACCOUNTS: &str = "\
id,name,domain,owner_id,basic_setup_done,contract_start_date,timezone,archived,updated_at
A-1,Kalo Labs,kalo.example.com,O-1,true,2024-02-29,Europe/Berlin,false,2024-12-01T10:00:00Z
A-2,Miren Group,,,,2023-05-31,,true,2024-11-30
A-3,Broken Co,,O-1,perhaps,2023-01-01,,false,2024-11-30T00:00:00Z
A-4,Short Row,,O-1
";

#[test]
fn accounts_are_read_with_nulls_and_bad_rows_cost_one_row() {
    let dir = book(&[("accounts.csv", ACCOUNTS)]);
    let rows = rows::<Account>(dir.path(), "accounts");

    assert_eq!(rows.len(), 4);
    let first = rows[0].as_ref().expect("first row parses");
    assert_eq!(first.basic_setup_done, Some(true));
    assert_eq!(first.contract_start_date, Some(date("2024-02-29")));
    let second = rows[1].as_ref().expect("second row parses");
    assert_eq!(second.domain, None);
    assert_eq!(second.owner_id, None);
    assert_eq!(second.basic_setup_done, None);
    assert!(second.archived);

    let bad = rows[2].as_ref().expect_err("a bad boolean rejects the row");
    assert_eq!(bad.record_id.as_deref(), Some("A-3"));
    assert_eq!(
        bad.reason,
        "line 4, column `basic_setup_done`: expected true or false, found \"perhaps\""
    );
    let short = rows[3].as_ref().expect_err("a short row is rejected");
    assert!(short.reason.starts_with("line 5:"), "{}", short.reason);
}

#[test]
fn contacts_and_activities_keep_lists_and_personas() {
    let contacts = "\
id,account_id,email,name,persona,timezone,email_opt_out,merged_into,archived,updated_at
P-1,A-1,ana@kalo.example.com,Ana Kalo,executive_sponsor,,false,,false,2024-10-18T11:00:00Z
P-2,A-1,,,,Asia/Tokyo,true,P-1,false,2024-10-18T11:00:00Z
";
    let activities = "\
id,account_id,type,series,occurred_at,outcome,contact_ids,updated_at
AC-1,A-1,webinar,office_hours,2024-12-10T16:00:00Z,attended,P-1;P-2,2024-12-10T17:00:00Z
";
    let dir = book(&[("contacts.csv", contacts), ("activities.csv", activities)]);

    let people: Vec<Contact> = rows(dir.path(), "contacts")
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("both contacts parse");
    assert_eq!(people[0].persona, Some(Persona::ExecutiveSponsor));
    assert_eq!(people[1].email, None);
    assert!(people[1].email_opt_out && !people[1].is_live());

    let calls: Vec<Activity> = rows(dir.path(), "activities")
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("the activity parses");
    assert_eq!(calls[0].outcome, Outcome::Attended);
    assert_eq!(calls[0].contact_ids.len(), 2);
}

#[test]
fn an_absent_file_is_an_error_naming_it() {
    let dir = book(&[]);
    let error = read_rows::<Account>(dir.path(), "survey_responses")
        .err()
        .expect("an absent file fails");
    assert!(format!("{error:#}").contains("survey_responses.csv"));
    assert!(read_rows::<Account>(dir.path(), "deals").is_err());
}

const USAGE: &str = "\
account_id,feature,date,event_count,active_users
A-1,alerts,2024-11-30,9,9
A-1,alerts,2024-12-01,5,2
A-1,alerts,2024-12-01,3,1
A-1,alerts,2024-12-02,0,4
A-1,alerts,2024-12-31,7,1
A-1,reports,2024-12-15,1,1
A-2,alerts,2024-12-20,2,1
A-2,alerts,not-a-date,2,1
A-0,alerts,2025-01-01,2,1
";

#[test]
fn usage_is_aggregated_over_a_half_open_window() {
    let dir = book(&[("usage.csv", USAGE)]);
    let (rows, rejected) =
        aggregate_usage(dir.path(), date("2025-01-01"), 31, None).expect("usage.csv aggregates");

    let summary: Vec<_> = rows
        .iter()
        .map(|row| {
            let key = (row.account_id.as_str(), row.feature.as_str());
            (key, row.days_active, row.event_count, row.active_users)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (("A-1", "alerts"), 2, 15, 4),
            (("A-1", "reports"), 1, 1, 1),
            (("A-2", "alerts"), 1, 2, 1),
        ]
    );
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0]
            .reason
            .starts_with("line 9, column `date`: expected a date")
    );
}

#[test]
fn usage_can_be_narrowed_to_some_features() {
    let dir = book(&[("usage.csv", USAGE)]);
    let only = vec!["reports".to_owned()];
    let (rows, _) = aggregate_usage(dir.path(), date("2025-01-01"), 31, Some(&only))
        .expect("usage.csv aggregates");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].feature, "reports");
}

#[test]
fn a_feature_filter_ignores_case_and_spaces_as_scoring_does() {
    let usage = "\
account_id,feature,date,event_count,active_users
A-1,Dashboards,2024-12-02,3,1
A-1,\" DASHBOARDS\",2024-12-03,2,1
A-1,dashboards,2024-12-04,1,1
A-1,Alerts,2024-12-05,1,1
";
    let dir = book(&[("usage.csv", usage)]);
    let only = vec!["dashboards".to_owned()];

    let (rows, rejected) = aggregate_usage(dir.path(), date("2025-01-01"), 31, Some(&only))
        .expect("usage.csv aggregates");

    assert!(rejected.is_empty(), "{rejected:?}");
    let summary: Vec<_> = rows
        .iter()
        .map(|row| (row.feature.as_str(), row.days_active, row.event_count))
        .collect();
    assert_eq!(
        summary,
        vec![("dashboards", 3, 6)],
        "one feature, three days"
    );
}

const CONTACTS_HEADER: &str =
    "id,account_id,email,name,persona,timezone,email_opt_out,merged_into,archived,updated_at\n";

fn without_column(csv: &str, column: &str) -> String {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(csv.as_bytes());
    let header = reader.headers().expect("a header").clone();
    let drop = header
        .iter()
        .position(|name| name == column)
        .expect("the column");
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let keep = |record: &csv::StringRecord| -> Vec<String> {
        let cells = record.iter().enumerate().filter(|(i, _)| *i != drop);
        cells.map(|(_, cell)| cell.to_owned()).collect()
    };
    writer.write_record(keep(&header)).expect("written");
    for record in reader.records() {
        let record = record.expect("a record");
        writer.write_record(keep(&record)).expect("written");
    }
    String::from_utf8(writer.into_inner().expect("flushed")).expect("text")
}

#[test]
fn a_file_without_a_column_the_contract_requires_fails_naming_file_and_column() {
    let contacts = format!(
        "{CONTACTS_HEADER}P-1,A-1,ana@kalo.example.com,Ana Kalo,,,true,,false,2024-10-18\n"
    );
    let dir = book(&[
        ("accounts.csv", &without_column(ACCOUNTS, "archived")),
        ("contacts.csv", &without_column(&contacts, "email_opt_out")),
        (
            "owners.csv",
            "id,email,name,timezone\nO-1,o@example.com,Owner One,\n",
        ),
    ]);

    let accounts = list_error::<Account>(dir.path(), "accounts");
    let contacts = list_error::<Contact>(dir.path(), "contacts");
    let owners = list_error::<crate::model::Owner>(dir.path(), "owners");

    assert!(
        accounts.ends_with("accounts.csv has no `archived` column, which the contract requires"),
        "{accounts}"
    );
    assert!(
        contacts
            .ends_with("contacts.csv has no `email_opt_out` column, which the contract requires"),
        "{contacts}"
    );
    assert!(
        owners.contains("owners.csv has no `active` column"),
        "{owners}"
    );
}

#[test]
fn optional_columns_may_be_left_out() {
    let dir = book(&[(
        "accounts.csv",
        "archived,updated_at,name,id\nfalse,2024-12-01,Kalo Labs,A-1\n",
    )]);

    let rows = rows::<Account>(dir.path(), "accounts");

    let account = rows[0].as_ref().expect("the row parses");
    assert_eq!(
        (account.id.as_str(), account.domain.as_deref()),
        ("A-1", None)
    );
}

#[test]
fn an_empty_file_fails_its_list_and_a_header_alone_is_an_empty_list() {
    let header = "id,account_id,type,series,occurred_at,outcome,contact_ids,updated_at\n";
    let empty = book(&[("activities.csv", "")]);
    let header_only = book(&[("activities.csv", header)]);

    let error = list_error::<Activity>(empty.path(), "activities");

    assert!(
        error.contains("activities.csv has no header row (the file is empty)"),
        "{error}"
    );
    assert!(rows::<Activity>(header_only.path(), "activities").is_empty());
}

#[test]
fn a_stray_quote_fails_the_file_at_the_line_it_opened() {
    let broken = ACCOUNTS.replacen("A-3,", "\"A-3,", 1);
    let dir = book(&[("accounts.csv", &broken)]);

    let mut read = read_rows::<Account>(dir.path(), "accounts").expect("accounts.csv opens");
    let first_two: Vec<_> = read.by_ref().take(2).collect();
    let then = read.next().expect("a third item");

    assert!(first_two.iter().all(|row| matches!(row, Ok(Ok(_)))));
    let error = then.expect_err("the stray quote ends the file").to_string();
    assert!(
        error.contains("accounts.csv, line 4: a quoted value opens here"),
        "{error}"
    );
    assert!(read.next().is_none(), "nothing is read past it");
}

#[test]
fn a_quoted_value_over_several_lines_is_kept_and_lines_stay_those_of_the_file() {
    let answers = "\
id,account_id,contact_id,survey,submitted_at,score,goal_achieved,comment
SR-1,A-1,P-1,nps,2024-11-05T10:00:00Z,9,,\"Great support,
and a fast product\"
SR-2,A-1,P-1,nps,2024-11-06T10:00:00Z,eleven,,
";
    let dir = book(&[("survey_responses.csv", answers)]);

    let rows = rows::<crate::model::SurveyResponse>(dir.path(), "survey_responses");

    let first = rows[0].as_ref().expect("the two-line answer parses");
    assert_eq!(
        first.comment.as_deref(),
        Some("Great support,\nand a fast product")
    );
    let second = rows[1].as_ref().expect_err("a bad score");
    assert_eq!(
        second.reason,
        "line 4, column `score`: expected a score from 0 to 10, found \"eleven\""
    );
}

#[test]
fn a_cell_that_is_not_utf8_costs_its_row_only_and_names_id_and_column() {
    let mut accounts = ACCOUNTS.as_bytes().to_vec();
    let at = ACCOUNTS.find("Miren").expect("the name");
    accounts[at + 1] = 0xE9;
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("accounts.csv"), accounts).expect("written");

    let rows = rows::<Account>(dir.path(), "accounts");

    assert_eq!(rows.len(), 4, "every row is read");
    assert!(rows[0].is_ok());
    let bad = rows[1].as_ref().expect_err("the row with the bad byte");
    assert_eq!(
        (bad.record_id.as_deref(), bad.account_id.as_deref()),
        (Some("A-2"), Some("A-2"))
    );
    assert_eq!(
        bad.reason,
        "line 3, column `name`: the text is not UTF-8 (save the file as UTF-8)"
    );
}

#[test]
fn reasons_say_the_column_what_it_expects_and_what_came() {
    let accounts = "\
id,name,domain,owner_id,basic_setup_done,contract_start_date,timezone,archived,updated_at
A-1,Kalo Labs,,,99999999999999999999,,,false,2024-12-01
A-2,Miren,,,,,,ana@kalo.example.com,2024-12-01
A-3,Broken,,,,,,false,1e30
,No Id,,,,,,false,2024-12-01
";
    let usage = "\
account_id,feature,date,event_count,active_users
A-1,alerts,2024-12-01,1e30,1
A-1,alerts,2024-12-02,-3,1
";
    let dir = book(&[("accounts.csv", accounts), ("usage.csv", usage)]);

    fn reasons<T: DeserializeOwned>(dir: &Path, dataset: &str) -> Vec<String> {
        let rows = rows::<T>(dir, dataset).into_iter();
        rows.map(|row| row.err().expect("every row is bad").reason)
            .collect()
    }

    let accounts = reasons::<Account>(dir.path(), "accounts");
    let usage = reasons::<UsageDay>(dir.path(), "usage");

    assert_eq!(
        accounts,
        [
            "line 2, column `basic_setup_done`: expected true or false, \
             found \"99999999999999999999\"",
            "line 3, column `archived`: expected true or false, found \"a***@k***.com\"",
            "line 4, column `updated_at`: expected an RFC 3339 timestamp, a date or epoch \
             milliseconds, found \"1e30\"",
            "line 5, column `id`: expected an id, found nothing",
        ]
    );
    assert_eq!(
        usage,
        [
            "line 2, column `event_count`: expected a whole number up to 4294967295, \
             found \"1e30\"",
            "line 3, column `event_count`: expected a whole number of 0 or more, found \"-3\"",
        ]
    );
}

#[test]
fn repeated_ids_and_unlisted_values_are_noted_once_each() {
    let contacts = format!(
        "{CONTACTS_HEADER}\
P-1,A-1,,,Executive Sponsor,,false,,false,2024-10-18
P-2,A-1,,,Executive Sponsor,,false,,false,2024-10-18
P-3,A-1,,,CHAMPION,,false,,false,2024-10-18
P-1,A-1,,,executive_sponsor,,false,,false,2024-10-19
P-4,A-1,,,vp,,false,,false,2024-10-18
"
    );
    let dir = book(&[("contacts.csv", &contacts)]);

    let mut read = read_rows::<Contact>(dir.path(), "contacts").expect("contacts.csv opens");
    let parsed = read.by_ref().filter(|row| matches!(row, Ok(Ok(_)))).count();
    let notes = read.notes();

    assert_eq!(parsed, 5, "repeats and unlisted values are still read");
    assert_eq!(
        notes,
        [
            "contacts.csv: 1 row(s) repeat the id of an earlier row (P-1 on lines 2 and 5); \
             for each id, the row with the newest updated_at is used",
            "contacts.csv: persona \"Executive Sponsor\" is not a value the contract lists \
             (executive_sponsor, champion, admin, end_user, other); its 2 row(s) are read as \
             `other`",
            "contacts.csv: persona \"vp\" is not a value the contract lists (executive_sponsor, \
             champion, admin, end_user, other); its 1 row(s) are read as `other`",
        ]
    );
}
