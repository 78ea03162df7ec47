//! `hello`: the smallest useful job plugin, used by the README and the tests.
//!
//! Reads every file under `/input`, writes `<name>.hello` to `/output` with
//! the bytes of the input followed by `params.suffix`, and reports progress
//! after each file. Params: `{"suffix": "text"}` (optional, default `"\n-- hello from pictor\n"`).

use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::Deserialize;

/// The job's params.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_suffix")]
    suffix: String,
}

fn default_suffix() -> String {
    "\n-- hello from pictor\n".to_string()
}

/// The `hello` plugin.
pub struct Hello;

impl Plugin for Hello {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let params: Params = job.params()?;
        let names = job.input_files()?;
        let mut bytes = 0u64;
        for (done, name) in names.iter().enumerate() {
            job.check_cancelled()?;
            let mut data = job.read_input(name)?;
            data.extend_from_slice(params.suffix.as_bytes());
            job.write_output(&format!("{name}.hello"), &data)?;
            bytes += data.len() as u64;
            job.progress(
                (done + 1) as f32 / names.len() as f32,
                format!("copied {name}"),
            );
        }
        println!("hello: {} files for job {}", names.len(), job.id());
        Ok(Summary::new(format!("copied {} files", names.len()))
            .metric("files", names.len() as f64)
            .metric("bytes", bytes as f64))
    }
}

pictor_sdk::export_plugin!(Hello);

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_sdk::testing::TestHost;

    #[test]
    fn copies_each_input_with_the_suffix() -> Result<(), Box<dyn std::error::Error>> {
        let host = TestHost::new()?;
        std::fs::create_dir(host.input_dir().join("d"))?;
        std::fs::write(host.input_dir().join("d/a.txt"), "A")?;
        std::fs::write(host.input_dir().join("b.txt"), "B")?;
        let summary = Hello::run(&host.job(r#"{"suffix": "!"}"#))?;
        assert_eq!(
            std::fs::read_to_string(host.output_dir().join("d/a.txt.hello"))?,
            "A!"
        );
        assert_eq!(
            std::fs::read_to_string(host.output_dir().join("b.txt.hello"))?,
            "B!"
        );
        assert_eq!(summary.message, "copied 2 files");
        let reports = host.progress_reports();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[1].0, 1.0);
        Ok(())
    }

    #[test]
    fn rejects_unknown_params() -> Result<(), Box<dyn std::error::Error>> {
        let host = TestHost::new()?;
        let err = Hello::run(&host.job(r#"{"sufix": "!"}"#)).unwrap_err();
        assert!(
            matches!(err, JobError::InvalidParams(ref m) if m.contains("sufix")),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn stops_when_cancelled() -> Result<(), Box<dyn std::error::Error>> {
        let host = TestHost::new()?;
        std::fs::write(host.input_dir().join("a"), "A")?;
        host.cancel();
        assert_eq!(Hello::run(&host.job("{}")), Err(JobError::Cancelled));
        assert!(!host.output_dir().join("a.hello").exists());
        Ok(())
    }
}
