//! Shared helpers: fresh plugins, job folders, running the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
}

/// Scratch space inside target/ for this test binary.
pub fn scratch() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// Runs the build script `script` (under `scripts/`) into the scratch
/// folder `folder` and returns that folder; with `PICTOR_PLUGINS_DIR` set,
/// returns it instead (for running the test binary on a machine without the
/// guest toolchains, e.g. a GPU box).
fn built_by(script: &str, folder: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("PICTOR_PLUGINS_DIR") {
        return PathBuf::from(dir);
    }
    let out = scratch().join(folder);
    let status = Command::new("bash")
        .arg(repo_root().join("scripts").join(script))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
    assert!(
        status.success(),
        "scripts/{script} failed (see output above)"
    );
    out
}

/// Builds every plugin once per test run (`scripts/build-plugins.sh`,
/// incremental: ~2 s when nothing changed) and returns the folder holding
/// `<name>.wasm`.
pub fn plugins_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| built_by("build-plugins.sh", "plugins"))
}

/// Builds the plugins written in other languages (`scripts/build-examples.sh`:
/// Python with componentize-py, JavaScript with componentize-qjs) once per
/// test run and returns the path of `<name>.wasm`.
pub fn example_plugin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| built_by("build-examples.sh", "example-plugins"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "example plugin {name} was not built: {}",
        path.display()
    );
    path
}

/// The path of a freshly built plugin.
pub fn plugin(name: &str) -> PathBuf {
    let path = plugins_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "plugin {name} was not built: {}",
        path.display()
    );
    path
}

/// A job's folders in a fresh temporary root: `input/` exists, `output/` does not.
pub struct JobFolders {
    pub root: tempfile::TempDir,
    pub input: PathBuf,
    pub output: PathBuf,
}

impl JobFolders {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let input = root.path().join("input");
        std::fs::create_dir(&input).expect("create input");
        let output = root.path().join("output");
        JobFolders {
            root,
            input,
            output,
        }
    }

    /// Writes a job spec into the root and returns its path.
    pub fn job(&self, spec: &Value) -> PathBuf {
        let path = self.root.path().join("job.json");
        std::fs::write(&path, serde_json::to_vec_pretty(spec).expect("json")).expect("write job");
        path
    }
}

/// What one `pictor-host` run printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `--json` outcome printed on stdout.
    pub fn outcome(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The failure kind of the outcome (`timed-out`, `trap`, …).
    pub fn failure_kind(&self) -> String {
        self.outcome()["failure"]["kind"]
            .as_str()
            .unwrap_or("<none>")
            .to_string()
    }

    /// The one-line failure message of the outcome.
    pub fn failure_message(&self) -> String {
        self.outcome()["failure"]["message"]
            .as_str()
            .unwrap_or("<none>")
            .to_string()
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The `pictor-coordinator` binary, built once per test run with the same
/// profile and target folder as `pictor-host` (a no-op when fresh; a
/// `cargo test --workspace` has built it already). `PICTOR_COORDINATOR_BIN`
/// points at another one.
pub fn coordinator_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        pictor_test_support::farm::coordinator_bin(Path::new(env!("CARGO_BIN_EXE_pictor-host")))
            .unwrap()
    })
}

/// A `pictor-host` command with a cache folder private to this test binary.
pub fn host() -> Command {
    let binary = std::env::var_os("PICTOR_HOST_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_pictor-host").into());
    let mut cmd = Command::new(binary);
    cmd.env("PICTOR_LOG", "info")
        .env("XDG_CACHE_HOME", scratch().join("xdg-cache"))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

/// A `pictor-host exec --json` command for `job` with `plugin` in `folders`.
pub fn exec_command(plugin_name: &str, job: &Path, folders: &JobFolders) -> Command {
    exec_component_command(&plugin(plugin_name), job, folders)
}

/// A `pictor-host exec --json` command for `job` with the component at
/// `component` in `folders`.
pub fn exec_component_command(component: &Path, job: &Path, folders: &JobFolders) -> Command {
    let mut cmd = host();
    cmd.arg("exec")
        .arg("--plugin")
        .arg(component)
        .arg("--job")
        .arg(job)
        .arg("--input")
        .arg(&folders.input)
        .arg("--output")
        .arg(&folders.output)
        .arg("--json");
    cmd
}

/// Runs `pictor-host exec --json` for a spec with `plugin` in `folders`.
pub fn exec(plugin_name: &str, spec: &Value, folders: &JobFolders, extra: &[&str]) -> Run {
    let job = folders.job(spec);
    exec_command(plugin_name, &job, folders)
        .args(extra)
        .output()
        .expect("run pictor-host")
        .into()
}

/// sha256 of a file, as hex.
pub fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        std::fs::read(path).expect("read file"),
    ))
}
