//! The deployment files as an operator installs them: the production example passes
//! `check-config` with its secrets set and runs cycles when surveys can go out, the secrets
//! example names every secret the daemon needs, and the container image carries every folder
//! the build compiles in.

use std::path::PathBuf;

use touchpoint::settings::Settings;

/// A file of the repository.
pub fn file(path: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn production() -> Settings {
    let example = file("deploy/production.toml");
    Settings::load_from(Some(&example), Some(Default::default())).expect("the example loads")
}

#[test]
fn the_production_cycles_run_hourly_through_the_send_window_and_keep_readyz_ready() {
    let settings = production();
    let schedule = &settings.daemon.jobs["pull_and_score"].schedule;
    let window = &settings.surveys.send_window;
    let berlin = chrono_tz::Europe::Berlin;

    // A week of fire times from Monday 3 March 2025, midnight in Berlin.
    let start = "2025-03-02T23:00:00Z".parse().expect("an instant");
    let end = start + chrono::TimeDelta::days(7);
    let mut fires = vec![start];
    while let Some(next) = schedule.next_after(*fires.last().expect("a time")) {
        if next > end {
            break;
        }
        fires.push(next);
    }
    let fires = &fires[1..];

    let in_window: Vec<_> = fires
        .iter()
        .filter(|at| window.contains(**at, berlin))
        .collect();
    assert_eq!(
        in_window.len(),
        5 * 8,
        "each business hour of each weekday: {in_window:?}"
    );
    let longest = fires
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .expect("several cycles");
    let ready_for =
        chrono::TimeDelta::from_std(settings.http.ready_max_cycle_age).expect("a duration");
    assert!(
        longest < ready_for,
        "the longest gap between cycles, {longest}, keeps /readyz ready ({ready_for})"
    );
}

#[test]
fn check_config_accepts_the_production_example_with_the_secrets_set() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_touchpoint"))
        .args(["check-config", "--config"])
        .arg(file("deploy/production.toml"))
        .env("TOUCHPOINT_SOURCE_TOKEN", "a-crm-token")
        .env(
            "TOUCHPOINT_LINK_SECRET",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .env("TOUCHPOINT_SMTP_USERNAME", "relay-user")
        .env("TOUCHPOINT_SMTP_PASSWORD", "relay-password")
        .env_remove("RUST_LOG")
        .output()
        .expect("touchpoint runs");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(stdout.contains("SMTP smtp.example.com:587"), "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");
    assert!(!stdout.contains("relay-password"), "{stdout}");
}

#[test]
fn the_secrets_example_names_every_secret_the_daemon_reads() {
    let example = std::fs::read_to_string(file("deploy/secrets.env.example")).expect("read");
    for variable in [
        "TOUCHPOINT_SOURCE_TOKEN=",
        "TOUCHPOINT_LINK_SECRET=",
        "TOUCHPOINT_SMTP_USERNAME=",
        "TOUCHPOINT_SMTP_PASSWORD=",
    ] {
        assert!(example.contains(variable), "{variable} in\n{example}");
    }
    assert!(
        example.contains("openssl rand -hex 32"),
        "how to make a key"
    );
}

#[test]
fn the_container_build_copies_every_folder_the_binary_compiles_in() {
    let dockerfile = std::fs::read_to_string(file("Dockerfile")).expect("read");
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("COPY "))
        .filter(|line| !line.starts_with("--from"))
        .flat_map(str::split_whitespace)
        .collect();
    // src, and what include_str! (config, templates) and sqlx::migrate! (migrations) read.
    for folder in ["src", "config", "templates", "migrations"] {
        assert!(copied.contains(&folder), "COPY {folder} in\n{dockerfile}");
    }
}
