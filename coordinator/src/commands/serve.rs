//! `pictor-coordinator serve`: run the coordinator until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use pictor_coordinator::Config;
use pictor_coordinator::config::DEFAULT_LISTEN;
use pictor_coordinator::limits::{self, gc_interval};
use pictor_protocol::Sha256Digest;

/// Serve the protocol from a data folder.
#[derive(Args)]
pub struct ServeCommand {
    /// The data folder: store, blobs and tokens (created on first start).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The URL workers reach this coordinator at, written into worker.json
    /// (e.g. the https:// URL of a TLS reverse proxy) [default: http://LISTEN].
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Seconds a lease lives after it is granted or last extended (workers
    /// heartbeat every third of it).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    lease_ttl_s: u64,
    /// Longest long-poll wait honoured on lease requests, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=300))]
    max_wait_s: u64,
    /// Consecutive failures of one kind after which a worker gets no more jobs of that kind.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    skip_after_failures: u32,
    /// `max_attempts` of a submitted job that does not give one.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    max_attempts_default: u32,
    /// Largest blob accepted, in MiB.
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
    max_blob_mib: u64,
    /// Seconds a request may take until its reply (the lease long poll gets
    /// --max-wait-s on top; blob uploads are bounded by the stall timeout
    /// and minimum rate instead); slower ones get 503 timed_out.
    #[arg(long, default_value_t = limits::DEFAULT_REQUEST_TIMEOUT_S, value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout_s: u64,
    /// Seconds a client may take to send a request's headers; idle
    /// keep-alive connections close after as long.
    #[arg(long, default_value_t = limits::DEFAULT_HEADER_TIMEOUT_S, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout_s: u64,
    /// Seconds a blob body may move no byte, and a connection's writes make
    /// no progress, before it is cut.
    #[arg(long, default_value_t = limits::DEFAULT_STALL_TIMEOUT_S, value_parser = clap::value_parser!(u64).range(1..=3600))]
    stall_timeout_s: u64,
    /// Slowest average rate of a blob upload or download, KiB/s (after a
    /// first stall timeout of grace).
    #[arg(long, default_value_t = limits::DEFAULT_MIN_TRANSFER_KIB_S, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    min_transfer_kib_s: u64,
    /// Lease long polls one worker may have waiting at once; more get 429.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_POLLS_PER_WORKER, value_parser = clap::value_parser!(u32).range(1..=64))]
    max_polls_per_worker: u32,
    /// MiB of uploads the creator token may hold that no job names yet.
    #[arg(long, default_value_t = limits::DEFAULT_CREATOR_QUOTA_MIB, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    creator_quota_mib: u64,
    /// MiB of uploads each worker (or the farm token as a whole) may hold
    /// that no accepted result names yet.
    #[arg(long, default_value_t = limits::DEFAULT_WORKER_QUOTA_MIB, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    worker_quota_mib: u64,
    /// Seconds after its upload that a blob no job or result names is deleted.
    #[arg(long, default_value_t = limits::DEFAULT_BLOB_GRACE_S, value_parser = clap::value_parser!(u64).range(60..=365 * 86400))]
    blob_gc_grace_s: u64,
    /// A job's timeout when its limits.timeout_s gives none (match the
    /// workers' own default), seconds: the basis of its leases' deadline.
    #[arg(long, default_value_t = limits::DEFAULT_JOB_TIMEOUT_S, value_parser = clap::value_parser!(u64).range(1..=604800))]
    default_job_timeout_s: u64,
    /// Seconds added to a job's timeout to make its lease's deadline, past
    /// which the lease expires however often it is extended.
    #[arg(long, default_value_t = limits::DEFAULT_DEADLINE_MARGIN_S, value_parser = clap::value_parser!(u64).range(0..=604800))]
    lease_deadline_margin_s: u64,
    /// The miner plugin component (e.g. target/guest/…/mine.wasm): put into
    /// the blob store at start; workers issued here download it by its
    /// sha256 and mine while idle. Without it, issued worker.json files have
    /// mining off.
    #[arg(long, value_name = "PATH")]
    miner_plugin: Option<PathBuf>,
    /// TESTING ONLY: the first full download of each blob larger than N bytes
    /// is cut after N bytes (clients must resume with Range).
    #[arg(long, value_name = "N", hide = true)]
    fault_cut_blob_after_bytes: Option<u64>,
    /// TESTING ONLY: the first download of blob SHA is served with a flipped
    /// byte (clients must detect it and fetch again). Repeatable.
    #[arg(long, value_name = "SHA", hide = true)]
    fault_corrupt_blob_once: Vec<Sha256Digest>,
}

impl ServeCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let mut config = Config::new(&self.data);
        config.listen = self.listen;
        config.public_url = self.public_url;
        config.lease_ttl = Duration::from_secs(self.lease_ttl_s);
        config.max_wait = Duration::from_secs(self.max_wait_s);
        config.skip_after_failures = self.skip_after_failures;
        config.max_attempts_default = self.max_attempts_default;
        config.max_blob_bytes = self.max_blob_mib << 20;
        config.miner_plugin = self.miner_plugin;
        let blob_grace = Duration::from_secs(self.blob_gc_grace_s);
        config.limits = limits::Limits {
            request_timeout: Duration::from_secs(self.request_timeout_s),
            header_timeout: Duration::from_secs(self.header_timeout_s),
            stall_timeout: Duration::from_secs(self.stall_timeout_s),
            min_transfer_rate: self.min_transfer_kib_s << 10,
            max_polls_per_worker: self.max_polls_per_worker,
            creator_quota: self.creator_quota_mib << 20,
            worker_quota: self.worker_quota_mib << 20,
            blob_grace,
            blob_gc_interval: gc_interval(blob_grace),
            default_job_timeout: Duration::from_secs(self.default_job_timeout_s),
            deadline_margin: Duration::from_secs(self.lease_deadline_margin_s),
        };
        config.faults.cut_blob_after_bytes = self.fault_cut_blob_after_bytes;
        config.faults.corrupt_blob_once = self.fault_corrupt_blob_once;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let running = pictor_coordinator::start(config).await?;
            let data = running.data.clone();
            println!("pictor-coordinator listening on {}", running.url);
            println!("  data:          {}", data.root().display());
            println!("  creator token: {}", data.creator_token_file().display());
            println!("  worker token:  {}", data.worker_token_file().display());
            println!("  worker config: {}", data.worker_config_file().display());
            println!(
                "start a worker:  pictor-host run --config {}",
                data.worker_config_file().display()
            );
            println!(
                "submit a job:    pictor-coordinator submit --data {} JOB.json --wait",
                data.root().display()
            );
            println!("worker portal:   {}/portal (log in with the creator token)", running.url);
            println!(
                "issue a worker:  pictor-coordinator worker create --data {} --name NAME --wallet ADDR --out worker.json",
                data.root().display()
            );
            let stop = running.stop_handle();
            tokio::spawn(async move {
                super::wait_for_signal().await;
                tracing::info!("stopping: finishing in-flight requests");
                stop.cancel();
            });
            running.wait().await?;
            tracing::info!("stopped");
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
