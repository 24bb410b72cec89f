//! A headless Chromium behind a private chromedriver, driven over WebDriver with fantoccini.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them), or the
//! binaries named by `CHROMIUM` and `CHROMEDRIVER`. Without them the test fails and says so,
//! unless `SKIP_BROWSER=1` opts out.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::process::{Child, Command};

/// A running chromedriver with one browser session, and any more that
/// [`Browser::another`] opened; [`Browser::quit`] ends them all.
pub struct Browser {
    pub client: Client,
    others: Vec<Client>,
    driver: Child,
    port: u16,
    chromium: PathBuf,
    log: PathBuf,
}

/// `None` when `SKIP_BROWSER` asks to skip (after saying so); a running browser otherwise.
/// Panics with what to install when Chromium or chromedriver is missing.
pub async fn start() -> Option<Browser> {
    if std::env::var_os("SKIP_BROWSER").is_some_and(|v| !v.is_empty() && v != "0") {
        eprintln!("SKIP_BROWSER is set: the demo's browser test did not run");
        return None;
    }
    let chromium = binary(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = binary("CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        panic!(
            "the demo's browser test needs Chromium and chromedriver: `apt-get install chromium \
             chromium-driver` (scripts/test does it when run as root), or set CHROMIUM and \
             CHROMEDRIVER to their paths; SKIP_BROWSER=1 skips this test"
        );
    };

    // A port found free can be taken before chromedriver binds it (by the other test's demo
    // server, which binds port 0), and chromedriver still starts on IPv6: a chromedriver that
    // answers no WebDriver request is replaced by one on another port.
    let mut failure = String::new();
    for _ in 0..3 {
        let port = free_port();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromedriver-{port}.log"));
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        if wait_for_port(port, Duration::from_secs(10)).is_none() {
            failure = format!(
                "chromedriver did not listen within 10 s; see {}",
                log.display()
            );
            continue;
        }
        match connect(port, &chromium, &[]).await {
            Ok(client) => {
                return Some(Browser {
                    client,
                    others: Vec::new(),
                    driver,
                    port,
                    chromium,
                    log,
                });
            }
            Err(e) => {
                failure = format!(
                    "chromedriver could not start Chromium: {e}; see {}",
                    log.display()
                );
            }
        }
    }
    panic!("{failure}");
}

/// A new browser session on the chromedriver at `port`, with `args` added to Chromium's.
async fn connect(
    port: u16,
    chromium: &Path,
    args: &[&str],
) -> Result<Client, fantoccini::error::NewSessionError> {
    // Headless as root in a container: no sandbox, no GPU, and none of the background
    // connections a closed network refuses.
    let mut all_args = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1280,1100",
    ];
    all_args.extend_from_slice(args);
    let capabilities = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": all_args },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object literal");
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
}

impl Browser {
    /// A second browser session on the same chromedriver, with its own profile and so its
    /// own cookies: another device of the same user. `args` go to Chromium, such as
    /// `--user-agent=...`.
    pub async fn another(&mut self, args: &[&str]) -> Client {
        let client = connect(self.port, &self.chromium, args)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start a second Chromium: {e}; see {}",
                    self.log.display()
                )
            });
        self.others.push(client.clone());
        client
    }

    /// Closes the browser sessions, then stops chromedriver. Its log is kept only for a
    /// visit that failed.
    pub async fn quit(mut self, failed: bool) {
        for client in std::mem::take(&mut self.others) {
            if let Err(error) = client.close().await {
                eprintln!("closing a browser: {error}; see {}", self.log.display());
            }
        }
        if let Err(error) = self.client.close().await {
            eprintln!("closing the browser: {error}; see {}", self.log.display());
        }
        let _ = self.driver.kill().await;
        if failed {
            eprintln!("chromedriver's log: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The binary `var` names, else the first of `names` on the `PATH`.
fn binary(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn wait_for_port(port: u16, within: Duration) -> Option<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
