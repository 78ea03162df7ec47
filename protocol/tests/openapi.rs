//! `docs/openapi.yaml` against the protocol's own types: every schema named
//! after a wire type exists, every example in it parses as that type, and
//! what the type writes back uses only the properties the schema documents
//! (and all it calls required). A field renamed, added or dropped on one
//! side and not the other fails here.

#![allow(clippy::unwrap_used)]

use pictor_protocol::api::*;
use pictor_protocol::proof::{InputDigest, OutputDigest, ResultManifest, SignedProof};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn schemas() -> serde_json::Map<String, Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let document: Value = serde_norway::from_str(&text).unwrap();
    document["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap()
}

/// Checks schema `name` against `T`; returns whether it had an example.
fn check<T: DeserializeOwned + Serialize>(
    schemas: &serde_json::Map<String, Value>,
    name: &str,
) -> bool {
    let schema = schemas
        .get(name)
        .unwrap_or_else(|| panic!("docs/openapi.yaml has no schema {name}"));
    let Some(example) = schema.get("example") else {
        return false;
    };
    let value: T = serde_json::from_value(example.clone())
        .unwrap_or_else(|e| panic!("the example of {name} does not parse as the type: {e}"));
    let written = serde_json::to_value(&value).unwrap();
    if let (Some(properties), Some(fields)) = (
        schema.get("properties").and_then(Value::as_object),
        written.as_object(),
    ) {
        for field in fields.keys() {
            assert!(
                properties.contains_key(field),
                "{name}: the type writes `{field}`, which the schema does not document"
            );
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap();
            assert!(
                properties.contains_key(required),
                "{name}: `{required}` is required but not a property"
            );
            assert!(
                fields.contains_key(required),
                "{name}: the schema requires `{required}`, which the type does not write"
            );
        }
    }
    true
}

#[test]
fn every_wire_type_has_its_schema_and_the_examples_parse_as_the_types() {
    let schemas = schemas();
    let s = &schemas;
    let with_example = [
        check::<ErrorBody>(s, "ErrorBody"),
        check::<ErrorCode>(s, "ErrorCode"),
        check::<Info>(s, "Info"),
        check::<GpuDescription>(s, "GpuDescription"),
        check::<RegisterRequest>(s, "RegisterRequest"),
        check::<RegisterReply>(s, "RegisterReply"),
        check::<LeaseProgress>(s, "LeaseProgress"),
        check::<Heartbeat>(s, "Heartbeat"),
        check::<GpuSlotHealth>(s, "GpuSlotHealth"),
        check::<MiningFigures>(s, "MiningFigures"),
        check::<LeaseState>(s, "LeaseState"),
        check::<LeaseStatus>(s, "LeaseStatus"),
        check::<HeartbeatReply>(s, "HeartbeatReply"),
        check::<LeaseRequest>(s, "LeaseRequest"),
        check::<BlobRef>(s, "BlobRef"),
        check::<InputBlob>(s, "InputBlob"),
        check::<Lease>(s, "Lease"),
        check::<ProgressUpdate>(s, "ProgressUpdate"),
        check::<InputDigest>(s, "InputDigest"),
        check::<OutputDigest>(s, "OutputDigest"),
        check::<ResultManifest>(s, "ResultManifest"),
        check::<SignedProof>(s, "SignedProof"),
        check::<CompleteRequest>(s, "CompleteRequest"),
        check::<FailRequest>(s, "FailRequest"),
        check::<CompleteReply>(s, "CompleteReply"),
        check::<JobState>(s, "JobState"),
        check::<SubmitJob>(s, "SubmitJob"),
        check::<JobStatus>(s, "JobStatus"),
        check::<JobList>(s, "JobList"),
        check::<MiningSettings>(s, "MiningSettings"),
        check::<CreateWorker>(s, "CreateWorker"),
        check::<IssuedWorker>(s, "IssuedWorker"),
        check::<WorkerLease>(s, "WorkerLease"),
        check::<WorkerSummary>(s, "WorkerSummary"),
        check::<WorkerList>(s, "WorkerList"),
    ];
    let checked = with_example.iter().filter(|&&had| had).count();
    assert!(checked >= 17, "only {checked} examples were checked");
}

#[test]
fn a_renamed_field_is_caught() {
    // The check itself: an example with a field the type does not know.
    let mut schemas = schemas();
    let info = schemas.get_mut("Info").unwrap();
    info["example"]["services"] = info["example"]["service"].take();
    info["example"].as_object_mut().unwrap().remove("service");
    let caught = std::panic::catch_unwind(|| check::<Info>(&schemas, "Info"));
    assert!(caught.is_err());
}
