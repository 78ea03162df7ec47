//! `GET /`: the [`Snapshot`] as one self-contained HTML page (maud,
//! escaped; inline CSS; no script, no external asset; refreshes itself
//! every 2 s).
//!
//! Element contract (browser tests and owners' scripts rely on it):
//! `#worker-id`, `#worker-name`, `#connection` (text starting with
//! `Connected`, `Connecting`, `Offline`, `Refused` or `Revoked`),
//! `table#gpus` with one `tr.gpu` per adapter, `#current-jobs` with one
//! `.job` per running job (a `progress` element, `.percent`, `.message`,
//! `.eta`), `#mining` (`off (…)`, `waiting (…)` or `mining …`),
//! `table#recent-jobs` with one `tr[data-job-id]` per finished job, and
//! `#earnings`.

use maud::{DOCTYPE, Markup, html};

use super::{AdapterView, JobView, NvmlView, Snapshot, format_amount};

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px}
header h1{font-size:20px;margin:0}
header .id{font:13px ui-monospace,monospace;color:#b8c0d0}
main{max-width:1100px;margin:0 auto;padding:16px 24px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 2px #0002;padding:12px 16px;margin:12px 0}
h2{font-size:15px;margin:0 0 8px;color:#4a5468;text-transform:uppercase;letter-spacing:.04em}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{font-weight:600;color:#4a5468;font-size:13px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:13px ui-monospace,monospace}
.state{font-weight:600}
.connected{color:#137333}.connecting{color:#8a6d00}.offline,.refused,.revoked{color:#b3261e}
.muted{color:#6b7385}
.job{display:grid;grid-template-columns:minmax(140px,1fr) 80px 220px 50px 2fr 90px;gap:8px;align-items:center;padding:4px 0}
progress{width:100%}
.succeeded{color:#137333}.failed{color:#b3261e}.cancelled{color:#8a6d00}
footer{color:#6b7385;font-size:13px;text-align:center;padding:8px}
";

/// The whole page.
pub fn render(s: &Snapshot) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="2";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Pictor worker " (s.worker.name) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "Pictor worker " span #worker-name { (s.worker.name) } }
                    div .id { "Worker ID " code #worker-id { (s.worker.id) } " · pictor-host " (s.worker.version) }
                }
                main {
                    section {
                        h2 { "Connection" }
                        p #connection .state .(s.connection.state) { (s.connection.text) }
                        @if s.spool.limit_bytes > 0 {
                            p #spool .full[s.spool.full] {
                                "Spool: " (format!("{:.1}", s.spool.bytes as f64 / f64::from(1u32 << 30))) " of "
                                (format!("{:.1}", s.spool.limit_bytes as f64 / f64::from(1u32 << 30))) " GiB"
                                @if s.spool.full { " — full: no new job is claimed until results are reported or done/ is cleared" }
                            }
                        }
                        @if s.results_pending_report > 0 {
                            p #pending { (s.results_pending_report) " result(s) waiting to be reported (kept on disk until the coordinator acknowledges them)" }
                        }
                    }
                    section {
                        h2 { "GPUs" }
                        (gpus(s))
                        @for slot in s.slots.iter().filter(|slot| slot.health != "healthy") {
                            p .gpu-health .(slot.health) data-slot=(slot.slot) {
                                "GPU slot " (slot.slot) ": " (slot.health)
                                @if let Some(detail) = &slot.detail { " — " (detail) }
                            }
                        }
                    }
                    section {
                        h2 { "Current jobs" }
                        div #current-jobs {
                            @if s.jobs.is_empty() {
                                p .muted .empty { "No job running." }
                            }
                            @for job in &s.jobs { (running(job)) }
                        }
                    }
                    section {
                        h2 { "Mining" }
                        p #mining .(s.mining.state) { (s.mining.text) }
                    }
                    section {
                        h2 { "Recent jobs" }
                        p { "Earned since start: " strong #earnings { (format_amount(s.earnings)) } }
                        (recent(s))
                    }
                }
                footer {
                    a href="/status.json" { "status.json" } " · " a href="/metrics" { "metrics" } " · refreshed every 2 s"
                }
            }
        }
    }
}

fn gpus(s: &Snapshot) -> Markup {
    html! {
        table #gpus {
            thead { tr {
                th { "#" } th { "GPU" } th { "Backend" }
                th .num { "Utilization" } th .num { "Memory" } th .num { "Temperature" } th .num { "Power" }
            } }
            tbody {
                @if s.gpus.is_empty() {
                    tr .none { td .muted colspan="7" { "No GPU adapter found (GPU jobs fail with `no GPU`)." } }
                }
                @for gpu in &s.gpus { (gpu_row(gpu, &s.nvml)) }
            }
        }
    }
}

fn gpu_row(g: &AdapterView, nvml: &NvmlView) -> Markup {
    let gib = |b: u64| format!("{:.1}", b as f64 / f64::from(1u32 << 30));
    html! {
        tr .gpu data-gpu=(g.index) {
            td { (g.index) }
            td .name { (g.name) }
            td .backend { (g.backend) " · " (g.device_type) }
            @match &g.telemetry {
                Some(t) => {
                    td .num .utilization { @match t.utilization_percent { Some(p) => { (p) " %" }, None => "–" } }
                    td .num .memory {
                        @match (t.memory_used_bytes, t.memory_total_bytes) {
                            (Some(used), Some(total)) => { (gib(used)) " / " (gib(total)) " GiB" },
                            _ => "–",
                        }
                    }
                    td .num .temperature { @match t.temperature_c { Some(c) => { (c) " °C" }, None => "–" } }
                    td .num .power { @match t.power_w { Some(w) => { (format!("{w:.0}")) " W" }, None => "–" } }
                }
                None => {
                    td .muted .telemetry colspan="4" {
                        @if nvml.available { "no NVML reading (not an NVIDIA GPU)" } @else { "no NVML (" (nvml.detail) ")" }
                    }
                }
            }
        }
    }
}

fn running(job: &JobView) -> Markup {
    html! {
        div .job data-job-id=(job.id) {
            code .job-id { (job.id) }
            span .kind { (job.kind) }
            progress max="1" value=(job.fraction) { (format!("{:.0}%", job.fraction * 100.0)) }
            span .percent { (format!("{:.0}%", job.fraction * 100.0)) }
            span .message { (job.message) }
            span .eta { @match job.eta_s { Some(eta) => { "ETA " (duration(eta)) }, None => "" } }
        }
    }
}

fn recent(s: &Snapshot) -> Markup {
    html! {
        table #recent-jobs {
            thead { tr {
                th { "Job" } th { "Kind" } th { "Outcome" } th .num { "Duration" } th .num { "Reward" }
            } }
            tbody {
                @if s.recent_jobs.is_empty() {
                    tr .none { td .muted colspan="5" { "No finished job yet." } }
                }
                @for row in &s.recent_jobs {
                    tr data-job-id=(row.id) {
                        td { code { (row.id) } }
                        td .kind { (row.kind) }
                        td .outcome .(row.outcome.split(':').next().unwrap_or_default()) title=[row.reason.as_deref()] { (row.outcome) }
                        td .num .duration { @match row.duration_s { Some(d) => (duration(d)), None => "–" } }
                        td .num .reward { (format_amount(row.reward)) }
                    }
                }
            }
        }
    }
}

