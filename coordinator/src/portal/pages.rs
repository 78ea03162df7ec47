//! The portal's pages, rendered on the server with maud (every value
//! escaped), one inline stylesheet, no scripts and no outside assets.
//!
//! Element ids and classes are a contract with the browser tests:
//! `table #workers` with `tr[data-worker-id]` rows and cells `td.name`,
//! `td.status`, `td.last-heartbeat`, `td.gpus`, `td.prices`, `td.jobs-done`,
//! `td.earnings`, `td.activity`; `table #jobs` with `tr[data-job-id]` rows
//! and cells `td.kind`, `td.state`, `td.worker`, `td.timings`, `td.preview`
//! (`img.preview`); `a #new-worker`; `form #new-worker` with `button #create`
//! and `p.error`; `#worker-id`, `pre #worker-json`, `a #download`.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use pictor_protocol::api::{GpuDescription, WorkerSummary};
use pictor_protocol::mining::SUPPORTED_COINS;

use super::board::JobRow;
use super::forms::WorkerForm;

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#1d2430;color:#fff;padding:10px 24px;display:flex;align-items:center;gap:24px}
header a{color:#cfe0ff;text-decoration:none}header .brand{font-weight:600;font-size:16px;color:#fff}
header form{margin-left:auto}
main{padding:16px 24px;max-width:1400px}
h1{font-size:20px;margin:8px 0 12px}h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{font-weight:600;background:#eef0f4;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.status.online{color:#137333;font-weight:600}td.status.offline{color:#8a8f98}
.muted{color:#8a8f98}.small{font-size:12px}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace}
img.preview{max-width:160px;max-height:120px;border:1px solid #d8dbe0;background:#fff;margin:2px}
form.inline{display:inline}button{cursor:pointer;padding:4px 10px;border-radius:4px;border:1px solid #aab;background:#fff}
button.danger{border-color:#c5221f;color:#c5221f}button.primary{background:#1a73e8;border-color:#1a73e8;color:#fff}
.card{background:#fff;padding:16px 20px;box-shadow:0 1px 2px rgba(0,0,0,.08);max-width:720px}
label{display:block;margin:10px 0 2px;font-weight:600}label span{font-weight:400;color:#8a8f98}
input,select{width:100%;box-sizing:border-box;padding:6px 8px;border:1px solid #c4c8d0;border-radius:4px;font:inherit}
fieldset{border:1px solid #e0e3e8;margin:14px 0;padding:4px 14px 12px}
p.error{background:#fce8e6;color:#a50e0e;padding:8px 12px;border-radius:4px}
p.note{background:#fef7e0;padding:8px 12px;border-radius:4px}
pre#worker-json{background:#1d2430;color:#e8eaed;padding:12px;overflow:auto;border-radius:4px}
.state-succeeded{color:#137333}.state-failed,.state-disputed{color:#c5221f}.state-running{color:#1a73e8}
";

/// A page: head with the stylesheet, header with navigation (when logged in).
fn layout(title: &str, refresh: bool, logged_in: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if refresh {
                    meta http-equiv="refresh" content="3";
                }
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Pictor coordinator" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    span.brand { "Pictor coordinator" }
                    @if logged_in {
                        a href="/portal" { "Dashboard" }
                        a href="/portal/workers/new" { "New worker" }
                        form.inline method="post" action="/portal/logout" {
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The login form, with an error after a wrong token.
pub fn login(error: Option<&str>) -> Markup {
    layout(
        "Log in",
        false,
        false,
        html! {
            div.card {
                h1 { "Log in" }
                p { "Paste the creator token: the file " code { "creator.token" } " in the coordinator's data folder." }
                @if let Some(error) = error {
                    p.error { (error) }
                }
                form #login method="post" action="/portal/login" {
                    label for="token" { "Creator token" }
                    input #token name="token" type="password" autocomplete="current-password" required autofocus;
                    p { button.primary #login-submit type="submit" { "Log in" } }
                }
            }
        },
    )
}

/// The dashboard: workers and jobs, refreshed every 3 seconds.
pub fn dashboard(workers: &[WorkerSummary], jobs: &[JobRow], now_ms: u64) -> Markup {
    layout(
        "Dashboard",
        true,
        true,
        html! {
            h1 { "Workers" }
            p { a #new-worker href="/portal/workers/new" { "+ New worker" } }
            table #workers {
                thead { tr {
                    th { "Name" } th { "ID" } th { "Status" } th { "Last heartbeat" } th { "GPUs" }
                    th { "Prices" } th { "Jobs done" } th { "Earnings" } th { "Activity" } th {}
                } }
                tbody {
                    @for w in workers {
                        tr data-worker-id=(w.id) {
                            td.name { a href={ "/portal/workers/" (w.id) } { (w.name) } }
                            td.id { code { (w.id) } }
                            @let status = if w.online { "online" } else { "offline" };
                            td class={ "status " (status) } { (status) }
                            td.last-heartbeat { (ago(w.last_heartbeat_ms, now_ms)) }
                            td.gpus { (gpus(&w.gpus)) }
                            td.prices { (prices(&w.prices)) }
                            td.jobs-done { (w.jobs_completed) }
                            td.earnings { (amount(w.earnings)) }
                            td.activity { (activity(w)) }
                            td.actions { (revoke_button(w)) }
                        }
                    }
                    @if workers.is_empty() {
                        tr { td.muted colspan="10" { "No workers yet: create one, then run " code { "pictor-host run --config worker.json" } " with its file." } }
                    }
                }
            }
            h2 { "Jobs" span.muted.small { " (newest first; times in UTC)" } }
            table #jobs {
                thead { tr {
                    th { "Job" } th { "Kind" } th { "State" } th { "Worker" } th { "Timings" } th { "Preview" }
                } }
                tbody {
                    @for job in jobs {
                        tr data-job-id=(job.id) {
                            td.job-id { code { (job.id) } }
                            td.kind { (job.kind) }
                            @let state = job.state.as_str();
                            td class={ "state state-" (state) } title=[job.error.as_deref()] { (state) }
                            td.worker { (job.workers.join(", ")) }
                            td.timings { (timings(job, now_ms)) }
                            td.preview {
                                @for p in &job.previews {
                                    img.preview src={ "/portal/blobs/" (p.sha256) } alt=(p.path) title=(p.path) loading="lazy";
                                }
                                @if job.more_previews > 0 {
                                    span.muted.small { " +" (job.more_previews) " more" }
                                }
                            }
                        }
                    }
                    @if jobs.is_empty() {
                        tr { td.muted colspan="6" { "No jobs yet: submit one with " code { "pictor-coordinator submit" } "." } }
                    }
                }
            }
        },
    )
}

fn revoke_button(w: &WorkerSummary) -> Markup {
    html! {
        @if w.revoked {
            span.muted { "revoked" }
        } @else if w.issued {
            form.inline.revoke method="post" action={ "/portal/workers/" (w.id) "/revoke" } {
                button.danger type="submit" title="Its host is refused from its next request" { "Revoke" }
            }
        } @else {
            span.muted.small title="Registered with the farm-wide worker token" { "farm token" }
        }
    }
}

/// The new-worker form, filled with `form`, with an error after a refusal.
pub fn new_worker(form: &WorkerForm, error: Option<&str>, mining_served: bool) -> Markup {
    let coin = if form.coin.is_empty() {
        SUPPORTED_COINS.first().map(|(c, _)| *c).unwrap_or("btc")
    } else {
        form.coin.as_str()
    };
    layout(
        "New worker",
        false,
        true,
        html! {
            div.card {
                h1 { "New worker" }
                p { "The worker gets its own id and credential in a " code { "worker.json" } " that its owner imports with "
                    code { "pictor-host run --config worker.json" } "." }
                @if let Some(error) = error {
                    p.error { (error) }
                }
                form #new-worker method="post" action="/portal/workers" {
                    label for="name" { "Name " span { "(1-64 characters)" } }
                    input #name name="name" value=(form.name) required maxlength="64";
                    label for="wallet" { "Reward wallet " span { "(where the network pays this worker)" } }
                    input #wallet name="wallet" value=(form.wallet) required;
                    fieldset {
                        legend { "Mining while idle " span.muted { "(optional)" } }
                        @if !mining_served {
                            p.note.small { "This coordinator serves no miner plugin (start it with "
                                code { "serve --miner-plugin PATH" } "), so the file will carry these settings with mining off." }
                        }
                        label for="pool" { "Pool " span { "(stratum+tcp://host:port; blank: no mining)" } }
                        input #pool name="pool" value=(form.pool) placeholder="stratum+tcp://pool.example:3333";
                        label for="coin" { "Coin" }
                        select #coin name="coin" {
                            @for (c, algorithm) in SUPPORTED_COINS {
                                option value=(c) selected[*c == coin] { (c) " (" (algorithm) ")" }
                            }
                        }
                        label for="mining_wallet" { "Payout address " span { "(blank: the reward wallet)" } }
                        input #mining_wallet name="mining_wallet" value=(form.mining_wallet);
                    }
                    fieldset {
                        legend { "Prices per job " span.muted { "(optional)" } }
                        label for="price_render" { "render" }
                        input #price_render name="price_render" value=(form.price_render) inputmode="decimal";
                        label for="price_upscale" { "upscale" }
                        input #price_upscale name="price_upscale" value=(form.price_upscale) inputmode="decimal";
                        label for="price_train" { "train" }
                        input #price_train name="price_train" value=(form.price_train) inputmode="decimal";
                    }
                    p { button.primary #create type="submit" { "Create worker" } }
                }
            }
        },
    )
}

/// The page after a worker was issued: its id and `worker.json`, shown once.
pub fn issued(worker_id: &str, config_json: &str, data_url: &str, mining_off: bool) -> Markup {
    layout(
        "Worker created",
        false,
        true,
        html! {
            div.card {
                h1 { "Worker " span #worker-id { (worker_id) } " created" }
                p.note #shown-once { strong { "This file is shown once; keep it." }
                    " It holds the worker's credential, which the coordinator does not keep. Lost it? Revoke this worker and create another." }
                p { a #download download="worker.json" href=(data_url) { "Download worker.json" } }
                p { "On the worker machine: " code { "pictor-host run --config worker.json" } }
                @if mining_off {
                    p.note.small { "Mining is off in this file: this coordinator serves no miner plugin (start it with "
                        code { "serve --miner-plugin PATH" } ")." }
                }
                pre #worker-json { (config_json) }
                p { a href="/portal" { "Back to the dashboard" } }
            }
        },
    )
}

/// One worker's details.
pub fn worker(w: &WorkerSummary, now_ms: u64) -> Markup {
    layout(
        &w.name,
        true,
        true,
        html! {
            h1 { (w.name) " " code.small { (w.id) } }
            table #worker data-worker-id=(w.id) {
                tbody {
                    tr { th { "Status" } td.status { (if w.online { "online" } else { "offline" }) @if w.revoked { " (revoked)" } } }
                    tr { th { "Credential" } td { (if w.issued { "issued here" } else { "farm-wide worker token" }) } }
                    tr { th { "Reward wallet" } td { code { (w.wallet.as_deref().unwrap_or("—")) } } }
                    tr { th { "Mining settings" } td {
                        @match &w.mining_settings {
                            Some(m) => { (m.coin) " on " code { (m.pool) } " → " code { (m.wallet.as_deref().unwrap_or("")) } }
                            None => { "—" }
                        }
                    } }
                    tr { th { "Last heartbeat" } td.last-heartbeat { (ago(w.last_heartbeat_ms, now_ms)) } }
                    tr { th { "Last request" } td { (ago(w.last_seen_ms, now_ms)) } }
                    tr { th { "Activity" } td.activity { (activity(w)) } }
                    tr { th { "Host" } td { (w.host_version.as_deref().unwrap_or("—")) } }
                    tr { th { "GPUs" } td.gpus { (gpus(&w.gpus)) } }
                    @if !w.gpu_health.is_empty() {
                        tr { th { "GPU health" } td.gpu-health {
                            @for g in &w.gpu_health {
                                div { "slot " (g.slot) ": " (g.state) " " span.muted { (g.detail) } }
                            }
                        } }
                    }
                    tr { th { "Prices" } td.prices { (prices(&w.prices)) } }
                    tr { th { "Jobs done" } td.jobs-done { (w.jobs_completed) } }
                    tr { th { "Earnings" } td.earnings { (amount(w.earnings)) } }
                    tr { th { "Leases held" } td.leases {
                        @for l in &w.leases {
                            div { code { (l.lease_id) } " · " (l.kind) " · " (percent(l.fraction)) " " span.muted { (l.message) } }
                        }
                        @if w.leases.is_empty() { "—" }
                    } }
                }
            }
            p { (revoke_button(w)) }
        },
    )
}

/// A refusal shown as a page (bad form, cross-site post, missing worker).
pub fn problem(title: &str, message: &str) -> Markup {
    layout(
        title,
        false,
        true,
        html! {
            div.card {
                h1 { (title) }
                p.error { (message) }
                p { a href="/portal" { "Back to the dashboard" } }
            }
        },
    )
}

// ---------------------------------------------------------------- formatting

/// "4 s ago", "3 min ago", "2 h ago", "5 d ago", or "never".
pub fn ago(at_ms: Option<u64>, now_ms: u64) -> String {
    let Some(at) = at_ms else {
        return "never".into();
    };
    let s = now_ms.saturating_sub(at) / 1000;
    match s {
        0..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        7200..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86400),
    }
}

/// A hashrate with its unit: "6.41 MH/s".
pub fn hashrate(per_s: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"];
    let mut value = if per_s.is_finite() {
        per_s.max(0.0)
    } else {
        0.0
    };
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}

/// A price or sum without trailing zeros: "0.15", "2", "0.0001".
pub fn amount(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.to_string()
    }
}

fn percent(fraction: f32) -> String {
    format!("{:.0}%", f64::from(fraction.clamp(0.0, 1.0)) * 100.0)
}

/// What a worker does now: `job <id> 40%`, `mining btc · 6.41 MH/s · 3
/// accepted`, `idle` — or "—" while offline.
pub fn activity(w: &WorkerSummary) -> String {
    if !w.online {
        return "—".into();
    }
    if !w.leases.is_empty() {
        return w
            .leases
            .iter()
            .map(|l| format!("job {} {}", l.job_id, percent(l.fraction)))
            .collect::<Vec<_>>()
            .join(", ");
    }
    match (w.activity.as_deref(), &w.mining) {
        (Some("mining"), Some(m)) => format!(
            "mining {} · {} · {} accepted",
            m.coin,
            hashrate(m.hashrate),
            m.accepted
        ),
        (Some(activity), _) => activity.to_string(),
        (None, _) => "idle".into(),
    }
}

fn gpus(list: &[GpuDescription]) -> String {
    if list.is_empty() {
        return "—".into();
    }
    list.iter()
        .map(|g| match g.memory_mib {
            Some(mib) => format!("{} ({} GiB)", g.name, mib / 1024),
            None => g.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn prices(map: &std::collections::BTreeMap<String, f64>) -> String {
    if map.is_empty() {
        return "—".into();
    }
    map.iter()
        .map(|(kind, price)| format!("{kind} {}", amount(*price)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// UTC time of day, `HH:MM:SS`.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

fn seconds(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms / 1000) % 60)
    }
}

fn timings(job: &JobRow, now_ms: u64) -> Markup {
    html! {
        span.submitted { "submitted " (clock(job.submitted_ms)) }
        @if let Some(started) = job.started_ms {
            " · " span.started { "started " (clock(started)) }
            @match job.finished_ms {
                Some(finished) => {
                    " · " span.finished { "finished " (clock(finished)) }
                    " · " span.duration { (seconds(finished.saturating_sub(started))) }
                }
                None => {
                    " · " span.duration { "running " (seconds(now_ms.saturating_sub(started))) }
                    @if let Some(f) = job.fraction { " · " span.progress { (percent(f)) } }
                }
            }
        } @else if let Some(finished) = job.finished_ms {
            " · " span.finished { "finished " (clock(finished)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(hashrate(6_410_000.0), "6.41 MH/s");
        assert_eq!(hashrate(12.0), "12.00 H/s");
        assert_eq!(amount(0.15), "0.15");
        assert_eq!(amount(2.0), "2");
        assert_eq!(amount(0.0), "0");
        assert_eq!(ago(Some(1_000), 5_000), "4 s ago");
        assert_eq!(ago(None, 5_000), "never");
        assert_eq!(clock(3_723_000), "01:02:03");
    }

    #[test]
    fn values_are_escaped() {
        let page = login(Some("<script>alert(1)</script>")).into_string();
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;"));
    }
}
