//! `pictor-host gpu list`: the GPU adapters jobs can run on, and NVML data
//! where an NVIDIA driver is present.

use std::process::ExitCode;

use clap::Subcommand;
use pictor_host::telemetry::nvml::{self, NvmlStatus};
use pictor_runtime::capabilities::gpu::device;

/// GPU subcommands.
#[derive(Subcommand)]
pub enum GpuCommand {
    /// List wgpu adapters (index, name, backend, type, limits) and NVML data.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl GpuCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let GpuCommand::List { json } = self;
        let adapters = device::adapters(&device::instance());
        let nvml = nvml::sample();
        if json {
            let list: Vec<serde_json::Value> = adapters
                .iter()
                .enumerate()
                .map(|(index, a)| {
                    let (info, l) = (a.get_info(), a.limits());
                    serde_json::json!({
                        "index": index, "name": info.name, "backend": format!("{:?}", info.backend).to_lowercase(),
                        "type": format!("{:?}", info.device_type), "vendor": info.vendor, "device": info.device,
                        "driver": format!("{} {}", info.driver, info.driver_info).trim(),
                        "limits": {
                            "max_buffer_size": l.max_buffer_size,
                            "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size,
                            "max_compute_invocations_per_workgroup": l.max_compute_invocations_per_workgroup,
                            "max_compute_workgroups_per_dimension": l.max_compute_workgroups_per_dimension,
                            "max_compute_workgroup_storage_size": l.max_compute_workgroup_storage_size,
                        },
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "adapters": list, "nvml": nvml })
                )?
            );
            return Ok(ExitCode::SUCCESS);
        }
        if adapters.is_empty() {
            println!(
                "no GPU adapter found (on a machine without a GPU, install mesa-vulkan-drivers for lavapipe)"
            );
        }
        for (index, adapter) in adapters.iter().enumerate() {
            let (info, l) = (adapter.get_info(), adapter.limits());
            println!("[{index}] {}", info.name);
            println!(
                "    backend {:?} · type {:?} · vendor {:#06x} · device {:#06x}",
                info.backend, info.device_type, info.vendor, info.device
            );
            println!("    driver  {} {}", info.driver, info.driver_info);
            println!(
                "    limits  max buffer {} MiB · storage binding {} MiB · {} invocations/workgroup · {} workgroups/dim · {} KiB workgroup memory",
                l.max_buffer_size >> 20,
                l.max_storage_buffer_binding_size >> 20,
                l.max_compute_invocations_per_workgroup,
                l.max_compute_workgroups_per_dimension,
                l.max_compute_workgroup_storage_size >> 10
            );
        }
        match &nvml {
            NvmlStatus::Unavailable { reason } => println!("NVML not available: {reason}"),
            NvmlStatus::Available { driver, gpus } => {
                println!("NVML: driver {driver}, {} NVIDIA GPU(s)", gpus.len());
                for g in gpus {
                    let mib = |b: Option<u64>| b.map_or("?".to_string(), |b| (b >> 20).to_string());
                    println!(
                        "  [{}] {} · memory {}/{} MiB · {} °C · {}% busy · {} W",
                        g.index,
                        g.name,
                        mib(g.memory_used),
                        mib(g.memory_total),
                        g.temperature_c.map_or("?".into(), |t| t.to_string()),
                        g.utilization_percent.map_or("?".into(), |u| u.to_string()),
                        g.power_w.map_or("?".into(), |p| format!("{p:.0}")),
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
