//! One person answering a survey in a real browser: Debian's headless Chromium, driven over
//! WebDriver by chromedriver. The browser is required: without it this test fails and says how
//! to install it (CI's `.ci/run` does).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::surveys::{Harness, MONDAY, link_with};

/// chromedriver, stopped when the test ends however it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn installed(names: &[&str]) -> PathBuf {
    let found = names.iter().find_map(|name| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{names:?} is not installed: this test needs Debian's chromium and chromium-driver \
             (apt-get install -y chromium chromium-driver; .ci/run installs them)"
        )
    })
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

async fn start_driver(chromedriver: &PathBuf) -> (Driver, String) {
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{url}/status")).await.is_ok() {
            return (driver, url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {url}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_opens_the_link_in_a_browser_and_sends_the_answer() {
    let chromium = installed(&["chromium", "chromium-browser"]);
    let chromedriver = installed(&["chromedriver"]);
    let h = Harness::start(&[]).await;
    h.cycle(MONDAY).await;
    let raw = h.last_message_to("leap@example.com");
    let link = link_with(&raw, "?achieved=yes");

    let (_driver, url) = start_driver(&chromedriver).await;
    let profile = tempfile::TempDir::new().expect("a profile folder");
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium, "args": args }),
    );
    let browser = ClientBuilder::rustls()
        .expect("a WebDriver client")
        .capabilities(capabilities)
        .connect(&url)
        .await
        .expect("a browser session");

    browser.goto(&link).await.expect("the answer page opens");
    let yes = browser
        .find(Locator::Css("#achieved-yes"))
        .await
        .expect("the yes choice");
    assert_eq!(
        yes.prop("checked").await.expect("a property").as_deref(),
        Some("true")
    );
    browser
        .find(Locator::Css("#goal"))
        .await
        .expect("the goal field")
        .send_keys("Halve the time to close tickets")
        .await
        .expect("typed");
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("clicked");
    let mut heading = String::new();
    for _ in 0..50 {
        if let Ok(h1) = browser.find(Locator::Css("h1")).await {
            heading = h1.text().await.unwrap_or_default();
            if heading.starts_with("Thank you") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await.expect("the session closes");

    assert_eq!(heading, "Thank you, your answer is recorded");
    let store = h.app.store().await;
    let answer = store
        .answer("goal:12m:A-leap:P-leap")
        .await
        .expect("read")
        .expect("the answer is recorded");
    assert_eq!(answer.goal_achieved, Some(true));
    assert_eq!(
        answer.goal.as_deref(),
        Some("Halve the time to close tickets")
    );
}
