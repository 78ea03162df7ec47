//! Helpers shared by the benchmarks.

#![allow(dead_code, reason = "each bench uses some of these")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pictor_protocol::api::{self, BlobRef, PROTOCOL_VERSION, VERSION_HEADER};
use pictor_protocol::digest::Sha256Digest;

/// The median of `v` (the upper one of an even count; `v` not empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Walks `--flag value` arguments, handing each to `set(flag, value)`;
/// cargo's own `--bench` is skipped. `set` returns false for an unknown flag.
pub fn parse_flags(
    mut set: impl FnMut(&str, String) -> Result<bool, Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if !set(&flag, value)? {
            return Err(format!("unknown argument {flag}").into());
        }
    }
    Ok(())
}

/// The plugin folder: `PICTOR_PLUGINS_DIR` if set (prebuilt components, for
/// machines without the guest toolchain), else freshly built ones.
pub fn pictor_plugins(root: &Path) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    if let Some(dir) = std::env::var_os("PICTOR_PLUGINS_DIR") {
        return Ok(dir.into());
    }
    if !Command::new("bash")
        .arg(root.join("scripts/build-plugins.sh"))
        .status()?
        .success()
    {
        return Err("building the plugins failed".into());
    }
    Ok(root.join("target/plugins"))
}

/// An error in bench code.
pub type BoxError = Box<dyn std::error::Error>;

/// The `pictor-coordinator` binary: `PICTOR_COORDINATOR_BIN` if set, else
/// built (a no-op when fresh) into the folder that holds this bench's
/// `pictor-host`, with the same profile.
pub fn coordinator_bin() -> Result<PathBuf, BoxError> {
    if let Some(bin) = std::env::var_os("PICTOR_COORDINATOR_BIN") {
        return Ok(bin.into());
    }
    let profile_dir = Path::new(env!("CARGO_BIN_EXE_pictor-host"))
        .parent()
        .ok_or("pictor-host has no folder")?;
    let target_dir = profile_dir
        .parent()
        .ok_or("the profile folder has no parent")?;
    let mut build = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    build
        .args([
            "build",
            "--quiet",
            "-p",
            "pictor-coordinator",
            "--bin",
            "pictor-coordinator",
        ])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    if !build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()?
        .success()
    {
        return Err("building pictor-coordinator failed (see output above)".into());
    }
    Ok(profile_dir.join("pictor-coordinator"))
}

/// A `pictor-host` command whose compiled-plugin cache is under `work`.
pub fn host_command(work: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pictor-host"));
    cmd.env("PICTOR_LOG", "info")
        .env("XDG_CACHE_HOME", work.join("xdg-cache"))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

/// Asks `child` to stop with SIGTERM and waits up to `grace` for it, then
/// kills it. Returns how it exited (`None`: it had to be killed).
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let asked = Instant::now();
    while asked.elapsed() < grace {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    format!(
        "[{}]\n{}",
        path.display(),
        all[all.len().saturating_sub(lines)..].join("\n")
    )
}

/// A `pictor-coordinator serve` on a free loopback port, stopped (SIGTERM)
/// when dropped.
pub struct Coordinator {
    child: Child,
    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Its data folder (tokens, store, blobs); the log is beside it.
    pub data: PathBuf,
}

impl Coordinator {
    /// Starts one on `data` with extra `serve` arguments and waits until it listens.
    pub fn start(data: &Path, args: &[&str]) -> Result<Self, BoxError> {
        let log = std::fs::File::create(data.with_extension("log"))?;
        let mut child = Command::new(coordinator_bin()?)
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("PICTOR_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        // It prints its URL once listening; read the rest so it never blocks.
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("pictor-coordinator listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let mut coordinator = Coordinator {
            child,
            url: String::new(),
            data: data.to_path_buf(),
        };
        coordinator.url = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
            format!(
                "the coordinator did not start:\n{}",
                log_tail(&data.with_extension("log"), 20)
            )
        })?;
        Ok(coordinator)
    }

    /// The creator's or the workers' token (`which`: `creator` or `worker`).
    pub fn token(&self, which: &str) -> Result<String, BoxError> {
        let path = self.data.join(format!("{which}.token"));
        Ok(std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .trim()
            .to_string())
    }

    /// The creator's client for its API.
    pub fn creator(&self) -> Result<Api, BoxError> {
        Ok(Api {
            http: pictor_host::blobs::http_client("pictor-bench")?,
            base: self.url.clone(),
            token: self.token("creator")?,
        })
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.data.with_extension("log"), lines)
    }

    /// Stops it with SIGTERM; an error if it did not exit cleanly.
    pub fn stop(mut self) -> Result<(), BoxError> {
        match terminate(&mut self.child, Duration::from_secs(10)) {
            Some(status) if status.success() => Ok(()),
            status => Err(format!(
                "the coordinator did not stop cleanly ({status:?}):\n{}",
                self.log_tail(20)
            )
            .into()),
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(10));
    }
}

/// A creator's view of a coordinator's API.
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A request to `path` (e.g. from [`pictor_protocol::api::paths`]) with the token and version header.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(VERSION_HEADER, PROTOCOL_VERSION.to_string())
    }

    /// Uploads `bytes` as a blob.
    pub async fn put_blob(&self, bytes: Vec<u8>) -> Result<BlobRef, BoxError> {
        let blob = BlobRef {
            sha256: Sha256Digest::of(&bytes),
            size: bytes.len() as u64,
        };
        let response = self
            .request(reqwest::Method::PUT, &api::paths::blob(&blob.sha256))
            .body(bytes)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "uploading blob {}: HTTP {status}: {}",
                blob.sha256,
                response.text().await?
            )
            .into());
        }
        Ok(blob)
    }
}
