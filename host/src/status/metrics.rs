//! `/metrics`: the [`Snapshot`] as Prometheus metrics, encoded by
//! `prometheus-client` on each scrape (a collector over the snapshot, so
//! a job that ended leaves no stale progress series behind).
//!
//! Names are stable (documented in `docs/metrics.md`): units in the names,
//! `_total` on counters. Counters count since the worker started.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Snapshot;

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Which text format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (what Prometheus asks for first).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (for everyone else).
    Prometheus,
}

impl Format {
    /// OpenMetrics if the `Accept` header asks for it, else the classic format.
    pub fn negotiate(accept: Option<&str>) -> Self {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// The snapshot in `format`.
pub fn render(snapshot: Arc<Snapshot>, format: Format) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut text = String::new();
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, &registry)?,
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?
        }
    }
    Ok(text)
}

/// Encodes one snapshot.
#[derive(Debug)]
struct SnapshotCollector(Arc<Snapshot>);

type Labels = Vec<(&'static str, String)>;

/// One metric family: its samples, each with its labels.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: Vec<(Labels, M)>,
) -> fmt::Result {
    let Some(metric_type) = samples.first().map(|(_, m)| m.metric_type()) else {
        return Ok(());
    };
    let mut descriptor: MetricEncoder = encoder.encode_descriptor(name, help, None, metric_type)?;
    if let [(labels, metric)] = samples.as_slice()
        && labels.is_empty()
    {
        return metric.encode(descriptor);
    }
    for (labels, metric) in &samples {
        metric.encode(descriptor.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(value: f64) -> ConstGauge<f64> {
    ConstGauge::new(if value.is_finite() { value } else { 0.0 })
}

fn flag(on: bool) -> ConstGauge<f64> {
    gauge(if on { 1.0 } else { 0.0 })
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let e = &mut encoder;
        let worker = vec![
            ("worker_id", s.worker.id.clone()),
            ("name", s.worker.name.clone()),
            ("version", s.worker.version.clone()),
        ];
        family(
            e,
            "pictor_worker_info",
            "This worker: id, name and pictor-host version (always 1).",
            vec![(worker, flag(true))],
        )?;
        family(
            e,
            "pictor_worker_connected",
            "1 while the job source answers (the coordinator, or always for a local spool), else 0.",
            vec![(vec![], flag(s.connection.state == "connected"))],
        )?;
        family(
            e,
            "pictor_worker_revoked",
            "1 once the coordinator revoked this worker's credential (the worker stops), else 0.",
            vec![(vec![], flag(s.connection.state == "revoked"))],
        )?;
        family(
            e,
            "pictor_uptime_seconds",
            "Seconds since the worker started.",
            vec![(vec![], gauge(s.uptime_s))],
        )?;

        let slots = s
            .slots
            .iter()
            .map(|slot| {
                (
                    vec![("slot", slot.slot.to_string())],
                    flag(slot.health != "unhealthy"),
                )
            })
            .collect();
        family(
            e,
            "pictor_gpu_slot_healthy",
            "1 while a GPU slot takes GPU jobs, 0 once it is unhealthy (kernels that never ended).",
            slots,
        )?;
        family(
            e,
            "pictor_spool_bytes",
            "Bytes the spool's jobs and journal take on disk (the download cache not counted).",
            vec![(vec![], gauge(s.spool.bytes as f64))],
        )?;
        family(
            e,
            "pictor_spool_limit_bytes",
            "The spool's disk limit (limits.spool_mib), in bytes.",
            vec![(vec![], gauge(s.spool.limit_bytes as f64))],
        )?;
        family(
            e,
            "pictor_jobs_running",
            "Jobs running now.",
            vec![(vec![], gauge(s.jobs.len() as f64))],
        )?;
        let totals = s
            .jobs_total
            .iter()
            .map(|c| {
                (
                    vec![("kind", c.kind.clone()), ("outcome", c.outcome.clone())],
                    ConstCounter::new(c.count),
                )
            })
            .collect();
        family(
            e,
            "pictor_jobs",
            "Jobs finished since the worker started, by kind and outcome (succeeded, failed, cancelled).",
            totals,
        )?;
        let progress = s
            .jobs
            .iter()
            .map(|j| {
                (
                    vec![("job_id", j.id.clone()), ("kind", j.kind.clone())],
                    gauge(f64::from(j.fraction)),
                )
            })
            .collect();
        family(
            e,
            "pictor_job_progress_ratio",
            "Progress of each running job, 0 to 1.",
            progress,
        )?;
        family(
            e,
            "pictor_results_pending_report",
            "Results stored on disk and not yet acknowledged by the coordinator.",
            vec![(vec![], gauge(s.results_pending_report as f64))],
        )?;
        family(
            e,
            "pictor_earnings",
            "Sum of the configured prices of jobs that succeeded since the worker started.",
            vec![(
                vec![],
                ConstCounter::new(if s.earnings.is_finite() {
                    s.earnings
                } else {
                    0.0
                }),
            )],
        )?;

        let m = &s.mining;
        family(
            e,
            "pictor_mining_active",
            "1 while a miner runs (on any GPU), else 0.",
            vec![(vec![], flag(m.miners > 0))],
        )?;
        family(
            e,
            "pictor_mining_connected",
            "1 while a miner is connected to its pool, else 0.",
            vec![(vec![], flag(m.connected))],
        )?;
        family(
            e,
            "pictor_mining_hashrate_hashes_per_second",
            "Hashes per second now, all GPUs together.",
            vec![(vec![], gauge(m.hashrate_hps))],
        )?;
        family(
            e,
            "pictor_mining_shares",
            "Shares the pool answered since the worker started, by result (accepted, rejected).",
            vec![
                (
                    vec![("result", "accepted".to_string())],
                    ConstCounter::new(m.accepted),
                ),
                (
                    vec![("result", "rejected".to_string())],
                    ConstCounter::new(m.rejected),
                ),
            ],
        )?;

        let info = s
            .gpus
            .iter()
            .map(|g| {
                (
                    vec![
                        ("gpu", g.index.to_string()),
                        ("name", g.name.clone()),
                        ("backend", g.backend.clone()),
                        ("device_type", g.device_type.clone()),
                    ],
                    flag(true),
                )
            })
            .collect();
        family(
            e,
            "pictor_gpu_info",
            "Each GPU adapter the worker found (always 1).",
            info,
        )?;
        let telemetry =
            |read: &dyn Fn(&super::GpuTelemetry) -> Option<f64>| -> Vec<(Labels, ConstGauge<f64>)> {
                s.gpus
                    .iter()
                    .filter_map(|g| {
                        let value = g.telemetry.as_ref().and_then(read)?;
                        Some((
                            vec![("gpu", g.index.to_string()), ("name", g.name.clone())],
                            gauge(value),
                        ))
                    })
                    .collect()
            };
        family(
            e,
            "pictor_gpu_utilization_ratio",
            "GPU utilization, 0 to 1 (NVML).",
            telemetry(&|t| t.utilization_percent.map(|p| f64::from(p) / 100.0)),
        )?;
        family(
            e,
            "pictor_gpu_memory_used_bytes",
            "GPU memory in use (NVML).",
            telemetry(&|t| t.memory_used_bytes.map(|b| b as f64)),
        )?;
        family(
            e,
            "pictor_gpu_memory_total_bytes",
            "GPU memory in all (NVML).",
            telemetry(&|t| t.memory_total_bytes.map(|b| b as f64)),
        )?;
        family(
            e,
            "pictor_gpu_temperature_celsius",
            "GPU core temperature (NVML).",
            telemetry(&|t| t.temperature_c.map(f64::from)),
        )?;
        family(
            e,
            "pictor_gpu_power_watts",
            "GPU power draw (NVML).",
            telemetry(&|t| t.power_w),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mining::MiningSummary;
    use crate::status::tests::{finished, h100, hub};

    fn sample(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn metrics_carry_the_snapshot_under_stable_names() {
        let (hub, _running, stats) = hub(h100());
        hub.record(&finished("a", "render", None));
        hub.record(&finished("b", "render", None));
        hub.record(&finished("c", "hello", Some("trap")));
        stats.send_replace(Some(MiningSummary {
            hashrate_hps: 1500.0,
            accepted: 3,
            rejected: 1,
            miners: 1,
            connected: true,
            ..MiningSummary::default()
        }));
        let snapshot = Arc::new(hub.snapshot());
        let text = render(Arc::clone(&snapshot), Format::Prometheus).unwrap();
        assert!(text.contains("# TYPE pictor_jobs_total counter"), "{text}");
        assert_eq!(
            sample(
                &text,
                r#"pictor_jobs_total{kind="render",outcome="succeeded"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"pictor_jobs_total{kind="hello",outcome="failed"}"#),
            Some(1.0)
        );
        assert_eq!(sample(&text, "pictor_earnings_total"), Some(0.04));
        assert!(
            sample(
                &text,
                r#"pictor_worker_info{worker_id="wkr-7f3a9c",name="studio <rig> 1",version=""#
            )
            .is_some(),
            "{text}"
        );
        assert_eq!(sample(&text, "pictor_worker_connected"), Some(1.0));
        assert_eq!(sample(&text, "pictor_mining_active"), Some(1.0));
        assert_eq!(
            sample(&text, "pictor_mining_hashrate_hashes_per_second"),
            Some(1500.0)
        );
        assert_eq!(
            sample(&text, r#"pictor_mining_shares_total{result="accepted"}"#),
            Some(3.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"pictor_gpu_utilization_ratio{gpu="0",name="NVIDIA H100 PCIe"}"#
            ),
            Some(0.87)
        );
        assert_eq!(
            sample(&text, r#"pictor_gpu_temperature_celsius{gpu="0""#),
            Some(61.0)
        );
        assert_eq!(
            sample(&text, r#"pictor_gpu_power_watts{gpu="0""#),
            Some(301.5)
        );
        assert!(
            !text.contains(r#"pictor_gpu_temperature_celsius{gpu="1""#),
            "no NVML reading for llvmpipe: {text}"
        );
        assert_eq!(text.matches("pictor_gpu_info{").count(), 2);
        assert!(!text.contains("pictor_job_progress_ratio"), "no job runs");

        let open = render(snapshot, Format::OpenMetrics).unwrap();
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert_eq!(
            sample(
                &open,
                r#"pictor_jobs_total{kind="render",outcome="succeeded"}"#
            ),
            Some(2.0),
            "{open}"
        );
    }

    #[test]
    fn prometheus_asks_for_openmetrics_and_gets_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(None).content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }
}
