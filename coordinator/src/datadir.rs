//! The data folder: what is in it, and the files created on first start.
//!
//! ```text
//! DATA/coordinator.sqlite   the store (plus -wal/-shm files while open)
//! DATA/blobs/               the blob store
//! DATA/creator.token        bearer token of the jobs API (0600)
//! DATA/worker.token         bearer token shared by the farm's workers (0600)
//! DATA/coordinator.json     where the running coordinator listens (for the CLI)
//! DATA/worker.json          a ready-to-use `pictor-host run --config` file
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A data folder problem.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file has unexpected content.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The id of the worker in the generated `worker.json`.
pub const LOCAL_WORKER_ID: &str = "wkr-local-1";

/// `coordinator.json`: where the coordinator serving this folder listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Format version (1).
    pub version: u32,
    /// Base URL, e.g. `http://127.0.0.1:8700`.
    pub url: String,
}

/// The paths of a data folder.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The folder at `root` (nothing is created).
    pub fn new(root: &Path) -> Self {
        DataDir {
            root: root.to_path_buf(),
        }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite file.
    pub fn database(&self) -> PathBuf {
        self.root.join("coordinator.sqlite")
    }

    /// The blob store folder.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The creator token file.
    pub fn creator_token_file(&self) -> PathBuf {
        self.root.join("creator.token")
    }

    /// The farm's worker token file.
    pub fn worker_token_file(&self) -> PathBuf {
        self.root.join("worker.token")
    }

    /// `coordinator.json`.
    pub fn endpoint_file(&self) -> PathBuf {
        self.root.join("coordinator.json")
    }

    /// The generated worker config.
    pub fn worker_config_file(&self) -> PathBuf {
        self.root.join("worker.json")
    }

    /// Creates the folder and its tokens if they are not there; returns the
    /// (creator, worker) tokens.
    pub fn create(&self) -> Result<(String, String), DataDirError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let creator = ensure_token(&self.creator_token_file())?;
        let worker = ensure_token(&self.worker_token_file())?;
        Ok((creator, worker))
    }

    /// Reads one token file.
    pub fn read_token(path: &Path) -> Result<String, DataDirError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let token = text.trim().to_string();
        if token.len() < 16 {
            return Err(DataDirError::Invalid {
                path: path.to_path_buf(),
                message: "token is shorter than 16 characters".into(),
            });
        }
        Ok(token)
    }

    /// Records where the coordinator listens.
    pub fn write_endpoint(&self, url: &str) -> Result<(), DataDirError> {
        let endpoint = Endpoint {
            version: 1,
            url: url.to_string(),
        };
        write_json(
            &self.endpoint_file(),
            &serde_json::to_value(endpoint).unwrap_or_default(),
            false,
        )
    }

    /// Reads `coordinator.json`.
    pub fn read_endpoint(&self) -> Result<Endpoint, DataDirError> {
        let path = self.endpoint_file();
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| DataDirError::Invalid {
            path,
            message: e.to_string(),
        })
    }

    /// Writes `worker.json` for a worker on this machine, or, if one is
    /// there, updates only its `coordinator.url` and `coordinator.token`
    /// (keeping whatever the owner edited).
    pub fn write_worker_config(&self, url: &str, worker_token: &str) -> Result<(), DataDirError> {
        let path = self.worker_config_file();
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                DataDirError::Invalid {
                    path: path.clone(),
                    message: format!("{e} (remove it to get a fresh one)"),
                }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => worker_config_template(),
            Err(e) => return Err(DataDirError::Io { path, source: e }),
        };
        let coordinator = config
            .as_object_mut()
            .map(|c| {
                c.entry("coordinator")
                    .or_insert_with(|| serde_json::json!({ "spool": "worker-data" }))
            })
            .and_then(serde_json::Value::as_object_mut)
            .ok_or_else(|| DataDirError::Invalid {
                path: path.clone(),
                message: "`coordinator` is not an object".into(),
            })?;
        coordinator.insert("url".into(), url.into());
        coordinator.insert("token".into(), worker_token.into());
        // The worker token is in it: owner-only, like the token files.
        write_json(&path, &config, true)
    }
}

/// A worker config for a local farm: the host's own defaults, mining off.
fn worker_config_template() -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "worker": { "id": LOCAL_WORKER_ID, "name": "Local worker 1" },
        "wallet": "local-farm-wallet",
        "coordinator": { "url": "", "token": "", "spool": "worker-data" },
        "limits": { "jobs_per_gpu": 1 },
        "prices": {},
        "gpu": "auto"
    })
}

fn write_json(path: &Path, value: &serde_json::Value, private: bool) -> Result<(), DataDirError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    write_file(path, text.as_bytes(), private)
}

/// Writes `path` atomically (temp file + rename), mode 0600 if `private`.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), DataDirError> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Reads the token in `path`, or creates one: 32 random bytes, hex, mode 0600.
fn ensure_token(path: &Path) -> Result<String, DataDirError> {
    if path.exists() {
        return DataDir::read_token(path);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| DataDirError::Invalid {
        path: path.to_path_buf(),
        message: format!("no randomness for a token: {e}"),
    })?;
    let token = hex::encode(bytes);
    write_file(path, format!("{token}\n").as_bytes(), true)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_created_once_and_private() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let data = DataDir::new(&dir.path().join("data"));
        let (creator, worker) = data.create()?;
        assert_eq!(creator.len(), 64);
        assert_ne!(creator, worker);
        assert_eq!(data.create()?, (creator, worker.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.worker_token_file())?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        data.write_worker_config("http://127.0.0.1:1", &worker)?;
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(data.worker_config_file())?)?;
        assert_eq!(config["coordinator"]["token"], worker.as_str());
        assert_eq!(config["coordinator"]["spool"], "worker-data");
        config["worker"]["id"] = "wkr-edited".into();
        std::fs::write(data.worker_config_file(), config.to_string())?;
        data.write_worker_config("http://127.0.0.1:2", &worker)?;
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(data.worker_config_file())?)?;
        assert_eq!(
            (
                config["worker"]["id"].as_str(),
                config["coordinator"]["url"].as_str()
            ),
            (Some("wkr-edited"), Some("http://127.0.0.1:2"))
        );
        Ok(())
    }
}
