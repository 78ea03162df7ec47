//! The owner's path in a real browser: headless Chromium, driven over
//! WebDriver (`chromedriver`, installed by `scripts/install-deps.sh`),
//! against a real `pictor-coordinator` and a real `pictor-host`.
//!
//! Log in to the portal, issue a worker, download its `worker.json`, start
//! a host with exactly that file, see the worker turn online, submit a
//! render job, see it complete with its preview, open the host's status
//! page, then revoke the worker and see the host stop with the reason.
//! Every page is screenshotted into `target/tmp/screenshots/` (or
//! `PICTOR_SCREENSHOTS_DIR`), the test's artifacts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use pictor_protocol::api::JobState;
use serde_json::{Value, json};

use crate::network::{Coordinator, block, farm_root};
use crate::support::{host, plugin, repo_root, scratch};

/// How long a page may take to show what a step waits for.
const WAIT: Duration = Duration::from_secs(90);

/// A headless Chromium session through a private `chromedriver`.
struct Browser {
    driver: Child,
    client: Option<Client>,
    downloads: PathBuf,
    shots: PathBuf,
}

impl Browser {
    fn start(root: &Path) -> Self {
        let chromedriver = which("chromedriver");
        let chromium = which("chromium");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(root.join("chromedriver.log")).unwrap();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start chromedriver");
        let downloads = root.join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let profile = root.join("chromium-profile");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1280,900", format!("--user-data-dir={}", profile.display())],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                }
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(capabilities.clone());
            match block(|| builder.connect(&url)) {
                Ok(client) => break client,
                // chromedriver is still starting.
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("no WebDriver session from chromedriver on {url}: {e}"),
            }
        };
        let shots = std::env::var_os("PICTOR_SCREENSHOTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| scratch().join("screenshots"));
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            driver,
            client: Some(client),
            downloads,
            shots,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    fn goto(&self, url: &str) {
        block(|| self.client().goto(url)).unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    fn url(&self) -> String {
        block(|| self.client().current_url()).unwrap().to_string()
    }

    /// The text of the first element matching `css`, if there is one.
    fn text(&self, css: &str) -> Option<String> {
        let element = block(|| self.client().find(Locator::Css(css))).ok()?;
        block(|| element.text()).ok()
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = block(|| self.client().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.url()));
        block(|| element.clear()).unwrap();
        block(|| element.send_keys(text)).unwrap();
    }

    fn select(&self, css: &str, value: &str) {
        let element = block(|| self.client().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.url()));
        block(|| element.select_by_value(value)).unwrap();
    }