/// `75.3` → `1 min 15 s`; `2.41` → `2.4 s`.
fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "–".into();
    }
    if seconds < 10.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::activity::RunningJob;
    use crate::status::tests::{finished, h100, hub};
    use pictor_runtime::capabilities::progress::Progress;

    #[test]
    fn the_page_has_every_element_of_its_contract_escaped() {
        let (hub, running, _) = hub(h100());
        hub.record(&finished("job-ok", "render", None));
        hub.record(&finished("job-bad", "render", Some("timed-out")));
        running.send_replace(BTreeMap::from([(
            "job-now".to_string(),
            RunningJob {
                kind: "hello".into(),
                gpu: 1,
                since: Instant::now() - Duration::from_secs(4),
                progress: Progress {
                    fraction: 0.5,
                    message: "half <done>".into(),
                },
            },
        )]));
        let page = render(&hub.snapshot()).into_string();
        for needle in [
            r#"<meta http-equiv="refresh" content="2">"#,
            r#"<code id="worker-id">wkr-7f3a9c</code>"#,
            r#"<span id="worker-name">studio &lt;rig&gt; 1</span>"#,
            r#"<p class="state connected" id="connection">Connected (local spool /var/lib/pictor/spool)</p>"#,
            r#"<table id="gpus">"#,
            r#"<tr class="gpu" data-gpu="0">"#,
            r#"<td class="num utilization">87 %</td>"#,
            r#"<td class="num memory">20.0 / 80.0 GiB</td>"#,
            r#"no NVML reading (not an NVIDIA GPU)"#,
            r#"<div class="job" data-job-id="job-now">"#,
            r#"<progress max="1" value="0.5">"#,
            r#"<span class="message">half &lt;done&gt;</span>"#,
            r#"<span class="eta">ETA 4.0 s</span>"#,
            r#"<p class="waiting" id="mining">waiting (starts after 30 s idle)</p>"#,
            r#"<table id="recent-jobs">"#,
            r#"<tr data-job-id="job-bad">"#,
            r#">failed: timed-out</td>"#,
            r#"<strong id="earnings">0.02</strong>"#,
        ] {
            assert!(page.contains(needle), "{needle} not in:\n{page}");
        }
        assert_eq!(page.matches(r#"<tr class="gpu""#).count(), 2);
        assert_eq!(
            page.matches("<tr data-job-id=").count(),
            3,
            "two new jobs and one from before the restart"
        );
        assert!(!page.contains("<script"), "no script");
        assert!(
            !page.contains("src=\"http") && !page.contains("href=\"http"),
            "no external asset"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(2.41), "2.4 s");
        assert_eq!(duration(75.3), "1 min 15 s");
        assert_eq!(duration(7300.0), "2 h 1 min");
        assert_eq!(duration(f64::NAN), "–");
    }
}
