//! The mining loop: connect to the pool (rotating over its addresses, with
//! exponential backoff and jitter when it is unreachable or drops the
//! connection), subscribe and authorize, then alternate between the pool's
//! messages and short GPU searches; every candidate nonce is hashed again
//! on the CPU and only a real share is submitted.
//!
//! Reconnection lives here, in the plugin, rather than in the host: the
//! plugin keeps its GPU kernels and its share counts across connections,
//! and the host's job stays simple (start when idle, stop hard on a job).
//! The host restarts a miner that *ends* (e.g. the pool refused the worker),
//! with its own backoff.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pictor_sdk::gpu::GpuError;
use pictor_sdk::{Job, JobError};

use crate::algorithm::{Algorithm, Header, NonceSearch, with_nonce};
use crate::net::{self, Connection};
use crate::report::{Meter, MiningStats, Reporter, format_rate};
use crate::stratum::{Client, Event, Share, Work};
use crate::target::Target;
use crate::work::extranonce2;

/// How the miner connects and paces itself.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The pool as the owner configured it (`host:port`), for messages.
    pub pool: String,
    /// The pool's addresses (the only ones the host lets it reach).
    pub addresses: Vec<SocketAddr>,
    /// `<wallet>.<worker>`.
    pub user: String,
    /// Pool password (most pools ignore it).
    pub password: String,
    /// GPU time aimed at per submission: the host can only stop the miner
    /// between submissions, so this bounds the preemption latency.
    pub batch: Duration,
    /// First and longest reconnection delay.
    pub backoff: (Duration, Duration),
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long the pool may take to answer subscribe and authorize.
    pub answer_timeout: Duration,
    /// How long the pool may stay silent before the connection counts as dead.
    pub silence_timeout: Duration,
}

impl Settings {
    /// Defaults for everything but the pool and user.
    pub fn new(pool: String, addresses: Vec<SocketAddr>, user: String) -> Self {
        Settings {
            pool,
            addresses,
            user,
            password: "x".into(),
            batch: Duration::from_millis(10),
            backoff: (Duration::from_secs(1), Duration::from_secs(60)),
            connect_timeout: Duration::from_secs(10),
            answer_timeout: Duration::from_secs(30),
            silence_timeout: Duration::from_secs(300),
        }
    }
}

/// Exponential backoff with "equal jitter": each delay is drawn from
/// `[ceiling / 2, ceiling]`, the ceiling doubling up to the maximum.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff from `min` to `max`, jittered from `seed`.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            min,
            max,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let fraction =
            (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(0.5 + fraction / 2.0)
    }

    /// Starts over (after a connection that worked).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Sizes searches so each takes about the aimed GPU time.
#[derive(Debug)]
struct BatchSizer {
    aim: Duration,
    nonces: u32,
}

impl BatchSizer {
    const MIN: u32 = 4096;
    const MAX: u32 = 1 << 30;

    fn new(aim: Duration) -> Self {
        BatchSizer {
            aim,
            nonces: 1 << 16,
        }
    }

    /// Adjusts after a search of `nonces` took `elapsed` (at most ×2 or ÷2 a step).
    fn update(&mut self, nonces: u32, elapsed: Duration) {
        let ratio = if elapsed.is_zero() {
            2.0
        } else {
            (self.aim.as_secs_f64() / elapsed.as_secs_f64()).clamp(0.5, 2.0)
        };
        self.nonces =
            (f64::from(nonces) * ratio).clamp(f64::from(Self::MIN), f64::from(Self::MAX)) as u32;
    }
}

/// The work being mined: its target and where the search is.
struct Current {
    work: Work,
    target: Target,
    extranonce2: u64,
    header: Header,
    /// Next nonce to search (2^32 when this extranonce2 is exhausted).
    next_nonce: u64,
}

impl Current {
    fn new(work: Work, diff1: &Target) -> Option<Self> {
        let target = Target::from_difficulty(diff1, work.difficulty)?;
        let header = work
            .job
            .header_for(&work.extranonce1, &extranonce2(0, work.extranonce2_size));
        Some(Current {
            work,
            target,
            extranonce2: 0,
            header,
            next_nonce: 0,
        })
    }

