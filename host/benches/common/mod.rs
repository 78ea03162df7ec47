//! Helpers shared by the benchmarks.

#![allow(dead_code, reason = "each bench uses some of these")]

use std::path::Path;
use std::process::Command;

use pictor_protocol::api::{self, BlobRef, PROTOCOL_VERSION, VERSION_HEADER};
use pictor_protocol::digest::Sha256Digest;
use pictor_test_support::farm::{CoordinatorProcess, coordinator_bin};

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
/// machines without the guest toolchain), else freshly built ones
/// (`scripts/build-plugins.sh`, into `target/plugins`).
pub fn pictor_plugins(root: &Path) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    built_by(root, "build-plugins.sh")
}

/// The example plugins in other languages (`scripts/build-examples.sh`:
/// `py-scale`, `js-scale`), found like [`pictor_plugins`].
#[allow(dead_code, reason = "each bench uses some of these")]
pub fn example_plugins(root: &Path) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    built_by(root, "build-examples.sh")
}

fn built_by(root: &Path, script: &str) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    if let Some(dir) = std::env::var_os("PICTOR_PLUGINS_DIR") {
        return Ok(dir.into());
    }
    if !Command::new("bash")
        .arg(root.join("scripts").join(script))
        .status()?
        .success()
    {
        return Err(format!("scripts/{script} failed").into());
    }
    Ok(root.join("target/plugins"))
}

/// An error in bench code.
pub type BoxError = Box<dyn std::error::Error>;

#[allow(unused_imports, reason = "each bench uses some of these")]
pub use pictor_test_support::farm::{log_tail, terminate};

/// A `pictor-host` command whose compiled-plugin cache is under `work`.
pub fn host_command(work: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pictor-host"));
    cmd.env("PICTOR_LOG", "info")
        .env("XDG_CACHE_HOME", work.join("xdg-cache"))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

/// A `pictor-coordinator serve` on a free loopback port (the shared test
/// process), stopped when dropped; with the creator's API.
pub struct Coordinator {
    process: CoordinatorProcess,
    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
}

impl Coordinator {
    /// Starts one on `data` with extra `serve` arguments and waits until it listens.
    pub fn start(data: &Path, args: &[&str]) -> Result<Self, BoxError> {
        let bin = coordinator_bin(Path::new(env!("CARGO_BIN_EXE_pictor-host")))?;
        let process = CoordinatorProcess::start(&bin, data, args)?;
        Ok(Coordinator {
            url: process.url(),
            process,
        })
    }

    /// The creator's or the workers' token (`which`: `creator` or `worker`).
    pub fn token(&self, which: &str) -> Result<String, BoxError> {
        Ok(self.process.token(which)?)
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
        self.process.log_tail(lines)
    }

    /// Stops it with SIGTERM; an error if it did not exit cleanly.
    pub fn stop(self) -> Result<(), BoxError> {
        Ok(self.process.stop()?)
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
