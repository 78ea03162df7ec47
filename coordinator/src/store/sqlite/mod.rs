//! The embedded [`Store`]: one SQLite file (`coordinator.sqlite` in the data
//! folder), created with its schema on first open, in WAL mode with full
//! fsync (an accepted result survives a power cut). One connection behind a
//! mutex: every transaction is `BEGIN IMMEDIATE`, so they never conflict.
//!
//! Lists (inputs, GPUs, kinds, prices), proofs and failure reports are JSON
//! text columns; `u64` values that may exceed `i64` (seeds) are decimal text.
//!
//! A new database gets the version 1 schema and then every migration in
//! [`MIGRATIONS`], in order; an older database gets the migrations it lacks,
//! in the same transaction as the check.
//!
//! `schema` holds the tables and migrations, `rows` each table's raw row
//! and column encodings; every read goes through one [`SqliteTx::select`].

mod rows;
mod schema;

use std::path::Path;
use std::sync::Mutex;

use pictor_protocol::Sha256Digest;
use pictor_protocol::api::JobState;
use pictor_protocol::proof::OutputDigest;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use self::rows::*;
use self::schema::SCHEMA;
pub use self::schema::{MIGRATIONS, SCHEMA_VERSION};
use super::{
    BeatRecord, BlobRecord, IssuedWorkerRecord, JobRecord, LeaseRecord, LeaseRecordState,
    OutputRecord, Store, StoreError, Tx, WorkerRecord,
};

/// The SQLite store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        Self::init(conn)
    }

    /// An in-memory database (for tests of the rules).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        // `journal_mode` answers with a row, so it is read rather than executed.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(backend)?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(backend)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let exists: bool = tx
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(backend)?
            > 0;
        let found = if exists {
            tx.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
                .map_err(backend)?
        } else {
            tx.execute_batch(SCHEMA).map_err(backend)?;
            tx.execute("INSERT INTO schema_version (version) VALUES (1)", [])
                .map_err(backend)?;
            1
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                expected: SCHEMA_VERSION,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            tx.execute_batch(sql).map_err(|e| {
                StoreError::Backend(format!("migrating the schema to version {version}: {e}"))
            })?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [version],
            )
            .map_err(backend)?;
            if exists {
                tracing::info!(from = found, to = version, "database schema migrated");
            }
        }
        tx.commit().map_err(backend)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }
}

impl Store for SqliteStore {
    fn transact(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // A panic elsewhere while holding the lock leaves the connection
        // usable (the transaction was rolled back when it dropped).
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let mut sqlite_tx = SqliteTx { tx: &tx };
        f(&mut sqlite_tx)?;
        tx.commit().map_err(backend)
    }
}

struct SqliteTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

impl SqliteTx<'_> {
    /// The rows of `T`'s table that `clause` (`WHERE …`, `ORDER BY …`)
    /// selects with `args`, decoded.
    fn select<T: Table>(
        &mut self,
        clause: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<T::Record>, StoreError> {
        let sql = format!("SELECT {} FROM {} {clause}", T::COLUMNS, T::TABLE);
        let mut stmt = self.tx.prepare_cached(&sql).map_err(backend)?;
        let raw: Vec<T> = stmt
            .query_map(args, T::read)
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        raw.into_iter().map(T::decode).collect()
    }
}