    /// The next range of at most `count` nonces: (header, first, count).
    fn next_range(&mut self, count: u32) -> (Header, u32, u32) {
        if self.next_nonce >= 1 << 32 {
            self.extranonce2 += 1;
            let en2 = extranonce2(self.extranonce2, self.work.extranonce2_size);
            self.header = self.work.job.header_for(&self.work.extranonce1, &en2);
            self.next_nonce = 0;
        }
        let first = self.next_nonce as u32;
        let count = u64::from(count).min((1 << 32) - self.next_nonce) as u32;
        self.next_nonce += u64::from(count);
        (self.header, first, count)
    }

    fn share(&self, nonce: u32) -> Share {
        Share {
            job_id: self.work.job.id.clone(),
            extranonce2: extranonce2(self.extranonce2, self.work.extranonce2_size),
            ntime: self.work.job.ntime,
            nonce,
        }
    }
}

/// How a connection ended (a fatal problem is an `Err` instead).
enum Ended {
    /// Lost or unusable: reconnect after the backoff.
    Dropped(String),
    /// The pool asked for a reconnection after this wait.
    Reconnect(Duration),
}

/// The miner's state across connections.
pub struct Miner<'a> {
    job: &'a Job,
    settings: &'a Settings,
    algorithm: &'a dyn Algorithm,
    search: &'a mut dyn NonceSearch,
    stats: MiningStats,
    meter: Meter,
    reporter: Reporter<'a>,
    sizer: BatchSizer,
    backoff: Backoff,
    /// GPU candidates the CPU check refused (a GPU or kernel fault).
    bad_candidates: u64,
    /// `client.show_message`s received.
    pool_messages: u64,
    status: String,
}

impl<'a> Miner<'a> {
    /// A miner for `job` with these settings, hashing with `search`.
    pub fn new(
        job: &'a Job,
        settings: &'a Settings,
        algorithm: &'a dyn Algorithm,
        search: &'a mut dyn NonceSearch,
    ) -> Self {
        Miner {
            job,
            settings,
            algorithm,
            search,
            stats: MiningStats::default(),
            meter: Meter::default(),
            reporter: Reporter::new(job),
            sizer: BatchSizer::new(settings.batch),
            backoff: Backoff::new(
                settings.backoff.0,
                settings.backoff.1,
                job.seed() ^ 0x9e37_79b9_7f4a_7c15,
            ),
            bad_candidates: 0,
            pool_messages: 0,
            status: format!("connecting to {}", settings.pool),
        }
    }

    /// The figures so far.
    pub fn stats(&self) -> &MiningStats {
        &self.stats
    }

    /// Mines until the host stops it; returns only for a problem retrying
    /// cannot fix (the pool refused the worker, no GPU), or a cancel.
    pub fn run(&mut self) -> Result<(), JobError> {
        if self.settings.addresses.is_empty() {
            return Err(JobError::InvalidParams(
                "no pool address to connect to".into(),
            ));
        }
        let mut attempt = 0usize;
        loop {
            self.check_cancelled()?;
            let addr = self.settings.addresses[attempt % self.settings.addresses.len()];
            attempt += 1;
            self.status = format!("connecting to {} ({addr})", self.settings.pool);
            self.publish(true);
            let delay = match Connection::open(addr, self.settings.connect_timeout) {
                Err(e) => {
                    let delay = self.backoff.next_delay();
                    println!(
                        "pool {} ({addr}): {e}; retrying in {:.1} s",
                        self.settings.pool,
                        delay.as_secs_f64()
                    );
                    self.status = format!(
                        "pool {} unreachable ({e}); retrying in {:.0} s",
                        self.settings.pool,
                        delay.as_secs_f64().ceil()
                    );
                    delay
                }
                Ok(mut connection) => {
                    println!("connected to pool {} ({addr})", self.settings.pool);
                    let ended = self.session(&mut connection)?;
                    self.stats.connected = false;
                    match ended {
                        Ended::Dropped(reason) => {
                            let delay = self.backoff.next_delay();
                            println!(
                                "pool {}: {reason}; reconnecting in {:.1} s",
                                self.settings.pool,
                                delay.as_secs_f64()
                            );
                            self.status = format!(
                                "pool {} lost ({reason}); reconnecting in {:.0} s",
                                self.settings.pool,
                                delay.as_secs_f64().ceil()
                            );
                            delay
                        }
                        Ended::Reconnect(wait) => {
                            self.status = format!(
                                "pool {} asked to reconnect in {:.0} s",
                                self.settings.pool,
                                wait.as_secs_f64().ceil()
                            );
                            wait
                        }
                    }
                }
            };
            self.publish(true);
            self.wait(delay)?;
        }
    }

