//! The test pool of the e2e tests as a program, to watch a worker mine
//! without a real pool: real jobs at a low share difficulty, every share
//! rebuilt and hashed (SHA-256d) before it is accepted.
//!
//! Run: `cargo run --release -p pictor-host --example testpool -- [--port 3333] [--difficulty 0.001] [--job-every 30]`
//! then point a worker at it (`"pool": "stratum+tcp://127.0.0.1:3333"`,
//! `"require_nvidia": false` on a machine without an NVIDIA GPU).

use pictor_test_support::pool;

use std::time::Duration;

use pool::{PoolOptions, TestPool};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut port, mut difficulty, mut job_every) = (3333u16, 1.0f64 / 1024.0, 30u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => port = value()?.parse()?,
            "--difficulty" => difficulty = value()?.parse()?,
            "--job-every" => job_every = value()?.parse()?,
            other => {
                return Err(format!(
                    "unknown argument {other} (use --port, --difficulty, --job-every)"
                )
                .into());
            }
        }
    }
    if !(difficulty.is_finite() && difficulty > 0.0) || job_every == 0 {
        return Err("--difficulty must be > 0 and --job-every ≥ 1 second".into());
    }
    let pool = TestPool::start_at(
        &format!("127.0.0.1:{port}"),
        PoolOptions {
            difficulty,
            ..PoolOptions::default()
        },
    )?;
    println!(
        "test pool on {} (share difficulty {difficulty}, a new job every {job_every} s); Ctrl-C to stop",
        pool.url()
    );
    loop {
        std::thread::sleep(Duration::from_secs(job_every));
        pool.new_job(false);
        let t = pool.tally();
        println!(
            "{} miner(s) connected · {} shares accepted, {} rejected",
            t.open, t.accepted, t.rejected
        );
    }
}