impl Tx for SqliteTx<'_> {
    fn worker(&mut self, id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        Ok(self.select::<RawWorker>("WHERE id = ?1", &[&id])?.pop())
    }

    fn list_workers(&mut self) -> Result<Vec<WorkerRecord>, StoreError> {
        self.select::<RawWorker>("ORDER BY registered_at_ms, id", &[])
    }

    fn put_worker(&mut self, w: &WorkerRecord) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO workers (id, name, public_key, host_version, gpus, kinds, prices, slots, registered_at_ms, last_seen_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (id) DO UPDATE SET name = ?2, public_key = ?3, host_version = ?4, gpus = ?5, kinds = ?6, \
                 prices = ?7, slots = ?8, registered_at_ms = ?9, last_seen_ms = ?10",
                params![
                    w.id,
                    w.name,
                    w.public_key,
                    w.host_version,
                    json(&w.gpus)?,
                    json(&w.kinds)?,
                    json(&w.prices)?,
                    w.slots,
                    to_i64(w.registered_at_ms),
                    to_i64(w.last_seen_ms)
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn job(&mut self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.select::<RawJob>("WHERE id = ?1", &[&id])?.pop())
    }

    fn insert_job(&mut self, j: &JobRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        );
        self.tx
            .execute(
                &sql,
                params![
                    j.id,
                    j.kind,
                    j.plugin.sha256.to_string(),
                    to_i64(j.plugin.size),
                    json(&j.inputs)?,
                    json(&j.params)?,
                    j.seed.to_string(),
                    json(&j.limits)?,
                    j.price,
                    j.replicas,
                    j.max_attempts,
                    j.state.as_str(),
                    j.attempts,
                    to_i64(j.created_at_ms),
                    j.finished_at_ms.map(to_i64),
                    j.error
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn update_job(&mut self, j: &JobRecord) -> Result<(), StoreError> {
        self.tx
            .execute(
                "UPDATE jobs SET state = ?2, attempts = ?3, finished_at_ms = ?4, error = ?5 WHERE id = ?1",
                params![j.id, j.state.as_str(), j.attempts, j.finished_at_ms.map(to_i64), j.error],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn list_jobs(
        &mut self,
        state: Option<JobState>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        match state {
            Some(state) => self.select::<RawJob>(
                "WHERE state = ?1 ORDER BY seq DESC LIMIT ?2",
                &[&state.as_str(), &limit],
            ),
            None => self.select::<RawJob>("ORDER BY seq DESC LIMIT ?1", &[&limit]),
        }
    }

    fn open_jobs(
        &mut self,
        kinds: Option<&[String]>,
        excluded: &[String],
    ) -> Result<Vec<JobRecord>, StoreError> {
        // Kind lists are short (a worker's accepted kinds), so they are
        // passed as one JSON array and unpacked with json_each.
        let kinds_json = kinds.map(json).transpose()?;
        let excluded_json = json(&excluded)?;
        self.select::<RawJob>(
            "WHERE state IN ('queued', 'running') \
             AND (?1 IS NULL OR kind IN (SELECT value FROM json_each(?1))) \
             AND kind NOT IN (SELECT value FROM json_each(?2)) \
             ORDER BY seq",
            &[&kinds_json, &excluded_json],
        )
    }

    fn lease(&mut self, id: &str) -> Result<Option<LeaseRecord>, StoreError> {
        Ok(self.select::<RawLease>("WHERE id = ?1", &[&id])?.pop())
    }

    fn insert_lease(&mut self, l: &LeaseRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO leases ({LEASE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        );
        self.tx
            .execute(
                &sql,
                params![
                    l.id,
                    l.job_id,
                    l.worker_id,
                    l.attempt,
                    l.state.as_str(),
                    to_i64(l.granted_at_ms),
                    to_i64(l.expires_at_ms),
                    f64::from(l.fraction),
                    l.message,
                    l.proof.as_ref().map(json).transpose()?,
                    l.failure.as_ref().map(json).transpose()?,
                    l.finished_at_ms.map(to_i64),
                    l.price,
                    l.deadline_at_ms.map(to_i64)
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn update_lease(&mut self, l: &LeaseRecord) -> Result<(), StoreError> {
        self.tx
            .execute(
                "UPDATE leases SET state = ?2, expires_at_ms = ?3, fraction = ?4, message = ?5, proof = ?6, failure = ?7, \
                 finished_at_ms = ?8, price = ?9 WHERE id = ?1",
                params![
                    l.id,
                    l.state.as_str(),
                    to_i64(l.expires_at_ms),
                    f64::from(l.fraction),
                    l.message,
                    l.proof.as_ref().map(json).transpose()?,
                    l.failure.as_ref().map(json).transpose()?,
                    l.finished_at_ms.map(to_i64),
                    l.price
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn leases_of_job(&mut self, job_id: &str) -> Result<Vec<LeaseRecord>, StoreError> {
        self.select::<RawLease>("WHERE job_id = ?1 ORDER BY attempt", &[&job_id])
    }

    fn due_leases(&mut self, now_ms: u64) -> Result<Vec<LeaseRecord>, StoreError> {
        self.select::<RawLease>(
            "WHERE state = 'active' AND expires_at_ms <= ?1 ORDER BY expires_at_ms",
            &[&to_i64(now_ms)],
        )
    }

    fn leases_of_worker(
        &mut self,
        worker_id: &str,
        state: LeaseRecordState,
    ) -> Result<Vec<LeaseRecord>, StoreError> {
        self.select::<RawLease>(
            "WHERE worker_id = ?1 AND state = ?2 ORDER BY granted_at_ms, id",
            &[&worker_id, &state.as_str()],
        )
    }

    fn worker_totals(&mut self, worker_id: &str) -> Result<(u64, f64), StoreError> {
        let (count, sum): (i64, f64) = self
            .tx
            .query_row(
                "SELECT count(*), coalesce(sum(price), 0.0) FROM leases WHERE worker_id = ?1 AND state = 'completed'",
                [worker_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(backend)?;
        Ok((to_u64(count), sum))
    }

    fn insert_outputs(
        &mut self,
        lease_id: &str,
        outputs: &[OutputDigest],
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO lease_outputs (sha256, lease_id, path, size) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(backend)?;
        for output in outputs {
            stmt.execute(params![
                output.sha256.to_string(),
                lease_id,
                output.path,
                to_i64(output.size)
            ])
            .map_err(backend)?;
        }
        Ok(())
    }

    fn output_by_blob(
        &mut self,
        sha256: &Sha256Digest,
    ) -> Result<Option<OutputRecord>, StoreError> {
        let raw: Option<(String, String, i64)> = self
            .tx
            .query_row(
                "SELECT lease_id, path, size FROM lease_outputs WHERE sha256 = ?1 ORDER BY lease_id, path LIMIT 1",
                [sha256.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(backend)?;
        Ok(raw.map(|(lease_id, path, size)| OutputRecord {
            lease_id,
            path,
            size: to_u64(size),
            sha256: *sha256,
        }))
    }

    fn issued_worker(&mut self, id: &str) -> Result<Option<IssuedWorkerRecord>, StoreError> {
        Ok(self.select::<RawIssued>("WHERE id = ?1", &[&id])?.pop())
    }

    fn issued_worker_by_token(
        &mut self,
        token_sha256: &str,
    ) -> Result<Option<IssuedWorkerRecord>, StoreError> {
        Ok(self
            .select::<RawIssued>("WHERE token_sha256 = ?1", &[&token_sha256])?
            .pop())
    }

    fn insert_issued_worker(&mut self, w: &IssuedWorkerRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO issued_workers ({ISSUED_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        );
        self.tx
            .execute(
                &sql,
                params![
                    w.id,
                    w.name,
                    w.wallet,
                    w.mining.as_ref().map(json).transpose()?,
                    json(&w.prices)?,
                    w.token_sha256,
                    to_i64(w.created_at_ms),
                    w.revoked_at_ms.map(to_i64)
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn update_issued_worker(&mut self, w: &IssuedWorkerRecord) -> Result<(), StoreError> {
        self.tx
            .execute(
                "UPDATE issued_workers SET revoked_at_ms = ?2 WHERE id = ?1",
                params![w.id, w.revoked_at_ms.map(to_i64)],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn list_issued_workers(&mut self) -> Result<Vec<IssuedWorkerRecord>, StoreError> {
        self.select::<RawIssued>("ORDER BY created_at_ms, id", &[])
    }

    fn put_beat(&mut self, beat: &BeatRecord) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO worker_beats (worker_id, at_ms, activity, mining, gpu_health) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (worker_id) DO UPDATE SET at_ms = ?2, activity = ?3, mining = ?4, gpu_health = ?5",
                params![
                    beat.worker_id,
                    to_i64(beat.at_ms),
                    beat.activity,
                    beat.mining.as_ref().map(json).transpose()?,
                    (!beat.gpu_health.is_empty()).then(|| json(&beat.gpu_health)).transpose()?
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn beat(&mut self, worker_id: &str) -> Result<Option<BeatRecord>, StoreError> {
        let raw: Option<(i64, String, Option<String>, Option<String>)> = self
            .tx
            .query_row(
                "SELECT at_ms, activity, mining, gpu_health FROM worker_beats WHERE worker_id = ?1",
                [worker_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(backend)?;
        raw.map(|(at_ms, activity, mining, gpu_health)| {
            Ok(BeatRecord {
                worker_id: worker_id.to_string(),
                at_ms: to_u64(at_ms),
                activity,
                mining: mining
                    .as_deref()
                    .map(|m| from_json("worker_beats", "mining", m))
                    .transpose()?,
                gpu_health: gpu_health
                    .as_deref()
                    .map(|g| from_json("worker_beats", "gpu_health", g))
                    .transpose()?
                    .unwrap_or_default(),
            })
        })
        .transpose()
    }

    fn blob(&mut self, sha256: &Sha256Digest) -> Result<Option<BlobRecord>, StoreError> {
        Ok(self
            .select::<RawBlob>("WHERE sha256 = ?1", &[&sha256.to_string()])?
            .pop())
    }

    fn put_blob(&mut self, b: &BlobRecord) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO blobs (sha256, size, owner, created_at_ms, referenced) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (sha256) DO UPDATE SET size = ?2, owner = ?3, created_at_ms = ?4, referenced = ?5",
                params![
                    b.sha256.to_string(),
                    to_i64(b.size),
                    b.owner,
                    to_i64(b.created_at_ms),
                    b.referenced
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn delete_blob(&mut self, sha256: &Sha256Digest) -> Result<(), StoreError> {
        self.tx
            .execute("DELETE FROM blobs WHERE sha256 = ?1", [sha256.to_string()])
            .map_err(backend)?;
        Ok(())
    }

    fn blob_digests(&mut self) -> Result<Vec<Sha256Digest>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT sha256 FROM blobs ORDER BY sha256")
            .map_err(backend)?;
        let texts = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        texts
            .iter()
            .map(|t| {
                t.parse().map_err(|e| StoreError::Corrupt {
                    table: "blobs",
                    message: format!("`sha256`: {e}"),
                })
            })
            .collect()
    }

    fn unreferenced_bytes(&mut self, owner: &str) -> Result<u64, StoreError> {
        let sum: i64 = self
            .tx
            .query_row(
                "SELECT coalesce(sum(size), 0) FROM blobs WHERE owner = ?1 AND referenced = 0",
                [owner],
                |r| r.get(0),
            )
            .map_err(backend)?;
        Ok(to_u64(sum))
    }

    fn mark_referenced(&mut self, digests: &[Sha256Digest]) -> Result<(), StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("UPDATE blobs SET referenced = 1 WHERE sha256 = ?1 AND referenced = 0")
            .map_err(backend)?;
        for digest in digests {
            stmt.execute([digest.to_string()]).map_err(backend)?;
        }
        Ok(())
    }

    fn mark_all_referenced(&mut self) -> Result<usize, StoreError> {
        self.tx
            .execute(
                "UPDATE blobs SET referenced = 1 WHERE referenced = 0 AND ( \
                 sha256 IN (SELECT plugin_sha256 FROM jobs) \
                 OR sha256 IN (SELECT json_extract(i.value, '$.sha256') FROM jobs, json_each(jobs.inputs) i) \
                 OR sha256 IN (SELECT sha256 FROM lease_outputs))",
                [],
            )
            .map_err(backend)
    }

    fn collectable_blobs(
        &mut self,
        before_ms: u64,
        limit: u32,
    ) -> Result<Vec<BlobRecord>, StoreError> {
        self.select::<RawBlob>(
            "WHERE referenced = 0 AND created_at_ms <= ?1 ORDER BY created_at_ms, sha256 LIMIT ?2",
            &[&to_i64(before_ms), &limit],
        )
    }

    fn kind_failures(&mut self, worker_id: &str, kind: &str) -> Result<u32, StoreError> {
        let count: Option<i64> = self
            .tx
            .query_row(
                "SELECT consecutive FROM kind_failures WHERE worker_id = ?1 AND kind = ?2",
                [worker_id, kind],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        Ok(count.map(to_u32).unwrap_or(0))
    }

    fn set_kind_failures(
        &mut self,
        worker_id: &str,
        kind: &str,
        count: u32,
    ) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO kind_failures (worker_id, kind, consecutive) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (worker_id, kind) DO UPDATE SET consecutive = ?3",
                params![worker_id, kind, count],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn skipped_kinds(
        &mut self,
        worker_id: &str,
        threshold: u32,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT kind FROM kind_failures WHERE worker_id = ?1 AND consecutive >= ?2 ORDER BY kind")
            .map_err(backend)?;
        let kinds = stmt
            .query_map(params![worker_id, threshold], |r| r.get::<_, String>(0))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(kinds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::transaction;
    use pictor_protocol::Sha256Digest;
    use pictor_protocol::api::BlobRef;

    fn job(id: &str, kind: &str) -> JobRecord {
        JobRecord {
            id: id.into(),
            kind: kind.into(),
            plugin: BlobRef {
                sha256: Sha256Digest::of(b"p"),
                size: 1,
            },
            inputs: vec![],
            params: serde_json::json!({"a": 1}),
            seed: u64::MAX,
            limits: serde_json::json!({}),
            price: Some(0.5),
            replicas: 1,
            max_attempts: 3,
            state: JobState::Queued,
            attempts: 0,
            created_at_ms: 1,
            finished_at_ms: None,
            error: None,
        }
    }

    #[test]
    fn rows_round_trip_and_open_jobs_filter_by_kind() -> Result<(), StoreError> {
        let store = SqliteStore::in_memory()?;
        transaction(&store, |tx| {
            tx.insert_job(&job("a", "render"))?;
            tx.insert_job(&job("b", "train"))?;
            tx.insert_job(&job("c", "render"))?;
            Ok::<_, StoreError>(())
        })?;
        transaction(&store, |tx| {
            assert_eq!(tx.job("a")?, Some(job("a", "render")));
            let ids = |jobs: Vec<JobRecord>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
            assert_eq!(ids(tx.open_jobs(None, &[])?), ["a", "b", "c"]);
            assert_eq!(
                ids(tx.open_jobs(Some(&["render".into()]), &[])?),
                ["a", "c"]
            );
            assert_eq!(ids(tx.open_jobs(None, &["render".into()])?), ["b"]);
            assert_eq!(ids(tx.list_jobs(None, 2)?), ["c", "b"]);
            Ok::<_, StoreError>(())
        })
    }

    #[test]
    fn a_version_1_database_is_migrated_keeping_its_rows() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("coordinator.sqlite");
        let output = Sha256Digest::of(b"png");
        {
            let conn = Connection::open(&path)?;
            conn.execute_batch(SCHEMA)?;
            conn.execute("INSERT INTO schema_version (version) VALUES (1)", [])?;
            conn.execute(
                "INSERT INTO workers VALUES ('w', 'n', 'k', 'h', '[]', '[]', '{}', 1, 1, 1)",
                [],
            )?;
            conn.execute(
                &format!(
                    "INSERT INTO jobs ({JOB_COLUMNS}) VALUES ('j', 'render', ?1, 1, '[]', '{{}}', '0', '{{}}', NULL, 1, 3, 'succeeded', 1, 1, 2, NULL)"
                ),
                [Sha256Digest::of(b"p").to_string()],
            )?;
            let proof = serde_json::json!({"manifest": {"outputs": [{"path": "frame.png", "size": 3, "sha256": output}]}});
            conn.execute(
                "INSERT INTO leases (id, job_id, worker_id, attempt, state, granted_at_ms, expires_at_ms, fraction, message, proof, failure, finished_at_ms) \
                 VALUES ('j.0', 'j', 'w', 0, 'completed', 1, 2, 1.0, '', ?1, NULL, 2)",
                [proof.to_string()],
            )?;
        }
        let store = SqliteStore::open(&path)?;
        let (found, totals) = transaction(&store, |tx| {
            Ok::<_, StoreError>((tx.output_by_blob(&output)?, tx.worker_totals("w")?))
        })?;
        let found = found.ok_or("the output was not indexed")?;
        assert_eq!(
            (found.lease_id.as_str(), found.path.as_str(), found.size),
            ("j.0", "frame.png", 3)
        );
        assert_eq!(totals, (1, 0.0));
        drop(store);
        // Opening again migrates nothing more.
        let store = SqliteStore::open(&path)?;
        let version: i64 = store.conn.lock().map_err(|_| "poisoned")?.query_row(
            "SELECT max(version) FROM schema_version",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(version, SCHEMA_VERSION);
        Ok(())
    }

    #[test]
    fn blob_records_count_unreferenced_bytes_and_age_for_collection() -> Result<(), StoreError> {
        let store = SqliteStore::in_memory()?;
        let record = |bytes: &[u8], owner: &str, at: u64| BlobRecord {
            sha256: Sha256Digest::of(bytes),
            size: bytes.len() as u64,
            owner: owner.into(),
            created_at_ms: at,
            referenced: false,
        };
        transaction(&store, |tx| {
            tx.put_blob(&record(b"p", "creator", 10))?;
            tx.put_blob(&record(b"junk", "worker:w", 20))?;
            tx.put_blob(&record(b"new junk", "worker:w", 30))?;
            tx.insert_job(&job("a", "render"))?;
            Ok::<_, StoreError>(())
        })?;
        transaction(&store, |tx| {
            assert_eq!(tx.unreferenced_bytes("worker:w")?, 12);
            assert_eq!(tx.unreferenced_bytes("creator")?, 1);
            // Job `a` names blob `p` as its plugin.
            assert_eq!(tx.mark_all_referenced()?, 1);
            assert_eq!(tx.unreferenced_bytes("creator")?, 0);
            let old: Vec<u64> = tx
                .collectable_blobs(25, 10)?
                .iter()
                .map(|b| b.created_at_ms)
                .collect();
            assert_eq!(old, [20], "referenced and young blobs are kept");
            tx.mark_referenced(&[Sha256Digest::of(b"junk")])?;
            assert!(tx.collectable_blobs(25, 10)?.is_empty());
            assert_eq!(tx.unreferenced_bytes("worker:w")?, 8);
            tx.delete_blob(&Sha256Digest::of(b"new junk"))?;
            assert_eq!(tx.blob_digests()?.len(), 2);
            Ok::<_, StoreError>(())
        })
    }

    #[test]
    fn a_failed_closure_rolls_back() -> Result<(), StoreError> {
        let store = SqliteStore::in_memory()?;
        let result: Result<(), StoreError> = transaction(&store, |tx| {
            tx.insert_job(&job("a", "render"))?;
            Err(StoreError::Backend("stop".into()))
        });
        assert!(result.is_err());
        let found = transaction(&store, |tx| tx.job("a"))?;
        assert_eq!(found, None);
        Ok(())
    }
}
