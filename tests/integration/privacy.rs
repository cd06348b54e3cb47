//! What a cycle's log may say about people: nothing in clear. A real `touchpoint cycle`
//! process scores a generated book, sends its surveys through the loopback SMTP server (which
//! refuses some recipients, echoing their address as real servers do) and opens tasks; its
//! stderr and its JSON report must name no contact's or owner's address, and no contact's
//! name.

use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{App, TOKEN};
use crate::smtp::SmtpServer;

const SECRET: &str = "privacy-test-link-secret-0123456789abcdef";

/// Every row of a list endpoint of the sandbox, following the cursors.
async fn every_row(app: &App, path: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/{path}?limit=1000", app.crm.base_url());
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the sandbox answers")
            .json()
            .await
            .expect("JSON");
        rows.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return rows,
        }
    }
}

fn cycle(app: &App, smtp: &SmtpServer, as_of: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_touchpoint"));
    command
        .args([
            "cycle",
            "--as-of",
            as_of,
            "--act-on-past",
            "--output",
            "json",
        ])
        .env("TOUCHPOINT__SOURCE__BASE_URL", app.crm.base_url())
        .env("TOUCHPOINT__STORE__PATH", &app.settings.store.path)
        .env("TOUCHPOINT__SURVEYS__ENABLED", "true")
        .env(
            "TOUCHPOINT__SURVEYS__SEND_WINDOW__DAYS",
            "mon,tue,wed,thu,fri,sat,sun",
        )
        .env("TOUCHPOINT__SURVEYS__SEND_WINDOW__START", "00:00")
        .env("TOUCHPOINT__SURVEYS__SEND_WINDOW__END", "24:00")
        .env("TOUCHPOINT__WEB__BASE_URL", "http://127.0.0.1:9")
        .env("TOUCHPOINT__TASKS__BREAKER__MAX_RED_SHARE", "1.0")
        .env("TOUCHPOINT__TASKS__BREAKER__MIN_ACCOUNTS", "100000")
        .env("TOUCHPOINT__LOG__FORMAT", "text")
        .env("TOUCHPOINT__LOG__LEVEL", "info,touchpoint=debug")
        .env("TOUCHPOINT_SOURCE_TOKEN", TOKEN)
        .env("TOUCHPOINT_LINK_SECRET", SECRET)
        .env_remove("RUST_LOG")
        .env_remove("TOUCHPOINT_SMTP_USERNAME")
        .env_remove("TOUCHPOINT_SMTP_PASSWORD");
    for (key, value) in smtp.settings() {
        command.env(key, value);
    }
    command.output().expect("touchpoint runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_with_surveys_and_tasks_logs_no_address_and_no_name_in_clear() {
    let app = App::generated(300, "2025-06-02").await;
    let smtp = SmtpServer::start().await;
    let contacts = every_row(&app, "v1/contacts").await;
    let owners = every_row(&app, "v1/owners").await;
    let text = |row: &Value, field: &str| row[field].as_str().map(str::to_owned);
    let addresses: Vec<String> = contacts
        .iter()
        .chain(&owners)
        .filter_map(|row| text(row, "email"))
        .filter(|address| address.contains('@'))
        .collect();
    let names: Vec<String> = contacts
        .iter()
        .filter_map(|row| text(row, "name"))
        .filter(|name| name.trim().len() > 3)
        .collect();
    assert!(addresses.len() > 300 && names.len() > 300, "a real book");
    // Some refusals quote the address back, as real servers do.
    for (n, address) in addresses.iter().enumerate() {
        match n % 6 {
            0 => smtp.reply_to_rcpt(address, &format!("550 5.1.1 <{address}>: no such user")),
            1 => smtp.reply_to_rcpt(address, &format!("451 4.2.1 <{address}>: try later")),
            _ => {}
        }
    }

    let (mut log, mut reports) = (String::new(), String::new());
    let (mut sent, mut refused, mut opened) = (0, 0, 0);
    for as_of in ["2025-03-03", "2025-06-02"] {
        let output = cycle(&app, &smtp, as_of);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
        sent += report["surveys"]["sent"].as_u64().unwrap_or(0);
        refused += report["surveys"]["failures"].as_array().map_or(0, Vec::len);
        opened += report["tasks"]["opened"].as_array().map_or(0, Vec::len);
        log.push_str(&stderr);
        reports.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    assert!(
        sent > 0 && refused > 0 && opened > 0,
        "{sent} {refused} {opened}"
    );
    assert!(log.contains("***@"), "refusals are logged, masked:\n{log}");

    let lowered = log.to_lowercase();
    let reported = reports.to_lowercase();
    for address in &addresses {
        let address = address.trim().to_lowercase();
        assert!(!lowered.contains(&address), "{address} in the log:\n{log}");
        assert!(!reported.contains(&address), "{address} in the JSON report");
    }
    for name in &names {
        assert!(!log.contains(name.as_str()), "{name} in the log:\n{log}");
        assert!(
            !reports.contains(name.as_str()),
            "{name} in the JSON report"
        );
    }
}
