//! The real binaries on loopback, for the e2e tests and the benchmarks: the
//! `pictor-coordinator` binary built with the same profile as the caller's
//! `pictor-host`, a coordinator process on a port of its own (killable and
//! restartable on that port, as a crash and a restart would), and stopping
//! child processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a coordinator may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a coordinator may take to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The `pictor-coordinator` binary for tests of `host_bin` (the caller's
/// `CARGO_BIN_EXE_pictor-host`): `PICTOR_COORDINATOR_BIN` if set, else
/// built with cargo into the same target folder and profile (a no-op when
/// fresh; `cargo test --workspace` has built it already).
pub fn coordinator_bin(host_bin: &Path) -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("PICTOR_COORDINATOR_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let profile_dir = host_bin
        .parent()
        .ok_or_else(|| format!("{} has no folder", host_bin.display()))?;
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
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build
        .status()
        .map_err(|e| format!("cannot run cargo build -p pictor-coordinator: {e}"))?;
    if !status.success() {
        return Err("building pictor-coordinator failed (see output above)".into());
    }
    Ok(profile_dir.join("pictor-coordinator"))
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

/// A `pictor-coordinator serve` process on a loopback port chosen at
/// start and kept across restarts, its log appended beside its data folder
/// (`<data>.log`). Killed (as a crash would) when dropped.
pub struct CoordinatorProcess {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl CoordinatorProcess {
    /// Starts `bin` serving `data` with the extra `serve` arguments `args`,
    /// and waits until it listens.
    pub fn start(bin: &Path, data: &Path, args: &[&str]) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let mut process = CoordinatorProcess {
            bin: bin.to_path_buf(),
            data: data.to_path_buf(),
            port,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        process.spawn()?;
        Ok(process)
    }

    /// Starts the process and waits for its "listening" line.
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("{}: {e}", self.log_path().display()))?;
        let mut child = Command::new(&self.bin)
            .arg("serve")
            .arg("--data")
            .arg(&self.data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.args)
            .env("PICTOR_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        // It prints its URL once listening; the rest is read so it never blocks.
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("pictor-coordinator listening on ") {
                    let _ = tx.send(());
                }
            }
        });
        self.child = Some(child);
        rx.recv_timeout(START_TIMEOUT).map_err(|_| {
            format!(
                "the coordinator did not start:\n{}",
                log_tail(&self.log_path(), 20)
            )
        })
    }

    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its data folder (tokens, store, blobs).
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The creator's or the workers' token (`which`: `creator` or `worker`).
    pub fn token(&self, which: &str) -> Result<String, String> {
        let path = self.data.join(format!("{which}.token"));
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn log_path(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path(), lines)
    }

    /// `kill -9`, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it and starts it again on the same port and data.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// Stops it with SIGTERM; an error if it did not exit cleanly.
    pub fn stop(mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        match terminate(&mut child, STOP_GRACE) {
            Some(status) if status.success() => Ok(()),
            status => Err(format!(
                "the coordinator did not stop cleanly ({status:?}):\n{}",
                self.log_tail(20)
            )),
        }
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
