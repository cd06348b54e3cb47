//! Configuration: defaults, user files, environment overrides, and errors that name the key.

use std::collections::HashMap;
use std::io::Write;

use touchpoint::settings::Settings;

fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn user_file(body: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("a temporary file");
    file.write_all(body.as_bytes()).expect("written");
    file
}

#[test]
fn the_embedded_defaults_are_valid() {
    let settings = Settings::load_from(None, env(&[])).expect("defaults load");
    assert_eq!(settings.source.page_size, 1000);
    assert_eq!(settings.writeback.batch_size, 100);
}

#[test]
fn an_environment_variable_overrides_a_nested_key() {
    let settings = Settings::load_from(
        None,
        env(&[
            ("TOUCHPOINT__SCORING__WEIGHTS__ROI", "40"),
            (
                "TOUCHPOINT__SOURCE__BASE_URL",
                "https://crm.example.com/api",
            ),
        ]),
    )
    .expect("overrides load");
    assert_eq!(
        settings.scoring.weight(touchpoint::scoring::Measure::Roi),
        40
    );
    assert_eq!(
        settings.source.base_url.as_str(),
        "https://crm.example.com/api/"
    );
}

#[test]
fn a_user_file_overrides_the_defaults() {
    let file = user_file("[source]\npage_size = 250\n");
    let settings = Settings::load_from(Some(file.path()), env(&[])).expect("loads");
    assert_eq!(settings.source.page_size, 250);
}

#[test]
fn an_unknown_key_stops_start_up_naming_it() {
    let file = user_file("[source]\npage_sise = 250\n");
    let error = Settings::load_from(Some(file.path()), env(&[])).expect_err("refused");
    assert!(error.to_string().contains("page_sise"), "{error}");
}

#[test]
fn an_invalid_value_stops_start_up_naming_the_key() {
    let cases = [
        ("TOUCHPOINT__SOURCE__PAGE_SIZE", "5000", "source.page_size"),
        (
            "TOUCHPOINT__SOURCE__BASE_URL",
            "not a url",
            "source.base_url",
        ),
        (
            "TOUCHPOINT__WRITEBACK__BATCH_SIZE",
            "0",
            "writeback.batch_size",
        ),
        ("TOUCHPOINT__LOG__FORMAT", "yaml", "log.format"),
        (
            "TOUCHPOINT__SCORING__WEIGHTS__ROI",
            "-3",
            "scoring.weights.roi",
        ),
    ];
    for (key, value, named) in cases {
        let error = Settings::load_from(None, env(&[(key, value)])).expect_err(key);
        assert!(error.to_string().contains(named), "{key}={value}: {error}");
    }
}

#[test]
fn a_token_in_a_file_is_refused_because_secrets_come_from_the_environment() {
    let file = user_file("[source]\ntoken = \"abc\"\n");
    let error = Settings::load_from(Some(file.path()), env(&[])).expect_err("refused");
    assert!(error.to_string().contains("token"), "{error}");
    assert!(
        !error.to_string().contains("abc"),
        "the secret is not echoed"
    );
}

fn production_example() -> std::path::PathBuf {
    crate::deploy::file("deploy/production.toml")
}

#[test]
fn the_production_example_is_valid_and_sends_surveys_by_smtp() {
    let settings =
        Settings::load_from(Some(&production_example()), env(&[])).expect("the example loads");
    assert_eq!(settings.daemon.timezone, chrono_tz::Europe::Berlin);
    assert!(matches!(
        settings.mail.backend,
        touchpoint::mail::Backend::Smtp(_)
    ));
    assert!(settings.surveys.enabled);
    assert_ne!(
        settings.web.base_url.as_str(),
        "http://127.0.0.1:8080/",
        "the links point at a public address"
    );
}

