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
//! | `unlinked-write` | unlinks its open `/output` file, then writes 1 MiB chunks to it forever |
//! | `fd-hoard` | opens `/input/<target>` again and again without closing it (raw `wasi:filesystem` calls: the preview-1 adapter would refuse first) |
//! | `stream-hoard` | opens `/input/<target>`, makes a read stream, drops the descriptor, again and again |
//! | `deep-output` | nests `depth` folders in `/output` (default 2500, past `PATH_MAX`), then writes 1 MiB chunks at the bottom until stopped, or returns with `stop_after_folders` |
//! | `long-error` | fails with a `size`-byte message (default 100 MB) |
//! | `long-summary` | succeeds with a `size`-byte message and 100,000 metrics |
//! | `long-progress` | reports progress with a `size`-byte message, 20 times, then succeeds |
//! | `listing-hoard` | opens a listing of `/input` again and again without reading it to the end |
//! | `file-flood` | creates empty files in `/output` until it is stopped |
//! | `sparse-file` | sets the size of a new `/output` file to 1 TiB without writing |
//! | `endless-line` | prints `size` bytes to stdout without a newline (default 100 MB), then succeeds |
//! | `pollable-hoard` | makes clock pollables without end, keeping every one (no descriptor involved: only the host's resource table bounds it) |
//! | `big-checkpoint` | saves a `size`-byte checkpoint, then a 4-byte one; succeeds saying what each save returned |
//! | `terminal-escapes` | puts OSC 52 (clipboard), CSI 2J (clear) and BEL in its progress, stdout, stderr and error |
//! | `network` | makes TCP and UDP sockets and looks up a name with raw `wasi:sockets` calls; fails with `blocked: …` naming what each got |

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
    #[serde(default = "default_depth")]
    depth: usize,
    #[serde(default)]
    stop_after_folders: bool,
    #[serde(default = "default_size")]
    size: usize,
}

fn default_depth() -> usize {
    2500
}

fn default_size() -> usize {
    100_000_000
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
            "write-through-symlink" => attempt(std::fs::write(
                format!("/input/{target}/pwned.txt"),
                b"escaped",
            )),
            "read-through-symlink" => {
                attempt(std::fs::read(format!("/input/{target}")).map(|_| ()))
            }
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
                    file.write_all(&chunk)
                        .map_err(|e| JobError::Io(e.to_string()))?;
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
            "unlinked-write" => {
                let mut file = std::fs::File::create("/output/ghost.bin").map_err(io)?;
                std::fs::remove_file("/output/ghost.bin").map_err(io)?;
                write_forever(&mut file)
            }
            "fd-hoard" => hoard(target, false),
            "stream-hoard" => hoard(target, true),
            "deep-output" => deep_output(p.depth, p.stop_after_folders),
            "listing-hoard" => listing_hoard(),
            "pollable-hoard" => pollable_hoard(),
            "endless-line" => {
                let chunk = "y".repeat(1 << 16);
                let mut out = std::io::stdout().lock();
                for _ in 0..p.size.div_ceil(chunk.len()) {
                    let _ = out.write_all(chunk.as_bytes());
                }
                let _ = out.flush();
                Ok(Summary::new("printed a line that never ends"))
            }
            "file-flood" => {
                for n in 0u64.. {
                    std::fs::File::create(format!("/output/f{n}")).map_err(io)?;
                }
                unreachable!("u64 files")
            }
            "sparse-file" => {
                let file = std::fs::File::create("/output/sparse.bin").map_err(io)?;
                file.set_len(1 << 40).map_err(io)?;
                Ok(Summary::new("ESCAPED: a 1 TiB sparse file"))
            }
            "long-error" => Err(JobError::Failed("E".repeat(p.size))),
            "long-summary" => {
                let mut summary = Summary::new("S".repeat(p.size));
                for i in 0..100_000 {
                    summary = summary.metric(format!("metric-{i}-{}", "m".repeat(100)), i as f64);
                }
                Ok(summary)
            }
            "big-checkpoint" => {
                let said = |r: Result<(), JobError>| match r {
                    Ok(()) => "saved".to_string(),
                    Err(e) => format!("refused ({e})"),
                };
                let big = said(job.save_checkpoint(&vec![7; p.size]));
                let small = said(job.save_checkpoint(b"tiny"));
                Ok(Summary::new(format!("big: {big}; small: {small}")))
            }
            "long-progress" => {
                let message = "P".repeat(p.size);
                for i in 0..20 {
                    job.progress(i as f32 / 20.0, &message);
                }
                Ok(Summary::new("reported long progress"))
            }
            "terminal-escapes" => {
                let nasty = "\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}[2J\u{1b}[31mred\u{7}";
                job.progress(0.5, format!("progress {nasty}"));
                println!("stdout {nasty}");
                eprintln!("stderr {nasty}");
                Err(JobError::Failed(format!("error {nasty}")))
            }
            "network" => network(),
            other => Err(JobError::InvalidParams(format!("unknown attack `{other}`"))),
        }
    }
}

fn io(e: std::io::Error) -> JobError {
    JobError::Io(e.to_string())
}

