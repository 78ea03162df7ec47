//! Rows as SQLite holds them: the column lists, each table's raw row
//! ([`Table`]: read inside the row callback, decoded outside it so decoding
//! errors keep their own type) and the column encodings.

use pictor_protocol::api::{BlobRef, JobState};
use rusqlite::Row;

use crate::store::{
    BlobRecord, IssuedWorkerRecord, JobRecord, LeaseRecord, LeaseRecordState, StoreError,
    WorkerRecord,
};

/// One table's raw row and the record it decodes to.
pub(super) trait Table: Sized {
    /// The record a row decodes to.
    type Record;
    /// The table's name.
    const TABLE: &'static str;
    /// The columns [`Table::read`] reads, in order.
    const COLUMNS: &'static str;
    /// Reads a row (inside rusqlite's callback).
    fn read(row: &Row<'_>) -> rusqlite::Result<Self>;
    /// Decodes the raw row into its record.
    fn decode(self) -> Result<Self::Record, StoreError>;
}

pub(super) const JOB_COLUMNS: &str = "id, kind, plugin_sha256, plugin_size, inputs, params, seed, limits, price, replicas, \
     max_attempts, state, attempts, created_at_ms, finished_at_ms, error";
pub(super) const LEASE_COLUMNS: &str = "id, job_id, worker_id, attempt, state, granted_at_ms, expires_at_ms, fraction, message, proof, failure, finished_at_ms, price, deadline_at_ms";
pub(super) const ISSUED_COLUMNS: &str =
    "id, name, wallet, mining, prices, token_sha256, created_at_ms, revoked_at_ms";
pub(super) const WORKER_COLUMNS: &str = "id, name, public_key, host_version, gpus, kinds, prices, slots, registered_at_ms, last_seen_ms";

pub(super) fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("cannot encode a column: {e}")))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    column: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        message: format!("`{column}`: {e}"),
    })
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// A job row as read, decoded outside the row callback so decoding errors
/// keep their own type.
pub(super) struct RawJob {
    id: String,
    kind: String,
    plugin_sha256: String,
    plugin_size: i64,
    inputs: String,
    params: String,
    seed: String,
    limits: String,
    price: Option<f64>,
    replicas: i64,
    max_attempts: i64,
    state: String,
    attempts: i64,
    created_at_ms: i64,
    finished_at_ms: Option<i64>,
    error: Option<String>,
}

impl Table for RawJob {
    type Record = JobRecord;
    const TABLE: &'static str = "jobs";
    const COLUMNS: &'static str = JOB_COLUMNS;

    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawJob {
            id: row.get(0)?,
            kind: row.get(1)?,
            plugin_sha256: row.get(2)?,
            plugin_size: row.get(3)?,
            inputs: row.get(4)?,
            params: row.get(5)?,
            seed: row.get(6)?,
            limits: row.get(7)?,
            price: row.get(8)?,
            replicas: row.get(9)?,
            max_attempts: row.get(10)?,
            state: row.get(11)?,
            attempts: row.get(12)?,
            created_at_ms: row.get(13)?,
            finished_at_ms: row.get(14)?,
            error: row.get(15)?,
        })
    }

    fn decode(self) -> Result<JobRecord, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            table: "jobs",
            message,
        };
        Ok(JobRecord {
            plugin: BlobRef {
                sha256: self
                    .plugin_sha256
                    .parse()
                    .map_err(|e| corrupt(format!("`plugin_sha256`: {e}")))?,
                size: to_u64(self.plugin_size),
            },
            inputs: from_json("jobs", "inputs", &self.inputs)?,
            params: from_json("jobs", "params", &self.params)?,
            seed: self
                .seed
                .parse()
                .map_err(|e| corrupt(format!("`seed`: {e}")))?,
            limits: from_json("jobs", "limits", &self.limits)?,
            price: self.price,
            replicas: to_u32(self.replicas),
            max_attempts: to_u32(self.max_attempts),
            state: self
                .state
                .parse::<JobState>()
                .map_err(|e| corrupt(format!("`state` {e}")))?,
            attempts: to_u32(self.attempts),
            created_at_ms: to_u64(self.created_at_ms),
            finished_at_ms: self.finished_at_ms.map(to_u64),
            error: self.error,
            id: self.id,
            kind: self.kind,
        })
    }
}

pub(super) struct RawWorker {
    id: String,
    name: String,
    public_key: String,
    host_version: String,
    gpus: String,
    kinds: String,
    prices: String,
    slots: i64,
    registered_at_ms: i64,
    last_seen_ms: i64,
}

