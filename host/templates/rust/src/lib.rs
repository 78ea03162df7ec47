//! `{{name}}`: a Pictor job plugin, made by `pictor-host plugin new`.
//!
//! Multiplies every number in each text file under `/input` by
//! `params.factor` on the GPU (one compute dispatch per file) and writes
//! the results, one per line, to the same name under `/output`. It reports
//! progress after each file and saves a checkpoint listing the files done,
//! so an interrupted job picks up where it stopped. Params:
//! `{"factor": 2.0}` (optional, default 2).

use pictor_sdk::gpu::{self, Buffer, Kernel, Usage};
use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::Deserialize;

const KERNEL: &str = r#"
@group(0) @binding(0) var<storage, read_write> values: array<f32>;
override factor: f32 = 1.0;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&values) {
        values[id.x] = values[id.x] * factor;
    }
}
"#;

/// The most numbers one file may hold.
const MAX_VALUES: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "two")]
    factor: f64,
}

fn two() -> f64 {
    2.0
}

/// The files done so far and how many numbers they held.
#[derive(Default)]
struct Done {
    files: Vec<String>,
    values: usize,
}

impl Done {
    /// `values` on the first line, then one file name per line.
    fn encode(&self) -> Vec<u8> {
        let mut text = format!("{}\n", self.values);
        for name in &self.files {
            text.push_str(name);
            text.push('\n');
        }
        text.into_bytes()
    }

    fn decode(data: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(data).ok()?;
        let mut lines = text.lines();
        let values = lines.next()?.parse().ok()?;
        Some(Done {
            files: lines.map(str::to_string).collect(),
            values,
        })
    }
}

fn parse_numbers(name: &str, text: &str) -> Result<Vec<f32>, JobError> {
    let mut numbers = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: f32 = line.parse().map_err(|_| {
            let shown: String = line.chars().take(40).collect();
            JobError::InvalidInput(format!(
                "/input/{name} line {}: `{shown}` is not a number",
                index + 1
            ))
        })?;
        numbers.push(value);
    }
    if numbers.len() > MAX_VALUES {
        return Err(JobError::InvalidInput(format!(
            "/input/{name} has {} numbers, the most is {MAX_VALUES}",
            numbers.len()
        )));
    }
    Ok(numbers)
}

/// One dispatch: `numbers[i] * factor` for every i.
fn scale_on_gpu(numbers: &[f32], factor: f64) -> Result<Vec<f32>, JobError> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let values = Buffer::from_slice(numbers, Usage::STORAGE)?;
    let kernel = Kernel::with_constants(KERNEL, "main", &[("factor", factor)])?;
    let group = kernel.bind(0, &[values.binding()])?;
    let workgroups = u32::try_from(numbers.len().div_ceil(64))
        .map_err(|_| JobError::InvalidInput("too many numbers".into()))?;
    gpu::submit(&[kernel.dispatch(&[&group], [workgroups, 1, 1])])?;
    Ok(values.read()?)
}

/// The plugin.
pub struct Scale;

impl Plugin for Scale {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let params: Params = job.params()?;
        let names = job.input_files()?;
        let mut done = job
            .load_checkpoint()
            .and_then(|data| Done::decode(&data))
            .unwrap_or_default();
        for (index, name) in names.iter().enumerate() {
            if done.files.contains(name) {
                continue;
            }
            job.check_cancelled()?;
            let text = String::from_utf8(job.read_input(name)?)
                .map_err(|_| JobError::InvalidInput(format!("/input/{name} is not UTF-8")))?;
            let scaled = scale_on_gpu(&parse_numbers(name, &text)?, params.factor)?;
            let lines: String = scaled.iter().map(|v| format!("{v}\n")).collect();
            job.write_output(name, lines.as_bytes())?;
            done.files.push(name.clone());
            done.values += scaled.len();
            if let Err(e) = job.save_checkpoint(&done.encode()) {
                println!("{{name}}: checkpoint not saved: {e}");
            }
            job.progress((index + 1) as f32 / names.len() as f32, format!("scaled {name}"));
        }
        println!("{{name}}: {} files for job {}", names.len(), job.id());
        Ok(Summary::new(format!(
            "scaled {} numbers in {} files by {}",
            done.values,
            names.len(),
            params.factor
        ))
        .metric("files", names.len() as f64)
        .metric("values", done.values as f64))
    }
}

pictor_sdk::export_plugin!(Scale);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_parsed_and_bad_lines_named() {
        assert_eq!(parse_numbers("a", "1\n\n2.5\n").unwrap(), [1.0, 2.5]);
        let err = parse_numbers("a", "1\ntwo\n").unwrap_err().to_string();
        assert!(err.contains("/input/a line 2: `two` is not a number"), "{err}");
    }

    #[test]
    fn the_checkpoint_round_trips() {
        let done = Done { files: vec!["a.txt".into(), "b.txt".into()], values: 4 };
        let back = Done::decode(&done.encode()).unwrap();
        assert_eq!((back.files, back.values), (done.files, 4));
    }
}
