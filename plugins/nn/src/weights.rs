//! Weights files: safetensors with one f32 tensor per layer weight and bias
//! (`layers.<i>.weight` `[out, in, k, k]`, `layers.<i>.bias` `[out]`) and
//! the architecture in the metadata, under the single key `pictor` (a JSON
//! object: `format`, `scale`, `activation`, `residual`, `luma`, plus what
//! the trainer adds). One key keeps the file's bytes the same on every run
//! (safetensors writes its metadata map in hash order), so replicated
//! training jobs give identical outputs.
//!
//! Loading checks everything a wrong file could get wrong: the format,
//! every tensor's presence, dtype and shape, the chain of channels, and
//! that every value is finite.

use std::collections::{BTreeMap, HashMap};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde_json::{Value, json};

use crate::model::{Activation, Architecture};

/// The `format` this crate writes and reads.
pub const FORMAT: &str = "pictor-espcn/1";
/// The metadata key holding the architecture.
pub const METADATA_KEY: &str = "pictor";

/// Serialises `params` of `arch`, with `extra` fields (training facts) in
/// the metadata.
pub fn save(
    arch: &Architecture,
    params: &[f32],
    extra: &BTreeMap<String, Value>,
) -> Result<Vec<u8>, String> {
    if params.len() != arch.param_count() {
        return Err(format!(
            "{} parameters for a network of {}",
            params.len(),
            arch.param_count()
        ));
    }
    let mut meta = serde_json::Map::new();
    for (k, v) in extra {
        meta.insert(k.clone(), v.clone());
    }
    meta.insert("format".into(), json!(FORMAT));
    meta.insert("scale".into(), json!(arch.scale));
    meta.insert("features".into(), json!(arch.features));
    meta.insert("kernels".into(), json!(arch.kernels));
    meta.insert("activation".into(), json!(arch.activation.name()));
    meta.insert("residual".into(), json!("bicubic"));
    meta.insert("luma".into(), json!("bt601"));
    let bytes: &[u8] = bytemuck::cast_slice(params);
    let mut views = Vec::new();
    for (i, layer) in arch.layers().iter().enumerate() {
        let s = layer.shape;
        let w = &bytes[layer.weight_offset * 4..layer.bias_offset * 4];
        let b = &bytes[layer.bias_offset * 4..(layer.bias_offset + s.cout) * 4];
        views.push((
            format!("layers.{i}.weight"),
            view(vec![s.cout, s.cin, s.k, s.k], w)?,
        ));
        views.push((format!("layers.{i}.bias"), view(vec![s.cout], b)?));
    }
    let info = HashMap::from([(METADATA_KEY.to_string(), Value::Object(meta).to_string())]);
    safetensors::serialize(views, Some(info)).map_err(|e| format!("safetensors: {e}"))
}

