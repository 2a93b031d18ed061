//! Headless Chromium driven through chromedriver (WebDriver) for the browser tests: the
//! chromedriver process, the browser session, waits and screenshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::json;

use super::real_cluster::free_ports;

/// Time allowed for chromedriver to listen on its port.
const DRIVER_START_DEADLINE: Duration = Duration::from_secs(20);

pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Returns CHROMEDRIVER, default /usr/bin/chromedriver, whether or not the file exists.
fn chromedriver_location() -> PathBuf {
    std::env::var_os("CHROMEDRIVER").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

pub fn chromedriver_path() -> Option<PathBuf> {
    let path = chromedriver_location();
    path.is_file().then_some(path)
}

/// Returns chromedriver's path. Without chromedriver, panics when CI is set and otherwise
/// prints that `test` is skipped and returns `None`.
pub fn require_chromedriver(test: &str) -> Option<PathBuf> {
    let Some(chromedriver) = chromedriver_path() else {
        if in_ci() {
            let path = chromedriver_location();
            panic!("chromedriver not found at {} (set CHROMEDRIVER); CI must install chromium and chromium-driver", path.display());
        }
        eprintln!("\n*** SKIPPED {test}: chromedriver not found; install chromium and chromium-driver ***\n");
        return None;
    };
    Some(chromedriver)
}

/// Creates and returns the screenshot directory: TEST_OUTPUT_DIR, default
/// target/test-output in the workspace.
pub fn output_dir() -> PathBuf {
    let dir = std::env::var_os("TEST_OUTPUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-output"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver process on a free port, killed by PID on drop.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub fn start(path: &Path, log: &Path) -> Driver {
        let port = free_ports(1)[0];
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };

        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < DRIVER_START_DEADLINE,
                "chromedriver did not listen on port {port} within {DRIVER_START_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn open_browser(driver: &Driver, profile: &Path) -> Browser {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        "--lang=en-US",
    ];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));

    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), json!({"binary": chromium, "args": args}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with Chromium")
}

/// Waits until `css` matches an element and returns it.
pub async fn wait_for(browser: &Browser, css: &str, deadline: Duration) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(deadline)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element matched {css} within {deadline:?}: {e}"))
}

pub async fn screenshot(browser: &Browser, dir: &Path, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(name), png).expect("screenshot written");
}
