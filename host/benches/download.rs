//! Verified downloads against plain ones: one random blob served by a real
//! `pictor-coordinator` on loopback, downloaded both ways in each run (which
//! way goes first alternates):
//!
//! - unverified (the baseline): [`Fetcher::download_unverified`], streamed
//!   to a file by the same writer, nothing else;
//! - verified: [`Fetcher::fetch`] into the cache: streamed, hashed on
//!   another thread, digest and size checked, moved into the cache.
//!
//! Every run is a cold download: the file, or the cached blob, is deleted
//! after it. Goal: verified ≥ 0.9× unverified. For context it also prints
//! sha256 alone over the same bytes, and the rate verified downloads would
//! have if hashing did not overlap the transfer at all; and, on Linux, how
//! many cores the whole machine kept busy during each download.
//!
//! Run: `cargo bench -p pictor-host --bench download -- [--mib 256] [--runs 5]`

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use common::{BoxError, Coordinator};
use pictor_host::blobs::{BlobCache, BlobSource, FetchOptions, Fetcher, ProgressSink};
use pictor_host::digest::Sha256Digest;
use pictor_protocol::api::BlobRef;
use reqwest::Url;

fn main() -> Result<(), BoxError> {
    let (mut mib, mut runs) = (256u64, 5usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mib" => mib = args.next().ok_or("--mib needs a value")?.parse()?,
            "--runs" => runs = args.next().ok_or("--runs needs a value")?.parse()?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if mib == 0 || runs == 0 {
        return Err("--mib and --runs must be at least 1".into());
    }
    let work = tempfile::tempdir()?;
    let coordinator = Coordinator::start(&work.path().join("coordinator"), &[])?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (unverified, verified, hashing) = tokio.block_on(async {
        let mut bytes = vec![0u8; (mib << 20) as usize];
        getrandom::fill(&mut bytes)?;
        let t = Instant::now();
        std::hint::black_box(Sha256Digest::of(&bytes));
        let hashing = t.elapsed();
        let blob = coordinator.creator()?.put_blob(bytes).await?;
        let base = Url::parse(&coordinator.url)?;
        let source = BlobSource::coordinator(&base, coordinator.token("worker")?, &blob.sha256)?
            .named("bench blob");
        let cache = Arc::new(BlobCache::open(work.path().join("cache"), 2 * blob.size)?);
        let fetcher = Fetcher::new(
            pictor_host::blobs::http_client("pictor-bench")?,
            cache,
            FetchOptions::default(),
        );
        let plain = work.path().join("plain.bin");
        let (mut unverified, mut verified) = (Vec::new(), Vec::new());
        println!("run  unverified MiB/s  cores busy  verified MiB/s  cores busy");
        for run in 1..=runs {
            // Which goes first alternates, so neither always follows the other.
            if run % 2 == 1 {
                unverified.push(download_unverified(&fetcher, &source, &plain, blob.size).await?);
                verified.push(download_verified(&fetcher, &source, &blob).await?);
            } else {
                verified.push(download_verified(&fetcher, &source, &blob).await?);
                unverified.push(download_unverified(&fetcher, &source, &plain, blob.size).await?);
            }
            let (a, b) = (&unverified[run - 1], &verified[run - 1]);
            println!(
                "{run:>3}  {:>16.1}  {:>10}  {:>14.1}  {:>10}",
                mib as f64 / a.secs,
                cores(a.cores),
                mib as f64 / b.secs,
                cores(b.cores)
            );
        }
        Ok::<_, BoxError>((unverified, verified, hashing))
    })?;
    coordinator.stop()?;

    let (u, v) = (
        mib as f64 / median(unverified.iter().map(|s| s.secs)),
        mib as f64 / median(verified.iter().map(|s| s.secs)),
    );
    let (ratio, h) = (v / u, mib as f64 / hashing.as_secs_f64());
    let median_cores = |samples: &[Sample]| {
        cores(
            samples
                .iter()
                .map(|s| s.cores)
                .collect::<Option<Vec<f64>>>()
                .map(median),
        )
    };
    println!(
        "download of one {mib} MiB blob from a coordinator on loopback, median of {runs} cold runs each"
    );
    println!(
        "  unverified (baseline)   {u:>8.1} MiB/s   cores busy {}",
        median_cores(&unverified)
    );
    println!(
        "  verified (fetch)        {v:>8.1} MiB/s   cores busy {}",
        median_cores(&verified)
    );
    println!(
        "  verified/unverified = {ratio:.3}x (goal ≥ 0.9: {})",
        if ratio >= 0.9 { "met" } else { "NOT met" }
    );
    println!(
        "  for context: sha256 alone {h:.1} MiB/s; hashing with no overlap at all would give {:.1} MiB/s",
        1.0 / (1.0 / u + 1.0 / h)
    );
    Ok(())
}

/// The baseline: the blob streamed to `dest`, which is deleted afterwards.
async fn download_unverified(
    fetcher: &Fetcher,
    source: &BlobSource,
    dest: &Path,
    size: u64,
) -> Result<Sample, BoxError> {
    let (t, cpu) = (Instant::now(), machine_busy_s());
    let written = fetcher.download_unverified(source, dest).await?;
    let sample = Sample::since(t, cpu);
    if written != size {
        return Err(format!("unverified download wrote {written} bytes, expected {size}").into());
    }
    std::fs::remove_file(dest)?;
    Ok(sample)
}

/// A verified fetch into the (empty) cache; the blob is removed from it afterwards.
async fn download_verified(
    fetcher: &Fetcher,
    source: &BlobSource,
    blob: &BlobRef,
) -> Result<Sample, BoxError> {
    let (t, cpu) = (Instant::now(), machine_busy_s());
    let pinned = fetcher
        .fetch(
            source,
            blob.sha256,
            Some(blob.size),
            &ProgressSink::discard(),
        )
        .await?;
    let sample = Sample::since(t, cpu);
    drop(pinned);
    if !fetcher.cache().remove(&blob.sha256)? {
        return Err("the verified blob was not in the cache".into());
    }
    Ok(sample)
}

/// One download: how long it took, and how many cores the machine kept busy meanwhile.
struct Sample {
    secs: f64,
    cores: Option<f64>,
}

impl Sample {
    fn since(start: Instant, busy_at_start: Option<f64>) -> Self {
        let secs = start.elapsed().as_secs_f64();
        Sample {
            secs,
            cores: busy_at_start
                .zip(machine_busy_s())
                .map(|(a, b)| (b - a) / secs),
        }
    }
}

/// CPU seconds the whole machine has spent busy (user, nice, system, irq,
/// softirq in `/proc/stat`, in USER_HZ = 100 ticks), on Linux.
fn machine_busy_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    Some(
        [0, 1, 2, 5, 6]
            .iter()
            .map(|&i| ticks.get(i).copied().unwrap_or(0.0))
            .sum::<f64>()
            / 100.0,
    )
}

fn cores(busy: Option<f64>) -> String {
    busy.map_or_else(|| "-".to_string(), |c| format!("{c:.2}"))
}

fn median(samples: impl IntoIterator<Item = f64>) -> f64 {
    let mut samples: Vec<f64> = samples.into_iter().collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