    /// One connection: subscribe, authorize, mine until it ends.
    fn session(&mut self, connection: &mut Connection) -> Result<Ended, JobError> {
        let mut client = Client::new(&self.settings.user, &self.settings.password);
        // A failed send ends the connection, but only after the lines already
        // received (share answers, a reconnect request) are handled.
        let mut broken: Option<String> = None;
        let send = |connection: &mut Connection, line: &str, broken: &mut Option<String>| {
            if broken.is_none()
                && let Err(e) = connection.send_line(line)
            {
                *broken = Some(e.to_string());
            }
        };
        send(connection, &client.subscribe(), &mut broken);
        send(connection, &client.authorize(), &mut broken);
        let opened = Instant::now();
        let mut heard = Instant::now();
        let mut current: Option<Current> = None;
        loop {
            self.check_cancelled()?;
            let mining = client.authorized() && current.is_some() && broken.is_none();
            let wait = if mining {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            };
            let lines = match connection.read_lines(wait) {
                Ok(lines) => lines,
                Err(e) => return Ok(Ended::Dropped(broken.unwrap_or_else(|| e.to_string()))),
            };
            if !lines.is_empty() {
                heard = Instant::now();
            }
            for line in lines {
                let handled = match client.handle(&line) {
                    Ok(handled) => handled,
                    Err(e) => return Ok(Ended::Dropped(format!("protocol error: {e}"))),
                };
                if let Some(reply) = handled.reply {
                    send(connection, &reply, &mut broken);
                }
                for event in handled.events {
                    if let Some(ended) = self.on_event(event, &mut current)? {
                        return Ok(ended);
                    }
                }
            }
            if let Some(e) = broken {
                return Ok(Ended::Dropped(e));
            }
            if !client.authorized() && opened.elapsed() > self.settings.answer_timeout {
                let secs = self.settings.answer_timeout.as_secs();
                return Ok(Ended::Dropped(format!(
                    "no answer to subscribe/authorize within {secs} s"
                )));
            }
            if heard.elapsed() > self.settings.silence_timeout {
                return Ok(Ended::Dropped(format!(
                    "the pool sent nothing for {} s",
                    self.settings.silence_timeout.as_secs()
                )));
            }
            if client.authorized()
                && let Some(work) = current.as_mut()
            {
                for share in self.search_once(work)? {
                    send(connection, &client.submit(&share), &mut broken);
                }
            }
            self.publish(false);
        }
    }

    /// Acts on one event; `Some` ends the connection.
    fn on_event(
        &mut self,
        event: Event,
        current: &mut Option<Current>,
    ) -> Result<Option<Ended>, JobError> {
        match event {
            Event::Subscribed => {}
            Event::Authorized => {
                println!(
                    "authorized as {} on pool {}",
                    self.settings.user, self.settings.pool
                );
                self.stats.connected = true;
                self.backoff.reset();
                self.status = format!("mining on {}", self.settings.pool);
                self.publish(true);
            }
            Event::Refused(reason) => {
                return Err(JobError::Failed(format!(
                    "pool {} refused worker {:?}: {reason}",
                    self.settings.pool, self.settings.user
                )));
            }
            Event::Work(work) => {
                // The newest job is always the best one to mine.
                self.stats.difficulty = work.difficulty;
                match Current::new(work, &self.algorithm.diff1()) {
                    Some(next) => *current = Some(next),
                    None => {
                        return Ok(Some(Ended::Dropped(
                            "the pool's difficulty gives no target".into(),
                        )));
                    }
                }
            }
            Event::Difficulty(d) => {
                self.stats.difficulty = d;
                if let Some(work) = current.as_mut()
                    && d > work.work.difficulty
                    && let Some(target) = Target::from_difficulty(&self.algorithm.diff1(), d)
                {
                    work.work.difficulty = d;
                    work.target = target;
                }
            }
            Event::ShareAnswered { accepted, reason } => {
                if accepted {
                    self.stats.accepted += 1;
                } else {
                    self.stats.rejected += 1;
                    if worth_logging(self.stats.rejected) {
                        let n = self.stats.rejected;
                        println!(
                            "share rejected by pool {} ({n} so far): {}",
                            self.settings.pool,
                            reason.unwrap_or_default()
                        );
                    }
                }
                self.publish(true);
            }
            Event::Reconnect { wait, elsewhere } => {
                match elsewhere {
                    Some(to) => println!(
                        "pool {} asks to reconnect to {to}: only the configured pool is reachable, reconnecting to it in {:.1} s",
                        self.settings.pool,
                        wait.as_secs_f64()
                    ),
                    None => println!(
                        "pool {} asks to reconnect in {:.1} s",
                        self.settings.pool,
                        wait.as_secs_f64()
                    ),
                }
                return Ok(Some(Ended::Reconnect(wait)));
            }
            Event::Message(text) => {
                self.pool_messages += 1;
                if worth_logging(self.pool_messages) {
                    println!("message from pool {}: {text}", self.settings.pool);
                }
            }
        }
        Ok(None)
    }

