//! The binary as a person runs it, against the sandbox and the store of a test: `explain
//! --as-of`, output piped into a reader that stops early, two cycles at once, and the demo.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::helpers::{App, TOKEN};

/// `touchpoint ARGS` pointed at the test's sandbox and store.
fn touchpoint(app: &App) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_touchpoint"));
    command
        .env("TOUCHPOINT__STORE__PATH", &app.settings.store.path)
        .env("TOUCHPOINT__SOURCE__BASE_URL", app.crm.base_url())
        .env("TOUCHPOINT__SURVEYS__ENABLED", "false")
        .env("TOUCHPOINT_SOURCE_TOKEN", TOKEN)
        .env_remove("RUST_LOG");
    command
}

fn run(app: &App, args: &[&str]) -> Output {
    touchpoint(app)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_as_of_a_day_shows_the_score_in_force_then_and_its_history() {
    let app = App::generated(300, "2025-06-02").await;
    let march = app.cycle("2025-03-03").await;
    let june = app.cycle("2025-06-02").await;
    let moved = june.changed().next().expect("a score changed by June");
    let id = moved.account_id.as_str();
    let in_march = march
        .accounts
        .iter()
        .find(|a| a.account_id == id)
        .expect("scored in March");

    let april = json_of(&run(
        &app,
        &["explain", id, "--as-of", "2025-04-15", "--output", "json"],
    ));
    let latest = json_of(&run(
        &app,
        &["explain", id, "--as-of", "2025-06-02", "--output", "json"],
    ));

    assert_eq!(april["in_force_on"], "2025-04-15");
    assert!(
        april["as_of"]
            .as_str()
            .is_some_and(|at| at.starts_with("2025-03-03"))
    );
    assert_eq!(april["score"], serde_json::json!(in_march.current.score));
    assert_eq!(april["band"], in_march.current.band.as_str());
    assert_eq!(april["trend"], "new");
    assert_eq!(april["history"].as_array().map(Vec::len), Some(1));
    let receipt_day = april["receipt"]["as_of"].as_str().unwrap_or_default();
    assert!(
        receipt_day.starts_with("2025-03-03"),
        "the March receipt: {receipt_day}"
    );
    assert!(
        latest["as_of"]
            .as_str()
            .is_some_and(|at| at.starts_with("2025-06-02"))
    );
    assert_eq!(latest["score"], serde_json::json!(moved.current.score));
    assert_eq!(latest["trend"], moved.trend.as_str());
    assert_eq!(latest["history"].as_array().map(Vec::len), Some(2));

    let text = run(&app, &["explain", id, "--as-of", "2025-04-15"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("in force on 2025-04-15"), "{text}");
    assert!(text.contains("History up to 2025-04-15"), "{text}");
    assert!(
        text.contains("2025-03-03") && !text.contains("2025-06-02"),
        "{text}"
    );

    let before_any = run(&app, &["explain", id, "--as-of", "2025-03-02"]);
    assert!(!before_any.status.success());
    let said = String::from_utf8_lossy(&before_any.stderr);
    assert!(said.contains("no score by the end of 2025-03-02"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_day_after_today_is_refused_by_cycle_plan_and_explain() {
    let app = App::generated(50, "2025-06-02").await;
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string();
    let commands: [&[&str]; 3] = [
        &["cycle", "--as-of", &tomorrow],
        &["plan", "--as-of", &tomorrow],
        &["explain", "A-000001", "--as-of", &tomorrow],
    ];

    for args in commands {
        let output = run(&app, args);

        assert!(!output.status.success(), "{args:?} is refused");
        let said = String::from_utf8_lossy(&output.stderr);
        let refusal = format!("--as-of {tomorrow} is after today");
        assert!(said.contains(&refusal), "{args:?}: {said}");
    }
    assert!(app.crm.health().is_empty(), "no score reached the CRM");
    assert!(!app.settings.store.path.exists(), "no run was recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_of_a_past_day_lists_what_the_replaying_cycle_would_and_says_so() {
    let app = App::generated(300, "2025-06-02").await;
    let with_surveys = |args: &[&str]| {
        let output = touchpoint(&app)
            .env("TOUCHPOINT__SURVEYS__ENABLED", "true")
            .args(args)
            .output()
            .expect("the binary runs");
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let plan = with_surveys(&["plan", "--as-of", "2025-06-02"]);
    let cycle = with_surveys(&["cycle", "--as-of", "2025-06-02"]);

    let listed = "a cycle as of this past day (--as-of) would be a replay";
    assert!(plan.contains(&format!("\nSurveys: {listed}")), "{plan}");
    assert!(plan.contains(&format!("\nTasks: {listed}")), "{plan}");
    assert!(
        cycle.contains("\nSurveys: this cycle replays a past day"),
        "{cycle}"
    );
    for promise in ["would send", "would open"] {
        assert!(!plan.contains(promise), "{promise:?} in {plan}");
    }
    let emails = " due (listed only, not sent)";
    assert_eq!(count_before(&plan, emails), count_before(&cycle, emails));
    let tasks = " due (listed only, not opened)";
    assert_eq!(count_before(&plan, tasks), count_before(&cycle, tasks));
    assert!(count_before(&plan, tasks) > 0, "{plan}");
    assert!(
        app.crm.health().is_empty(),
        "the replay wrote nothing to the CRM"
    );
}

/// Runs `command`, reads one line of its output, closes the pipe, and waits for it to end.
fn read_one_line_then_close(mut command: Command) -> (String, Output) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("a piped stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("a first line");
    let output = child.wait_with_output().expect("the binary ends");
    (first, output)
}

#[tokio::test(flavor = "multi_thread")]
async fn output_piped_into_a_reader_that_stops_early_ends_quietly() {
    // A book whose plan is far larger than a pipe's buffer, so the writer meets the closed end.
    let app = App::generated(1500, "2025-06-02").await;
    let commands: [&[&str]; 2] = [
        &["plan", "--as-of", "2025-06-02"],
        &["plan", "--as-of", "2025-06-02", "--output", "json"],
    ];

    for args in commands {
        let mut command = touchpoint(&app);
        command.args(args);
        let (first, output) =
            tokio::task::spawn_blocking(move || read_one_line_then_close(command))
                .await
                .expect("the reader ran");

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!first.trim().is_empty(), "{args:?} printed a first line");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert!(
            output.status.success(),
            "{args:?}: {:?}\n{stderr}",
            output.status
        );
    }
}

/// The number just before `marker` in `text` (`"147 sent"` gives 147 for `" sent"`).
fn count_before(text: &str, marker: &str) -> usize {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} in {text}"));
    let digits: String = text[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .chars()
        .rev()
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("a count before {marker:?}"))
}

#[test]
fn the_demo_prints_what_a_cs_lead_reads_and_writes_the_emails_where_it_says() {
    let dir = tempfile::TempDir::new().expect("a temporary folder");
    let data_dir = dir.path().join("demo");

    let output = Command::new(env!("CARGO_BIN_EXE_touchpoint"))
        .args(["demo", "--accounts", "300", "--data-dir"])
        .arg(&data_dir)
        .env_remove("RUST_LOG")
        .env_remove("TOUCHPOINT_LINK_SECRET")
        .output()
        .expect("the demo runs");

    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "touchpoint demo: a sandbox CRM with 300 generated accounts",
        "Baseline cycle as of ",
        "\nHealth bands:  GREEN ",
        "\nBy measure:      green  yellow     red     n/a",
        "\n  adoption ",
        "\nBiggest movers:\n",
        "\nWhere to look next:\n",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    for band in ["   YELLOW ", "   RED ", "   N/A "] {
        assert!(text.contains(band), "{band:?} in {text}");
    }
    let scored = count_before(&text, " scored; ");
    assert!(scored > 250, "most of the 300 accounts are live: {scored}");
    assert_eq!(count_before(&text, " stored by the CRM"), scored, "{text}");
    assert_eq!(
        count_before(&text, " health scores written back by touchpoint"),
        scored
    );
    let opened = count_before(&text, " opened, ");
    assert!(text.contains("\nTasks: "), "{text}");
    assert!(opened > 0, "the demo opens tasks: {text}");

    let outbox = data_dir.join("outbox");
    let sent = count_before(&text, " written, 0 failed");
    let said = format!(
        "Survey emails: {sent} written as .eml files to {} (nothing was sent).",
        outbox.display()
    );
    assert!(text.contains(&said), "{said:?} in {text}");
    assert!(text.contains("\nSurveys: "), "{text}");
    let files = std::fs::read_dir(&outbox)
        .expect("the outbox folder exists")
        .filter_map(Result::ok)
        .filter(|f| f.path().extension().is_some_and(|e| e == "eml"))
        .count();
    assert!(sent > 0, "the demo sends surveys: {text}");
    assert_eq!(files, sent, "one .eml file per email the summary counts");
    assert!(data_dir.join("touchpoint.db").exists());

    // The commands it suggests work as printed, once the demo has ended.
    let suggested: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("Where to look next:"))
        .filter_map(|line| line.strip_prefix("  - "))
        .filter(|line| line.starts_with("TOUCHPOINT__STORE__PATH="))
        .map(|line| line.split("   (").next().unwrap_or(line))
        .collect();
    assert_eq!(suggested.len(), 2, "explain and runs: {text}");
    for command in suggested {
        let ran = Command::new("sh")
            .args(["-c", command])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("RUST_LOG")
            .output()
            .expect("sh runs");
        let said = String::from_utf8_lossy(&ran.stderr);
        assert!(ran.status.success(), "{command}: {said}");
        assert!(!ran.stdout.is_empty(), "{command} printed nothing");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_process_died_shows_no_made_up_end_and_says_when_it_was_found() {
    let app = App::generated(50, "2025-06-02").await;
    let store = app.store().await;
    let started: chrono::DateTime<chrono::Utc> = "2025-06-02T10:00:00Z".parse().expect("a time");
    store
        .begin_run(&touchpoint::store::RunStart {
            id: "run-20250602T100000Z-dead".into(),
            command: "run".into(),
            started_at: started,
            as_of: started,
            config_version: "test".into(),
            source: "the sandbox".into(),
        })
        .await
        .expect("begun");
    let found: chrono::DateTime<chrono::Utc> = "2025-06-02T11:30:00Z".parse().expect("a time");
    let marked = store
        .interrupt_unfinished_runs(found)
        .await
        .expect("marked");
    assert_eq!(marked, 1);

    let table = run(&app, &["runs"]);
    let one = json_of(&run(
        &app,
        &[
            "runs",
            "--run",
            "run-20250602T100000Z-dead",
            "--output",
            "json",
        ],
    ));

    let text = String::from_utf8_lossy(&table.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("run-20250602T100000Z-dead"))
        .expect("the run is listed");
    assert!(line.contains("unknown"), "{line}");
    assert!(
        line.contains("marked interrupted at 2025-06-02T11:30:00Z"),
        "{line}"
    );
    assert!(text.contains("ENDED unknown: the process died"), "{text}");
    assert_eq!(one["run"]["status"], "interrupted");
    assert_eq!(one["run"]["finished_at"], Value::Null);
    assert_eq!(one["run"]["duration_ms"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_last_zero_is_refused_rather_than_read_as_no_runs() {
    let app = App::generated(50, "2025-06-02").await;
    app.cycle("2025-06-02").await;

    let zero = run(&app, &["runs", "--last", "0"]);
    let one = run(&app, &["runs", "--last", "1"]);

    let said = String::from_utf8_lossy(&zero.stderr);
    assert!(!zero.status.success(), "{said}");
    assert!(said.contains("--last"), "{said}");
    assert!(!String::from_utf8_lossy(&zero.stdout).contains("no runs yet"));
    let listed = String::from_utf8_lossy(&one.stdout);
    assert!(
        one.status.success() && listed.contains("succeeded"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_cycle_on_the_same_store_is_refused_until_the_first_has_ended() {
    let app = App::generated(50, "2025-06-02").await;
    app.cycle("2025-06-02").await;
    app.faults(touchpoint::sandbox::Faults {
        delay_ms: 300,
        ..Default::default()
    });
    let mut first = touchpoint(&app)
        .args(["cycle", "--as-of", "2025-06-02"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the first cycle starts");
    let store = app.store().await;
    let holder = || {
        let store = store.clone();
        async move { store.lease_holder("scheduler").await.expect("the lease") }
    };
    let started = std::time::Instant::now();
    while holder().await.is_none() {
        assert!(
            started.elapsed().as_secs() < 30,
            "the first cycle took no lease"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let second = run(&app, &["cycle", "--as-of", "2025-06-02"]);
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{said}");
    assert!(said.contains("another `touchpoint cycle`"), "{said}");
    assert!(said.contains("touchpoint plan"), "{said}");

    // The first is killed mid-cycle: its lease names a process that is gone, so the next
    // cycle need not wait for it to lapse.
    while !store
        .recent_runs(10)
        .await
        .expect("the runs")
        .iter()
        .any(|run| run.status == "running")
    {
        assert!(
            started.elapsed().as_secs() < 30,
            "the first cycle began no run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    first.kill().expect("the first cycle is killed");
    first.wait().expect("it ends");
    assert!(
        holder().await.is_some(),
        "a killed process cannot give its lease up"
    );
    app.faults(touchpoint::sandbox::Faults::default());
    let third = run(&app, &["cycle", "--as-of", "2025-06-02"]);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert!(
        holder().await.is_none(),
        "a finished cycle gives its lease up"
    );
    let runs = store.recent_runs(10).await.expect("the runs");
    let killed = runs
        .iter()
        .filter(|run| run.status == "interrupted")
        .count();
    assert_eq!(
        killed, 1,
        "the killed cycle is marked interrupted: {runs:?}"
    );
    assert!(runs.iter().all(|run| run.status != "running"), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cycles_started_together_on_a_new_store_set_it_up_once_and_one_runs_at_a_time() {
    let app = App::generated(50, "2025-06-02").await;
    let started: Vec<_> = (0..4)
        .map(|_| {
            touchpoint(&app)
                .args(["cycle", "--as-of", "2025-06-02"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("a cycle starts")
        })
        .collect();
    let ended: Vec<Output> = started
        .into_iter()
        .map(|child| child.wait_with_output().expect("it ends"))
        .collect();

    let mut succeeded = 0;
    for output in &ended {
        let said = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            succeeded += 1;
        } else {
            assert!(said.contains("another `touchpoint cycle`"), "{said}");
        }
    }
    assert!(succeeded >= 1, "no cycle ran");
    let runs = app.store().await.recent_runs(10).await.expect("the runs");
    assert_eq!(runs.len(), succeeded, "{runs:?}");
    assert!(runs.iter().all(|run| run.status == "succeeded"), "{runs:?}");
}
