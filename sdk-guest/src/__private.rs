//! Glue between the WIT bindings and the SDK's types. Not public API: used
//! by [`export_plugin!`](crate::export_plugin) only.
#![allow(unsafe_code, missing_docs)]

/// Bindings generated from `wit/` for the `job` world.
pub mod bindings {
    wit_bindgen::generate!({
        world: "job",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_job",
        runtime_path: "pictor_sdk::__private::wit_bindgen::rt",
        // The world includes `wasi:cli/imports`: bindings for it too (what a
        // plugin does not call is not imported).
        generate_all,
    });
}

/// Bindings of the `miner` world's own import, `pictor:plugin/mining`; the
/// interfaces it shares with `job` are the ones above. A job plugin that
/// never reports mining figures does not import it (unused imports are
/// dropped when the component is built).
pub mod miner_bindings {
    wit_bindgen::generate!({
        world: "miner",
        path: "../wit",
        with: {
            "pictor:plugin/types@0.2.0": super::bindings::pictor::plugin::types,
            "pictor:plugin/progress@0.2.0": super::bindings::pictor::plugin::progress,
            "pictor:plugin/gpu@0.2.0": super::bindings::pictor::plugin::gpu,
        },
        runtime_path: "pictor_sdk::__private::wit_bindgen::rt",
        generate_all,
    });
}

pub use wit_bindgen;

pub use bindings::Guest;
pub use bindings::pictor::plugin::types::{
    JobError as WitJobError, JobInfo as WitJobInfo, JobSummary as WitJobSummary, Metric,
};
pub use bindings::pictor::plugin::{checkpoint, progress};

use crate::{Job, JobError, JobInfo, Plugin};

/// Runs plugin `P` on the job the host passed in.
pub fn run<P: Plugin>(info: WitJobInfo) -> Result<WitJobSummary, WitJobError> {
    let info = JobInfo {
        id: info.id,
        kind: info.kind,
        params: info.params,
        attempt: info.attempt,
        seed: info.seed,
    };
    let job = Job::new(info, crate::host::Backend::Wasm);
    match P::run(&job) {
        Ok(summary) => Ok(WitJobSummary {
            message: summary.message,
            metrics: summary
                .metrics
                .into_iter()
                .map(|(name, value)| Metric { name, value })
                .collect(),
        }),
        Err(error) => Err(match error {
            JobError::InvalidParams(m) => WitJobError::InvalidParams(m),
            JobError::InvalidInput(m) => WitJobError::InvalidInput(m),
            JobError::Unsupported(m) => WitJobError::Unsupported(m),
            JobError::Io(m) => WitJobError::Io(m),
            JobError::Cancelled => WitJobError::Cancelled,
            JobError::Failed(m) => WitJobError::Failed(m),
        }),
    }
}

/// Saves a checkpoint through the host, mapping its error.
pub(crate) fn save_checkpoint(data: &[u8]) -> Result<(), JobError> {
    checkpoint::save(data).map_err(|e| match e {
        checkpoint::CheckpointError::TooLarge(limit) => JobError::Failed(format!(
            "checkpoint of {} bytes is over the job's {limit}-byte quota",
            data.len()
        )),
        checkpoint::CheckpointError::Storage(m) => {
            JobError::Failed(format!("checkpoint not saved: {m}"))
        }
    })
}
