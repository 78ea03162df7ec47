//! The owner's live status line on a terminal: the same channels the status
//! page reads, redrawn in place on stderr every second.

use std::io::Write;
use std::time::Duration;

use tokio::sync::watch;

use crate::coordinator::{Connection, NetStatus};
use crate::mining::format_hashrate;
use crate::worker::WorkerWatch;

/// Clears the line (when the node stops).
pub fn clear() {
    eprint!("\r\x1b[2K");
    let _ = std::io::stderr().flush();
}

/// One live status line on a terminal: job, kind, progress bar, ETA and
/// message; or the miner's hashrate, shares and pool; or idle; then, with
/// a coordinator, the connection, the download in progress and results
/// waiting to be reported. Redrawn every second.
pub async fn show(worker: WorkerWatch, net: Option<watch::Receiver<NetStatus>>) {
    let (mut rx, mining) = (worker.activity, worker.mining);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let line = match rx.borrow_and_update().clone() {
            None => "idle".to_string(),
            Some(a) if a.label == "mining" => match mining.borrow().as_ref() {
                Some(m) if m.connected => format!(
                    "mining {} · {} · {} accepted, {} rejected · pool {}",
                    m.coin,
                    format_hashrate(m.hashrate_hps),
                    m.accepted,
                    m.rejected,
                    m.pool
                ),
                // Not connected: the miner's own words (connecting, retrying in …).
                _ => format!("mining · {}", a.progress.message),
            },
            Some(a) => {
                let f = a.progress.fraction;
                let filled = (f * 20.0).round() as usize;
                let elapsed = a.since.elapsed().as_secs_f64();
                let eta = if f > 0.01 && f < 1.0 {
                    format!(
                        " · ETA {:.0} s",
                        elapsed * f64::from(1.0 - f) / f64::from(f)
                    )
                } else {
                    String::new()
                };
                format!(
                    "{} [{}{}] {:>3.0}%{eta} · {}",
                    a.label,
                    "#".repeat(filled),
                    "-".repeat(20 - filled),
                    f * 100.0,
                    a.progress.message
                )
            }
        };
        let net = net
            .as_ref()
            .map(|n| network_status(&n.borrow()))
            .unwrap_or_default();
        eprint!("\r\x1b[2K{line}{net}");
        let _ = std::io::stderr().flush();
    }
}

/// The network part of the status line.
fn network_status(status: &NetStatus) -> String {
    let mut line = match &status.connection {
        // The reason is in the log; the line stays short.
        Connection::Offline(_) => {
            " · coordinator: Offline (retrying; results are kept)".to_string()
        }
        other => format!(" · coordinator: {}", other.describe()),
    };
    if let Some(d) = &status.download {
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        let f = if d.bytes_total > 0 {
            d.bytes_done as f64 / d.bytes_total as f64
        } else {
            0.0
        };
        let filled = (f * 10.0).round() as usize;
        line.push_str(&format!(
            " · ↓ [{}{}] {:.1}/{:.1} MiB",
            "#".repeat(filled.min(10)),
            "-".repeat(10 - filled.min(10)),
            mib(d.bytes_done),
            mib(d.bytes_total)
        ));
    }
    if status.unreported > 0 {
        line.push_str(&format!(" · {} to report", status.unreported));
    }
    line
}
