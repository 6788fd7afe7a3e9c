//! What the browser tests share: finding Chromium (or skipping, or failing in CI), launching
//! it headless, and waiting for a page to reach a state.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::Page;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

/// The Chromium to drive, if this machine has one.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHIRP_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Chromium, or `None` (saying the test is skipped) on a machine without it; in CI
/// (`CI=true`) a missing Chromium fails the test.
pub fn chromium_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("Chromium is missing: install Debian's `chromium` package (make test does) or set CHIRP_CHROMIUM");
        }
        eprintln!(
            "SKIPPED: no Chromium on this machine (install `chromium` or set CHIRP_CHROMIUM)"
        );
    }
    found
}

/// A headless Chromium with a profile of its own, and the task that drives its connection.
pub struct Launched {
    pub browser: Browser,
    driver: JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Launched {
    pub async fn start(chromium: PathBuf) -> Launched {
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable(chromium)
            .no_sandbox()
            .user_data_dir(profile.path())
            .arg("--disable-gpu")
            .arg("--disable-dev-shm-usage")
            .launch_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let (browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
        let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Launched {
            browser,
            driver,
            _profile: profile,
        }
    }

    pub async fn close(mut self) {
        self.browser.close().await.unwrap();
        let _ = self.browser.wait().await;
        self.driver.abort();
    }
}

/// Polls the page's HTML until `done` holds (at most 15 s).
pub async fn wait_for(page: &Page, what: &str, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let html = page.content().await.unwrap_or_default();
        if done(&html) {
            return html;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "waited 15 s for {what}; the page is: {html}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls a JavaScript expression until it is `true` (at most 15 s).
pub async fn wait_for_js(page: &Page, what: &str, expression: &str) {
    let start = Instant::now();
    loop {
        let value = page
            .evaluate(expression)
            .await
            .ok()
            .and_then(|r| r.into_value::<bool>().ok());
        if value == Some(true) {
            return;
        }
        let html = page.content().await.unwrap_or_default();
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "waited 15 s for {what} ({expression}); the page is: {html}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of a JavaScript expression.
pub async fn js<T: serde::de::DeserializeOwned>(page: &Page, expression: &str) -> T {
    page.evaluate(expression)
        .await
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
}
