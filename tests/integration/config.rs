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
    ];
    for (variable, value, key) in cases {
        let error = Settings::load_from(None, env(&[(variable, value)]))
            .expect_err("an invalid value is refused");
        assert_eq!(error.key, key, "{error}");
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
