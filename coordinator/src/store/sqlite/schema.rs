//! The SQLite schema: version 1 as created on a new database, and each
//! migration to the version after it.

/// The schema version this build creates and reads.
pub const SCHEMA_VERSION: i64 = 4;

/// Each migration takes the schema from the version before to its version.
pub const MIGRATIONS: &[(i64, &str)] = &[(2, MIGRATION_2), (3, MIGRATION_3), (4, MIGRATION_4)];

/// Version 4: the GPU slots a worker's last heartbeat called not healthy.
pub(super) const MIGRATION_4: &str = "
ALTER TABLE worker_beats ADD COLUMN gpu_health TEXT;
";

/// Version 3: each lease's deadline, and a record of each blob (who
/// uploaded it, whether anything names it) for upload quotas and garbage
/// collection. Blobs already in the folder get their records when the
/// server starts ([`crate::gc::reconcile`]).
pub(super) const MIGRATION_3: &str = "
ALTER TABLE leases ADD COLUMN deadline_at_ms INTEGER;
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    owner TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    referenced INTEGER NOT NULL
);
CREATE INDEX blobs_by_owner ON blobs (owner, referenced);
CREATE INDEX blobs_collectable ON blobs (referenced, created_at_ms);
";

/// Version 2: issued workers with their own credentials, last heartbeats,
/// the price earned on each completed lease, and an index of job outputs
/// (filled from the proofs already accepted).
pub(super) const MIGRATION_2: &str = "
CREATE TABLE issued_workers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    wallet TEXT NOT NULL,
    mining TEXT,
    prices TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE TABLE worker_beats (
    worker_id TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    activity TEXT NOT NULL,
    mining TEXT
);
ALTER TABLE leases ADD COLUMN price REAL;
CREATE INDEX leases_by_worker ON leases (worker_id, state);
CREATE TABLE lease_outputs (
    sha256 TEXT NOT NULL,
    lease_id TEXT NOT NULL REFERENCES leases (id),
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (sha256, lease_id, path)
);
INSERT OR IGNORE INTO lease_outputs (sha256, lease_id, path, size)
    SELECT json_extract(o.value, '$.sha256'), l.id, json_extract(o.value, '$.path'), json_extract(o.value, '$.size')
    FROM leases l, json_each(l.proof, '$.manifest.outputs') o
    WHERE l.state = 'completed' AND l.proof IS NOT NULL;
";

pub(super) const SCHEMA: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL,
    host_version TEXT NOT NULL,
    gpus TEXT NOT NULL,
    kinds TEXT NOT NULL,
    prices TEXT NOT NULL,
    slots INTEGER NOT NULL,
    registered_at_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    plugin_sha256 TEXT NOT NULL,
    plugin_size INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    params TEXT NOT NULL,
    seed TEXT NOT NULL,
    limits TEXT NOT NULL,
    price REAL,
    replicas INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER,
    error TEXT
);
CREATE INDEX jobs_by_state ON jobs (state, seq);
CREATE TABLE leases (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    worker_id TEXT NOT NULL REFERENCES workers (id),
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    granted_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    fraction REAL NOT NULL,
    message TEXT NOT NULL,
    proof TEXT,
    failure TEXT,
    finished_at_ms INTEGER
);
CREATE INDEX leases_by_job ON leases (job_id, attempt);
CREATE INDEX leases_by_state ON leases (state, expires_at_ms);
CREATE TABLE kind_failures (
    worker_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    consecutive INTEGER NOT NULL,
    PRIMARY KEY (worker_id, kind)
);
";