    /// One short GPU search of the current work; returns the shares found
    /// (each checked on the CPU first).
    fn search_once(&mut self, work: &mut Current) -> Result<Vec<Share>, JobError> {
        let (header, first, count) = work.next_range(self.sizer.nonces);
        let found = self
            .search
            .search(&header, &work.target, first, count)
            .map_err(gpu_error)?;
        self.sizer.update(count, found.elapsed);
        self.stats.hashes += u64::from(count);
        self.meter.add(u64::from(count));
        let mut shares = Vec::new();
        for nonce in found.nonces {
            let hash = self.algorithm.hash(&with_nonce(&header, nonce));
            if work.target.is_met_by(&hash) {
                shares.push(work.share(nonce));
            } else {
                self.bad_candidates += 1;
                if worth_logging(self.bad_candidates) {
                    eprintln!(
                        "GPU candidate nonce {nonce:08x} does not meet the target on the CPU ({} so far): not submitted",
                        self.bad_candidates
                    );
                }
            }
        }
        Ok(shares)
    }

    fn publish(&mut self, force: bool) {
        self.stats.hashrate = self.meter.rate();
        let s = &self.stats;
        let message = if s.connected {
            format!(
                "{} · {} accepted, {} rejected · diff {} · {}",
                format_rate(s.hashrate),
                s.accepted,
                s.rejected,
                s.difficulty,
                self.settings.pool
            )
        } else {
            self.status.clone()
        };
        self.reporter.report(&self.stats, &message, force);
    }

    fn check_cancelled(&self) -> Result<(), JobError> {
        self.job.check_cancelled()
    }

    /// Waits `delay` in short sleeps, reporting and watching for a cancel.
    fn wait(&mut self, delay: Duration) -> Result<(), JobError> {
        let until = Instant::now() + delay;
        loop {
            self.check_cancelled()?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            net::sleep(left.min(Duration::from_millis(200)));
            self.publish(false);
        }
    }
}

/// Whether the `n`-th occurrence of something is logged: the first 20,
/// then every 100th (the host caps a plugin's log, and a pool can be noisy).
fn worth_logging(n: u64) -> bool {
    n <= 20 || n.is_multiple_of(100)
}

/// A GPU error as the job's error: no GPU is `unsupported`, the rest `failed`.
pub fn gpu_error(e: GpuError) -> JobError {
    match e {
        GpuError::Unavailable(m) => JobError::Unsupported(format!("mining needs a GPU: {m}")),
        other => JobError::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 7);
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_millis((100u64 << i).min(1000));
            assert!(*d >= ceiling / 2 && *d <= ceiling, "delay {i}: {d:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn batches_aim_at_the_gpu_time() {
        let mut s = BatchSizer::new(Duration::from_millis(10));
        s.update(1 << 16, Duration::from_millis(40));
        assert_eq!(s.nonces, 1 << 15, "at most halved in one step");
        s.update(1 << 15, Duration::from_millis(5));
        assert_eq!(s.nonces, 1 << 16);
        s.update(1 << 16, Duration::ZERO);
        assert_eq!(s.nonces, 1 << 17);
        s.update(1, Duration::from_secs(1));
        assert_eq!(s.nonces, BatchSizer::MIN);
    }
}