fn view(shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>, String> {
    TensorView::new(Dtype::F32, shape, data).map_err(|e| format!("safetensors: {e}"))
}

/// A loaded weights file.
#[derive(Debug, Clone)]
pub struct Weights {
    /// The network's shape.
    pub arch: Architecture,
    /// Its flat parameters.
    pub params: Vec<f32>,
    /// The whole metadata object (training facts included).
    pub metadata: serde_json::Map<String, Value>,
}

/// Reads and checks a weights file; errors say what is wrong with it.
pub fn load(bytes: &[u8]) -> Result<Weights, String> {
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file ({e})"))?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| format!("not a safetensors file ({e})"))?;
    let text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| {
            format!(
                "no `{METADATA_KEY}` metadata: not a weights file written by the `train` plugin"
            )
        })?;
    let meta: serde_json::Map<String, Value> = serde_json::from_str(text)
        .map_err(|e| format!("`{METADATA_KEY}` metadata is not a JSON object: {e}"))?;
    let format = meta.get("format").and_then(Value::as_str).unwrap_or("");
    if format != FORMAT {
        return Err(format!("format {format:?}; this plugin reads {FORMAT:?}"));
    }
    let number = |key: &str| {
        meta.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("metadata `{key}` is missing or not a number"))
    };
    let list = |key: &str| -> Result<Vec<u32>, String> {
        meta.get(key)
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| format!("metadata `{key}` is missing or not a list of numbers"))
    };
    let activation = meta
        .get("activation")
        .and_then(Value::as_str)
        .and_then(Activation::parse)
        .ok_or("metadata `activation` is missing or unknown (tanh, relu)")?;
    let scale =
        u32::try_from(number("scale")?).map_err(|_| "metadata `scale` is too large".to_string())?;
    let arch = Architecture {
        scale,
        features: list("features")?,
        kernels: list("kernels")?,
        activation,
    };
    arch.validate()
        .map_err(|e| format!("metadata describes a bad network: {e}"))?;
    let mut params = vec![0.0f32; arch.param_count()];
    let layers = arch.layers();
    for (i, layer) in layers.iter().enumerate() {
        let s = layer.shape;
        for (name, shape, offset) in [
            (
                format!("layers.{i}.weight"),
                vec![s.cout, s.cin, s.k, s.k],
                layer.weight_offset,
            ),
            (format!("layers.{i}.bias"), vec![s.cout], layer.bias_offset),
        ] {
            let t = file
                .tensor(&name)
                .map_err(|_| format!("tensor `{name}` is missing"))?;
            if t.dtype() != Dtype::F32 {
                return Err(format!("tensor `{name}` is {:?}; expected F32", t.dtype()));
            }
            if t.shape() != shape.as_slice() {
                return Err(format!(
                    "tensor `{name}` has shape {:?}; the metadata's network needs {shape:?}",
                    t.shape()
                ));
            }
            for (j, chunk) in t.data().chunks_exact(4).enumerate() {
                let v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                if !v.is_finite() {
                    return Err(format!("tensor `{name}` holds a non-finite value at {j}"));
                }
                params[offset + j] = v;
            }
        }
    }
    let expected = layers.len() * 2;
    if file.len() != expected {
        let known: Vec<String> = (0..layers.len())
            .flat_map(|i| [format!("layers.{i}.weight"), format!("layers.{i}.bias")])
            .collect();
        let extra: Vec<&str> = file
            .names()
            .into_iter()
            .filter(|n| !known.iter().any(|k| k == n))
            .collect();
        return Err(format!(
            "unexpected tensors {extra:?} for a network of {} layers",
            layers.len()
        ));
    }
    Ok(Weights {
        arch,
        params,
        metadata: meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bytes` with the first `from` replaced by `to` (same length).
    fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
        let mut out = bytes.to_vec();
        out[at..at + to.len()].copy_from_slice(to);
        out
    }

    fn sample() -> (Architecture, Vec<f32>) {
        let arch = Architecture::default_for(2);
        let params = arch.init(9);
        (arch, params)
    }

    #[test]
    fn round_trip_keeps_shape_params_and_extra_metadata_with_stable_bytes() {
        let (arch, params) = sample();
        let extra = BTreeMap::from([
            ("steps".to_string(), json!(100)),
            ("seed".to_string(), json!(9)),
        ]);
        let bytes = save(&arch, &params, &extra).unwrap();
        assert_eq!(bytes, save(&arch, &params, &extra).unwrap());
        let w = load(&bytes).unwrap();
        assert_eq!(w.arch, arch);
        assert_eq!(w.params, params);
        assert_eq!(w.metadata["steps"], 100);
    }

    #[test]
    fn wrong_files_are_refused_with_the_reason() {
        let (arch, params) = sample();
        assert!(
            load(b"not a file")
                .unwrap_err()
                .contains("not a safetensors file")
        );
        // A shape mismatch: metadata says 32 features, tensors are for 24.
        let small = Architecture::espcn(2, &[24, 16], arch.activation);
        let bytes = save(&small, &small.init(1), &BTreeMap::new()).unwrap();
        let err = load(&replace(&bytes, b"[24,16]", b"[32,16]")).unwrap_err();
        assert!(
            err.contains("tensor `layers.0.weight` has shape [24, 1, 5, 5]"),
            "{err}"
        );
        // Another format.
        let bytes = save(&arch, &params, &BTreeMap::new()).unwrap();
        assert!(
            load(&replace(&bytes, FORMAT.as_bytes(), b"pictor-espcn/9"))
                .unwrap_err()
                .contains("pictor-espcn/9")
        );
        // A NaN.
        let mut bad = params.clone();
        bad[3] = f32::NAN;
        let err = load(&save(&arch, &bad, &BTreeMap::new()).unwrap()).unwrap_err();
        assert!(err.contains("non-finite value at 3"), "{err}");
        // Plain safetensors without our metadata.
        let plain =
            safetensors::serialize([("x", view(vec![1], &[0, 0, 0, 0]).unwrap())], None).unwrap();
        assert!(load(&plain).unwrap_err().contains("no `pictor` metadata"));
    }
}