#[test]
fn daemon_settings_errors_name_the_key() {
    let cases = [
        (
            "TOUCHPOINT__DAEMON__JOBS__PULL_AND_SCORE__SCHEDULE",
            "0 6 * * *",
            "daemon.jobs.pull_and_score.schedule",
        ),
        (
            "TOUCHPOINT__DAEMON__TIMEZONE",
            "Mars/Olympus",
            "daemon.timezone",
        ),
        (
            "TOUCHPOINT__DAEMON__LEASE__RENEW_EVERY_SECS",
            "20",
            "daemon.lease.renew_every_secs",
        ),
        ("TOUCHPOINT__HTTP__LISTEN", "localhost", "http.listen"),
        (
            "TOUCHPOINT__DAEMON__LEASE__TTL_SECS",
            "0",
            "daemon.lease.ttl_secs",
        ),
        ("TOUCHPOINT__LOG__LEVEL", "verbose=", "log.level"),
        ("TOUCHPOINT__LOG__LEVEL", "verbose", "log.level"),
        (
            "TOUCHPOINT__LOG__LEVEL",
            "info,touchpoint=loud",
            "log.level",
        ),
    ];
    for (variable, value, key) in cases {
        let error = Settings::load_from(None, env(&[(variable, value)]))
            .expect_err("an invalid value is refused");
        assert_eq!(error.key, key, "{error}");
    }
    for level in [
        "warn",
        "info,touchpoint=debug",
        "touchpoint=trace,tokio_cron_scheduler=off",
    ] {
        let settings = Settings::load_from(None, env(&[("TOUCHPOINT__LOG__LEVEL", level)]));
        assert!(settings.is_ok(), "{level}: {:?}", settings.err());
    }
}

#[test]
fn plain_text_smtp_is_refused_for_a_relay_that_is_not_on_loopback() {
    let plain = |host: &str| {
        Settings::load_from(
            None,
            env(&[
                ("TOUCHPOINT__MAIL__BACKEND", "smtp"),
                ("TOUCHPOINT__MAIL__SMTP__HOST", host),
                ("TOUCHPOINT__MAIL__SMTP__TLS", "none"),
                ("TOUCHPOINT__MAIL__SMTP__ALLOW_PLAINTEXT", "true"),
            ]),
        )
    };

    for host in ["smtp.example.com", "10.0.0.25", "0.0.0.0"] {
        let error = plain(host).expect_err("plain text across the network is refused");
        assert_eq!(error.key, "mail.smtp.tls", "{error}");
        let said = error.to_string();
        assert!(
            said.contains("mail.smtp.host") && said.contains(host),
            "{said}"
        );
    }
    for host in ["localhost", "127.0.0.1", "::1"] {
        assert!(plain(host).is_ok(), "{host} is a loopback relay");
    }
}

/// The error a configuration stops start-up with.
fn refusal(
    file: Option<&std::path::Path>,
    pairs: &[(&str, &str)],
) -> touchpoint::settings::ConfigError {
    match Settings::load_from(file, env(pairs)) {
        Ok(_) => panic!("{pairs:?} was accepted"),
        Err(error) => error,
    }
}