/// Opens `/input/<name>` without end, keeping every descriptor (or only a
/// read stream made from it).
#[cfg(target_arch = "wasm32")]
fn hoard(name: &str, streams: bool) -> Result<Summary, JobError> {
    use wasip2::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let (input, _) = wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == "/input")
        .ok_or_else(|| JobError::Io("no /input preopen".into()))?;
    let mut held_files = Vec::new();
    let mut held_streams = Vec::new();
    for n in 0u64.. {
        let file = input
            .open_at(
                PathFlags::empty(),
                name,
                OpenFlags::empty(),
                DescriptorFlags::READ,
            )
            .map_err(|e| JobError::Io(format!("open #{n} refused: {e:?}")))?;
        if streams {
            held_streams.push(
                file.read_via_stream(0)
                    .map_err(|e| JobError::Io(format!("stream #{n}: {e:?}")))?,
            );
        } else {
            held_files.push(file);
        }
    }
    unreachable!("u64 opens")
}

#[cfg(not(target_arch = "wasm32"))]
fn hoard(name: &str, _streams: bool) -> Result<Summary, JobError> {
    let mut held = Vec::new();
    loop {
        held.push(std::fs::File::open(format!("/input/{name}")).map_err(io)?);
    }
}

/// Opens listings of `/input` without end, keeping every one.
#[cfg(target_arch = "wasm32")]
fn listing_hoard() -> Result<Summary, JobError> {
    let (input, _) = wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == "/input")
        .ok_or_else(|| JobError::Io("no /input preopen".into()))?;
    let mut held = Vec::new();
    for n in 0u64.. {
        held.push(
            input
                .read_directory()
                .map_err(|e| JobError::Io(format!("listing #{n} refused: {e:?}")))?,
        );
    }
    unreachable!("u64 listings")
}

#[cfg(not(target_arch = "wasm32"))]
fn listing_hoard() -> Result<Summary, JobError> {
    let mut held = Vec::new();
    loop {
        held.push(std::fs::read_dir("/input").map_err(io)?);
    }
}

/// Subscribes to a far-off clock time without end, keeping every pollable.
#[cfg(target_arch = "wasm32")]
fn pollable_hoard() -> Result<Summary, JobError> {
    let mut held = Vec::new();
    loop {
        held.push(wasip2::clocks::monotonic_clock::subscribe_duration(
            u64::MAX,
        ));
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn pollable_hoard() -> Result<Summary, JobError> {
    Err(JobError::Failed("pollable-hoard needs wasm".into()))
}

/// Every way out to the network a job might try: the `wasi:sockets`
/// constructors a libc's `socket()` and `getaddrinfo()` call. (`std::net`
/// itself does not link here: Debian's wasi-libc is preview-1 and has no
/// sockets.)
#[cfg(target_arch = "wasm32")]
fn network() -> Result<Summary, JobError> {
    use wasip2::sockets::network::{ErrorCode, IpAddressFamily};
    let mut escaped = Vec::new();
    let mut got = Vec::new();
    let name = |e: ErrorCode| e.name();
    match wasip2::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Ok(_) => escaped.push("create-tcp-socket".to_string()),
        Err(e) => got.push(format!("create-tcp-socket: {}", name(e))),
    }
    match wasip2::sockets::udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4) {
        Ok(_) => escaped.push("create-udp-socket".to_string()),
        Err(e) => got.push(format!("create-udp-socket: {}", name(e))),
    }
    let network = wasip2::sockets::instance_network::instance_network();
    match wasip2::sockets::ip_name_lookup::resolve_addresses(&network, "example.com") {
        Ok(_) => escaped.push("resolve-addresses".to_string()),
        Err(e) => got.push(format!("resolve-addresses: {}", name(e))),
    }
    if escaped.is_empty() {
        Err(JobError::Failed(format!("blocked: {}", got.join("; "))))
    } else {
        Ok(Summary::new(format!("ESCAPED: {}", escaped.join(", "))))
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn network() -> Result<Summary, JobError> {
    Err(JobError::Unsupported("network needs wasi:sockets".into()))
}

/// Nests `depth` folders in `/output`, each created relative to the one
/// above (no path is ever longer than one name), then writes at the bottom.
#[cfg(target_arch = "wasm32")]
fn deep_output(depth: usize, stop_after_folders: bool) -> Result<Summary, JobError> {
    use wasip2::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let fail = |what: &str, e: wasip2::filesystem::types::ErrorCode| {
        JobError::Io(format!("{what}: {e:?}"))
    };
    let (mut dir, _) = wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == "/output")
        .ok_or_else(|| JobError::Io("no /output preopen".into()))?;
    for level in 0..depth {
        dir.create_directory_at("d")
            .map_err(|e| fail(&format!("folder {level}"), e))?;
        dir = dir
            .open_at(
                PathFlags::empty(),
                "d",
                OpenFlags::DIRECTORY,
                DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
            )
            .map_err(|e| fail(&format!("open folder {level}"), e))?;
    }
    if stop_after_folders {
        return Ok(Summary::new(format!("nested {depth} folders")));
    }
    let file = dir
        .open_at(
            PathFlags::empty(),
            "bottom.bin",
            OpenFlags::CREATE,
            DescriptorFlags::WRITE,
        )
        .map_err(|e| fail("bottom file", e))?;
    let chunk = vec![0x5A; 1 << 20];
    let mut offset = 0u64;
    loop {
        offset += file.write(&chunk, offset).map_err(|e| fail("write", e))?;
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn deep_output(depth: usize, _stop_after_folders: bool) -> Result<Summary, JobError> {
    Err(JobError::Unsupported(format!(
        "deep-output ({depth} folders) needs wasi:filesystem"
    )))
}

/// Writes 1 MiB chunks to `file` until the host stops the job.
fn write_forever(file: &mut std::fs::File) -> Result<Summary, JobError> {
    let chunk = vec![0x5A; 1 << 20];
    loop {
        file.write_all(&chunk).map_err(io)?;
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