    fn click(&self, css: &str) {
        let element = block(|| self.client().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.url()));
        block(|| element.click()).unwrap();
    }

    /// Runs `script` in the page and returns its value.
    fn eval(&self, script: &str) -> Value {
        block(|| self.client().execute(script, vec![])).unwrap()
    }

    /// Reloads until `ready` says yes (pages also refresh themselves).
    fn wait_until(&self, what: &str, mut ready: impl FnMut(&Browser) -> bool) {
        let started = Instant::now();
        while !ready(self) {
            if started.elapsed() > WAIT {
                let page = block(|| self.client().source()).unwrap_or_default();
                self.screenshot(&format!("timeout-{}", what.replace(' ', "-")));
                panic!("timed out waiting for {what} on {}\n{page}", self.url());
            }
            std::thread::sleep(Duration::from_millis(500));
            block(|| self.client().refresh()).unwrap();
        }
    }

    /// Saves a PNG of the page as `<name>.png` among the test's artifacts.
    fn screenshot(&self, name: &str) {
        if let Ok(png) = block(|| self.client().screenshot()) {
            std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = block(|| client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A program on PATH, or a clear failure saying how to get it.
fn which(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/install-deps.sh (Debian packages chromium, chromium-driver)"))
}

/// A `pictor-host run` whose stdout and stderr go to files.
struct HostRun {
    child: Child,
    dir: PathBuf,
}

impl HostRun {
    fn start(config: &Path) -> Self {
        let dir = config.parent().unwrap().to_path_buf();
        let child = host()
            .args(["run", "--status-listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .stdout(std::fs::File::create(dir.join("host.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("host.log")).unwrap())
            .spawn()
            .expect("start pictor-host run");
        HostRun { child, dir }
    }

    fn output(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}\n--- log ---\n{}", read("host.out"), read("host.log"))
    }

    /// The status page's URL, from the line `run` prints at start.
    fn status_url(&self) -> String {
        let started = Instant::now();
        loop {
            let out = std::fs::read_to_string(self.dir.join("host.out")).unwrap_or_default();
            if let Some(url) = out.lines().find_map(|l| l.strip_prefix("Status page: ")) {
                return url.trim().to_string();
            }
            assert!(
                started.elapsed() < WAIT,
                "no status page line:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the process to end and returns its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                started.elapsed() < WAIT,
                "pictor-host did not stop:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for HostRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cell(row: &str, class: &str) -> String {
    format!("{row} td.{class}")
}

#[test]
fn an_owner_issues_a_worker_runs_it_and_sees_its_job_in_the_portal() {
    let root = farm_root("browser");
    let miner = plugin("mine");
    let coordinator = Coordinator::start(&root, &["--miner-plugin", miner.to_str().unwrap()]);
    let browser = Browser::start(&root);
    let portal = coordinator.url("/portal");

    // Logged out: the portal sends the operator to its login form.
    browser.goto(&portal);
    assert!(browser.url().contains("/portal/login"), "{}", browser.url());
    browser.screenshot("01-portal-login");
    browser.type_into("input[name=token]", &coordinator.token("creator"));
    browser.click("button[type=submit]");
    browser.wait_until("the dashboard", |b| b.text("table#workers").is_some());

    // Issue a worker with mining settings and a price for renders.
    browser.click("a#new-worker");
    browser.wait_until("the new worker form", |b| {
        b.text("form#new-worker").is_some()
    });
    browser.type_into("form#new-worker input[name=name]", "Studio box");
    browser.type_into(
        "form#new-worker input[name=wallet]",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    );
    browser.type_into(
        "form#new-worker input[name=pool]",
        "stratum+tcp://pool.example.org:3333",
    );
    browser.select("form#new-worker select[name=coin]", "btc");
    // A typo in the payout address is refused, naming the field, values kept.
    browser.type_into(
        "form#new-worker input[name=mining_wallet]",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
    );
    browser.type_into("form#new-worker input[name=price_render]", "0.25");
    browser.click("button#create");
    browser.wait_until("the form's error", |b| b.text("p.error").is_some());
    let error = browser.text("p.error").unwrap();
    assert!(
        error.contains("mining") && error.contains("not a btc address"),
        "{error}"
    );
    let kept =
        browser.eval("return document.querySelector('form#new-worker input[name=name]').value");
    assert_eq!(kept, json!("Studio box"));
    browser.screenshot("02-portal-new-worker-error");
    browser.type_into("form#new-worker input[name=mining_wallet]", "");
    browser.click("button#create");
    browser.wait_until("the issued worker", |b| b.text("#worker-id").is_some());
    browser.screenshot("03-portal-worker-issued");
    let worker_id = browser.text("#worker-id").unwrap().trim().to_string();
    let shown: Value = serde_json::from_str(&browser.text("pre#worker-json").unwrap())
        .expect("the page shows worker.json");

    // Download it as the owner would: the browser saves worker.json.
    browser.click("a#download");
    let downloaded = browser.downloads.join("worker.json");
    let started = Instant::now();
    while !downloaded.is_file()
        || std::fs::read(&downloaded)
            .map(|b| serde_json::from_slice::<Value>(&b).is_err())
            .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "worker.json was not downloaded into {}",
            browser.downloads.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let config: Value = serde_json::from_slice(&std::fs::read(&downloaded).unwrap()).unwrap();
    assert_eq!(config, shown, "the download is the file the page shows");
    assert_eq!(config["worker"]["id"], json!(worker_id));
    assert_eq!(config["coordinator"]["url"], json!(coordinator.url("")));
    assert_eq!(config["mining"]["coin"], json!("btc"));
    assert_eq!(config["prices"]["render"], json!(0.25));

    // The owner imports exactly that file.
    let owner = root.join("owner");
    std::fs::create_dir_all(&owner).unwrap();
    let imported = owner.join("worker.json");
    std::fs::copy(&downloaded, &imported).unwrap();
    let check = host()
        .args(["config", "check"])
        .arg(&imported)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "config check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut run = HostRun::start(&imported);

    let row = format!("table#workers tr[data-worker-id='{worker_id}']");
    browser.goto(&portal);
    browser.wait_until("the worker to turn online", |b| {
        b.text(&cell(&row, "status")).as_deref() == Some("online")
    });
    browser.screenshot("04-portal-worker-online");
    let started = Instant::now();
    while !run.output().contains(&format!(
        "Worker {worker_id} · Connected to {}",
        coordinator.url("")
    )) {
        assert!(
            started.elapsed() < WAIT,
            "the host does not say it is connected:\n{}",
            run.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A render job; its image shows in the jobs table once it is done.
    let scenes = repo_root().join("fixtures/scenes");
    let (gltf, bin) = (
        std::fs::read(scenes.join("cornell.gltf")).unwrap(),
        std::fs::read(scenes.join("cornell.bin")).unwrap(),
    );
    coordinator.submit(
        "portal-render",
        "render",
        "render",
        json!({"width": 96, "height": 96, "spp": 16, "max_bounces": 4}),
        &[("cornell.gltf", &gltf), ("cornell.bin", &bin)],
    );
    let job_row = "table#jobs tr[data-job-id='portal-render']";
    browser.wait_until("the job to complete", |b| {
        b.text(&cell(job_row, "state")).as_deref() == Some("succeeded")
    });
    let job = coordinator.job("portal-render");
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    // The preview loads after the row appears; on a loaded machine that
    // takes a moment, so wait for it (without reloading the page).
    let started = Instant::now();
    let preview_width = loop {
        let width = browser.eval(&format!(
            "const i = document.querySelector(\"{job_row} img.preview\"); return i && i.complete ? i.naturalWidth : 0"
        ));
        if width != json!(0) || started.elapsed() > WAIT {
            break width;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        preview_width,
        json!(96),
        "the preview shows the rendered image"
    );
    assert_eq!(
        browser
            .text(&cell(job_row, "worker"))
            .as_deref()
            .map(str::trim),
        Some(worker_id.as_str())
    );
    browser.wait_until("the earnings", |b| {
        b.text(&cell(&row, "jobs-done")).as_deref().map(str::trim) == Some("1")
    });
    let earnings = browser.text(&cell(&row, "earnings")).unwrap();
    assert!(
        earnings.contains("0.25"),
        "earnings = 1 job × 0.25: {earnings}"
    );
    browser.screenshot("05-portal-job-done");

    // The worker's own page in the portal, from its name on the dashboard.
    browser.click(&format!("{row} td.name a"));
    browser.wait_until("the worker's page", |b| b.text("table#worker").is_some());
    assert_eq!(
        browser
            .text("table#worker td.jobs-done")
            .as_deref()
            .map(str::trim),
        Some("1")
    );
    let settings = browser.text("table#worker").unwrap();
    assert!(
        settings.contains("btc") && settings.contains("pool.example.org:3333"),
        "{settings}"
    );
    browser.screenshot("05b-portal-worker-page");

    // The host's own page, as its owner sees it.
    let status_url = run.status_url();
    browser.goto(&status_url);
    browser.wait_until("the host's recent job", |b| {
        b.text("table#recent-jobs tr[data-job-id]").is_some()
    });
    assert_eq!(
        browser.text("#worker-id").as_deref().map(str::trim),
        Some(worker_id.as_str())
    );
    let connection = browser.text("#connection").unwrap();
    assert!(connection.starts_with("Connected"), "{connection}");
    assert!(
        browser.text("table#gpus tr.gpu").is_some(),
        "the page lists the GPU"
    );
    let recent = browser.text("table#recent-jobs").unwrap();
    assert!(
        recent.contains("render") && recent.contains("succeeded"),
        "{recent}"
    );
    assert!(
        browser.text("#mining").is_some_and(|m| m.contains("off")),
        "no NVIDIA GPU here: mining is off with its reason"
    );
    browser.screenshot("06-host-status");

    // Revoking the worker disconnects its host with the reason.
    browser.goto(&portal);
    browser.click(&format!("{row} form[action$='/revoke'] button"));
    let code = run.wait_exit();
    let output = run.output();
    assert_ne!(code, Some(0), "{output}");
    assert!(
        output.contains("revoked"),
        "the host says why it stopped:\n{output}"
    );
    browser.goto(&portal);
    browser.wait_until("the worker to show as revoked", |b| {
        b.text(&row).is_some_and(|text| text.contains("revoked"))
    });
    browser.screenshot("07-portal-worker-revoked");
}