#[test]
fn settings_a_cycle_or_the_daemon_could_not_work_with_stop_start_up_naming_the_key() {
    let templates = tempfile::TempDir::new().expect("a folder");
    let stray = templates.path().join("email");
    std::fs::create_dir_all(&stray).expect("a folder");
    std::fs::write(stray.join("nps.htm"), "<p>a misspelt name</p>").expect("written");
    let stray_dir = templates.path().display().to_string();
    let cases = [
        (
            "TOUCHPOINT__SURVEYS__TEMPLATES_DIR",
            "/no/such/folder",
            "surveys.templates_dir",
            "does not exist",
        ),
        (
            "TOUCHPOINT__SURVEYS__TEMPLATES_DIR",
            stray_dir.as_str(),
            "surveys.templates_dir",
            "matches no built-in template",
        ),
        (
            "TOUCHPOINT__SURVEYS__MAX_PER_CYCLE",
            "0",
            "surveys.max_per_cycle",
            "surveys.enabled",
        ),
        (
            "TOUCHPOINT__SURVEYS__MAX_PER_DAY",
            "0",
            "surveys.max_per_day",
            "at least 1",
        ),
        (
            "TOUCHPOINT__TASKS__PROMOTER__MIN_SCORE",
            "6",
            "tasks.promoter.min_score",
            "tasks.detractor.max_score (6)",
        ),
        (
            "TOUCHPOINT__DAEMON__JOBS__PUSH_ANSWERS__SCHEDULE",
            "0 0 0 30 2 *",
            "daemon.jobs.push_answers.schedule",
            "never fires",
        ),
        (
            "TOUCHPOINT__CYCLE__MIN_BOOK_SHARE",
            "nan",
            "cycle.min_book_share",
            "must be a number between 0 and 1",
        ),
        (
            "TOUCHPOINT__TASKS__BREAKER__MAX_RED_SHARE",
            "inf",
            "tasks.breaker.max_red_share",
            "must be a number between 0 and 1",
        ),
    ];
    for (variable, value, key, problem) in cases {
        let error = refusal(None, &[(variable, value)]);
        assert_eq!(error.key, key, "{variable}={value}: {error}");
        assert!(
            error.problem.contains(problem),
            "{variable}={value}: {error}"
        );
    }

    let off = Settings::load_from(
        None,
        env(&[
            (
                "TOUCHPOINT__DAEMON__JOBS__PUSH_ANSWERS__SCHEDULE",
                "0 0 0 30 2 *",
            ),
            ("TOUCHPOINT__DAEMON__JOBS__PUSH_ANSWERS__ENABLED", "false"),
        ]),
    );
    assert!(
        off.is_ok(),
        "a job that is off may keep a schedule that never fires"
    );
}

#[test]
fn a_number_too_large_or_not_a_number_in_a_user_file_names_its_key() {
    let huge = user_file("[source]\npage_size = 99999999999999999999\n");
    let error = refusal(Some(huge.path()), &[]);
    assert_eq!(error.key, "source.page_size", "{error}");
    assert!(error.problem.contains("99999999999999999999"), "{error}");

    let nan = user_file("[cycle]\nmin_book_share = nan\n");
    let error = refusal(Some(nan.path()), &[]);
    assert_eq!(error.key, "cycle.min_book_share", "{error}");
    assert!(
        error.problem.contains("must be a number between 0 and 1"),
        "{error}"
    );
    assert!(!error.problem.contains("null"), "{error}");

    let nan_integer = user_file("[writeback]\nbatch_size = nan\n");
    let error = refusal(Some(nan_integer.path()), &[]);
    assert_eq!(error.key, "writeback.batch_size", "{error}");
    assert!(!error.problem.contains("null"), "{error}");
}

#[test]
fn check_config_refuses_a_link_secret_too_short_and_only_warns_of_one_not_given() {
    let check = |secret: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_touchpoint"));
        command.arg("check-config").env_remove("RUST_LOG");
        match secret {
            Some(secret) => command.env("TOUCHPOINT_LINK_SECRET", secret),
            None => command.env_remove("TOUCHPOINT_LINK_SECRET"),
        };
        command.output().expect("the binary runs")
    };

    let short = check(Some("short"));
    let missing = check(None);

    let said = String::from_utf8_lossy(&short.stderr);
    assert!(!short.status.success(), "{said}");
    assert!(said.contains("TOUCHPOINT_LINK_SECRET"), "{said}");
    assert!(said.contains("at least 32 characters"), "{said}");
    let printed = String::from_utf8_lossy(&missing.stdout);
    assert!(missing.status.success(), "{printed}");
    assert!(
        printed.contains("warning: TOUCHPOINT_LINK_SECRET is not set"),
        "{printed}"
    );
}

#[test]
fn check_config_refuses_an_smtp_login_without_its_password() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_touchpoint"))
        .arg("check-config")
        .env("TOUCHPOINT__MAIL__BACKEND", "smtp")
        .env("TOUCHPOINT_SMTP_USERNAME", "customer-success")
        .env_remove("TOUCHPOINT_SMTP_PASSWORD")
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs");

    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("TOUCHPOINT_SMTP_PASSWORD"), "{said}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("configuration is valid"));
}
