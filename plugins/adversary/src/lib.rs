//! `adversary`: a hostile plugin for the host's sandbox tests.
//!
//! Params: `{"attack": NAME, "target": PATH}`. Each attack tries something a
//! plugin must never get away with. Attacks on the file system return
//! `failed("blocked: …")` when the sandbox stops them and a summary starting
//! with `ESCAPED` when it does not (the tests also check the host side).
//! Resource attacks never return: the host must stop them.
//!
//! | attack | what it does |
//! |---|---|
//! | `infinite-loop` | spins forever without calling the host |
//! | `sleep-forever` | blocks forever inside a host call (a WASI clock wait) |
//! | `memory-bomb` | allocates until memory runs out |
//! | `deep-recursion` | recurses without bound |
//! | `panic` | panics |
//! | `write-dotdot` | writes `/output/../<target>` |
//! | `write-absolute` | writes the absolute host path `target` |
//! | `write-through-symlink` | writes through `/input/<target>`, a symlink the test planted |
//! | `read-through-symlink` | reads through `/input/<target>` |
//! | `read-passwd` | reads `/etc/passwd` and `/input/../../../../etc/passwd` |
//! | `output-symlink` | plants `/output/leak` → `target` for the host to follow |
//! | `output-bomb` | writes 1 MiB chunks to `/output` until it is stopped |
//! | `stdout-flood` | prints 8 MiB to stdout, then succeeds |

// Planting a symlink needs `std::os::wasi::fs::symlink_path`, still unstable;
// the guest build runs with RUSTC_BOOTSTRAP=1, so this test plugin may use it.
#![cfg_attr(target_os = "wasi", feature(wasi_ext, wasip2))]

use std::io::Write;

use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    attack: String,
    #[serde(default)]
    target: String,
}

/// The `adversary` plugin.
pub struct Adversary;

impl Plugin for Adversary {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let p: Params = job.params()?;
        let target = p.target.as_str();
        match p.attack.as_str() {
            "infinite-loop" => {
                let mut x: u64 = job.seed();
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "sleep-forever" => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xA5; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "deep-recursion" => Ok(Summary::new(format!("depth {}", recurse(job.seed(), 0)))),
            "panic" => panic!("adversary panicked on purpose (job {})", job.id()),
            "write-dotdot" => attempt(std::fs::write(format!("/output/../{target}"), b"escaped")),
            "write-absolute" => attempt(std::fs::write(target, b"escaped")),
            "write-through-symlink" => {
                attempt(std::fs::write(format!("/input/{target}/pwned.txt"), b"escaped"))
            }
            "read-through-symlink" => attempt(std::fs::read(format!("/input/{target}")).map(|_| ())),
            "read-passwd" => attempt(
                std::fs::read("/etc/passwd")
                    .or_else(|_| std::fs::read("/input/../../../../etc/passwd"))
                    .map(|_| ()),
            ),
            "output-symlink" => attempt(symlink("/output/leak", target)),
            "output-bomb" => {
                let chunk = vec![0x5A; 1 << 20];
                let mut file = std::fs::File::create("/output/bomb.bin")
                    .map_err(|e| JobError::Io(e.to_string()))?;
                loop {
                    file.write_all(&chunk).map_err(|e| JobError::Io(e.to_string()))?;
                }
            }
            "stdout-flood" => {
                let line = "x".repeat(1023);
                let mut out = std::io::stdout().lock();
                for _ in 0..(8 << 10) {
                    let _ = writeln!(out, "{line}");
                }
                Ok(Summary::new("flooded stdout"))
            }
            other => Err(JobError::InvalidParams(format!("unknown attack `{other}`"))),
        }
    }
}

/// `Ok("ESCAPED")` when the attack worked, `failed("blocked: …")` otherwise.
fn attempt(result: std::io::Result<()>) -> Result<Summary, JobError> {
    match result {
        Ok(()) => Ok(Summary::new("ESCAPED: the sandbox let the attack through")),
        Err(e) => Err(JobError::Failed(format!("blocked: {e}"))),
    }
}

#[cfg(target_os = "wasi")]
fn symlink(link: &str, target: &str) -> std::io::Result<()> {
    std::os::wasi::fs::symlink_path(target, link)
}

#[cfg(unix)]
fn symlink(link: &str, target: &str) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[inline(never)]
fn recurse(seed: u64, depth: u64) -> u64 {
    if depth == u64::MAX {
        return seed;
    }
    let frame = std::hint::black_box([seed ^ depth; 64]);
    frame[(depth % 64) as usize] + recurse(seed, depth + 1)
}

pictor_sdk::export_plugin!(Adversary);

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_sdk::testing::TestHost;

    #[test]
    fn unknown_attack_is_invalid_params() -> Result<(), Box<dyn std::error::Error>> {
        let host = TestHost::new()?;
        let err = Adversary::run(&host.job(r#"{"attack": "nope"}"#)).unwrap_err();
        assert_eq!(err, JobError::InvalidParams("unknown attack `nope`".into()));
        Ok(())
    }
}