impl Table for RawWorker {
    type Record = WorkerRecord;
    const TABLE: &'static str = "workers";
    const COLUMNS: &'static str = WORKER_COLUMNS;

    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawWorker {
            id: row.get(0)?,
            name: row.get(1)?,
            public_key: row.get(2)?,
            host_version: row.get(3)?,
            gpus: row.get(4)?,
            kinds: row.get(5)?,
            prices: row.get(6)?,
            slots: row.get(7)?,
            registered_at_ms: row.get(8)?,
            last_seen_ms: row.get(9)?,
        })
    }

    fn decode(self) -> Result<WorkerRecord, StoreError> {
        Ok(WorkerRecord {
            gpus: from_json("workers", "gpus", &self.gpus)?,
            kinds: from_json("workers", "kinds", &self.kinds)?,
            prices: from_json("workers", "prices", &self.prices)?,
            slots: to_u32(self.slots),
            registered_at_ms: to_u64(self.registered_at_ms),
            last_seen_ms: to_u64(self.last_seen_ms),
            id: self.id,
            name: self.name,
            public_key: self.public_key,
            host_version: self.host_version,
        })
    }
}

pub(super) struct RawIssued {
    id: String,
    name: String,
    wallet: String,
    mining: Option<String>,
    prices: String,
    token_sha256: String,
    created_at_ms: i64,
    revoked_at_ms: Option<i64>,
}

impl Table for RawIssued {
    type Record = IssuedWorkerRecord;
    const TABLE: &'static str = "issued_workers";
    const COLUMNS: &'static str = ISSUED_COLUMNS;

    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawIssued {
            id: row.get(0)?,
            name: row.get(1)?,
            wallet: row.get(2)?,
            mining: row.get(3)?,
            prices: row.get(4)?,
            token_sha256: row.get(5)?,
            created_at_ms: row.get(6)?,
            revoked_at_ms: row.get(7)?,
        })
    }

    fn decode(self) -> Result<IssuedWorkerRecord, StoreError> {
        Ok(IssuedWorkerRecord {
            mining: self
                .mining
                .as_deref()
                .map(|m| from_json("issued_workers", "mining", m))
                .transpose()?,
            prices: from_json("issued_workers", "prices", &self.prices)?,
            created_at_ms: to_u64(self.created_at_ms),
            revoked_at_ms: self.revoked_at_ms.map(to_u64),
            id: self.id,
            name: self.name,
            wallet: self.wallet,
            token_sha256: self.token_sha256,
        })
    }
}

pub(super) struct RawLease {
    id: String,
    job_id: String,
    worker_id: String,
    attempt: i64,
    state: String,
    granted_at_ms: i64,
    expires_at_ms: i64,
    fraction: f64,
    message: String,
    proof: Option<String>,
    failure: Option<String>,
    finished_at_ms: Option<i64>,
    price: Option<f64>,
    deadline_at_ms: Option<i64>,
}

impl Table for RawLease {
    type Record = LeaseRecord;
    const TABLE: &'static str = "leases";
    const COLUMNS: &'static str = LEASE_COLUMNS;

    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawLease {
            id: row.get(0)?,
            job_id: row.get(1)?,
            worker_id: row.get(2)?,
            attempt: row.get(3)?,
            state: row.get(4)?,
            granted_at_ms: row.get(5)?,
            expires_at_ms: row.get(6)?,
            fraction: row.get(7)?,
            message: row.get(8)?,
            proof: row.get(9)?,
            failure: row.get(10)?,
            finished_at_ms: row.get(11)?,
            price: row.get(12)?,
            deadline_at_ms: row.get(13)?,
        })
    }

    fn decode(self) -> Result<LeaseRecord, StoreError> {
        Ok(LeaseRecord {
            state: LeaseRecordState::parse(&self.state).ok_or_else(|| StoreError::Corrupt {
                table: "leases",
                message: format!("`state` {:?}", self.state),
            })?,
            attempt: to_u32(self.attempt),
            granted_at_ms: to_u64(self.granted_at_ms),
            expires_at_ms: to_u64(self.expires_at_ms),
            fraction: self.fraction as f32,
            proof: self
                .proof
                .as_deref()
                .map(|p| from_json("leases", "proof", p))
                .transpose()?,
            failure: self
                .failure
                .as_deref()
                .map(|f| from_json("leases", "failure", f))
                .transpose()?,
            finished_at_ms: self.finished_at_ms.map(to_u64),
            price: self.price,
            deadline_at_ms: self.deadline_at_ms.map(to_u64),
            message: self.message,
            id: self.id,
            job_id: self.job_id,
            worker_id: self.worker_id,
        })
    }
}

/// A blob row.
pub(super) struct RawBlob {
    sha256: String,
    size: i64,
    owner: String,
    created_at_ms: i64,
    referenced: bool,
}

impl Table for RawBlob {
    type Record = BlobRecord;
    const TABLE: &'static str = "blobs";
    const COLUMNS: &'static str = "sha256, size, owner, created_at_ms, referenced";

    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawBlob {
            sha256: row.get(0)?,
            size: row.get(1)?,
            owner: row.get(2)?,
            created_at_ms: row.get(3)?,
            referenced: row.get(4)?,
        })
    }

    fn decode(self) -> Result<BlobRecord, StoreError> {
        Ok(BlobRecord {
            sha256: self.sha256.parse().map_err(|e| StoreError::Corrupt {
                table: "blobs",
                message: format!("`sha256`: {e}"),
            })?,
            size: to_u64(self.size),
            owner: self.owner,
            created_at_ms: to_u64(self.created_at_ms),
            referenced: self.referenced,
        })
    }
}
