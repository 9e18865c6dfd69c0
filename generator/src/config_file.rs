//! `ConfigFile`: a fleet's generator configs kept in a file, for a broker
//! that keeps no retained messages across its own restarts (the embedded
//! one `datastream up` starts). `up` restores the generators from it at
//! start, instead of the defaults, and rewrites it after every change, so a
//! restarted `up` comes back with the fleet it had.
//!
//! The file is a JSON array of config documents, the same documents the
//! retained config messages carry; it is replaced whole (written beside
//! it, then renamed), so a crash mid-write leaves the previous one.

use crate::config::{parse_config, GeneratorConfig};
use crate::service::GeneratorService;
use crate::spec::{GeneratorSpec, SpecError};
use std::path::{Path, PathBuf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the file could not be used; `Display` names it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// It exists but could not be read or written.
    #[error("generator config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// It is not a JSON array of config documents.
    #[error("generator config file {path} is not a JSON array of generator configs: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// One of its configs is invalid.
    #[error("generator config file {path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The bad field.
        source: SpecError,
    },
}

/// A fleet's configs on disk.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
}

impl ConfigFile {
    /// The file at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configs saved last, each moved into `fleet`; `None` when there
    /// is no file yet (a first start: the caller seeds its defaults).
    pub fn load(&self, fleet: &str) -> Result<Option<Vec<GeneratorSpec>>, ConfigFileError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io(source)),
        };
        let documents: Vec<serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|e| ConfigFileError::Format {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        let config = |source| ConfigFileError::Config {
            path: self.path.clone(),
            source,
        };
        documents
            .iter()
            .map(|doc| {
                let bytes = serde_json::to_vec(doc).map_err(|e| ConfigFileError::Format {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
                parse_config(None, &bytes, fleet)
                    .and_then(|spec| spec.with_fleet(fleet))
                    .map_err(config)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Writes `service`'s generators of its own fleet now and after every
    /// change, until `stop`. A failed write is logged and tried again at
    /// the next change.
    pub fn keep(self, service: GeneratorService, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut changes = service.changes();
            loop {
                if let Err(error) = self.save(&service) {
                    tracing::warn!(%error, "could not save the generator configs");
                }
                // Stopping first: a service shutting down lets go of its
                // generators, which is no change to keep.
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
                if stop.is_cancelled() {
                    return;
                }
            }
        })
    }

    /// Replaces the file with `service`'s generators of its fleet.
    fn save(&self, service: &GeneratorService) -> Result<(), ConfigFileError> {
        let configs: Vec<GeneratorConfig> = service
            .list()
            .into_iter()
            .map(|view| view.config)
            .filter(|config| config.fleet == service.fleet_name())
            .collect();
        let json = serde_json::to_vec_pretty(&configs).map_err(|e| ConfigFileError::Format {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let mut staging = self.path.clone().into_os_string();
        staging.push(".new");
        std::fs::write(&staging, json).map_err(|e| self.io(e))?;
        std::fs::rename(&staging, &self.path).map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> ConfigFileError {
        ConfigFileError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_means_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = ConfigFile::new(dir.path().join("generators.json"));
        assert!(file.load("default").unwrap().is_none());
    }

    #[test]
    fn configs_are_read_back_into_the_fleet_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generators.json");
        std::fs::write(
            &path,
            r#"[{"name":"t1","fleet":"old","sensor_type":"temperature","id1":"ABC","id2":1,
                 "frequency_hz":2.0,"paused":true,"model":"random_walk","min":1,"max":9,"noise":0.5}]"#,
        )
        .unwrap();
        let specs = ConfigFile::new(&path).load("mine").unwrap().unwrap();
        assert_eq!(specs.len(), 1);
        let config = GeneratorConfig::from(&specs[0]);
        assert_eq!(config.fleet, "mine");
        assert_eq!(config.model, "random_walk");
        assert!(config.paused);
        assert_eq!((config.min, config.max, config.noise), (1.0, 9.0, 0.5));
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generators.json");
        std::fs::write(&path, "[{\"name\":\"t1\"").unwrap();
        let err = ConfigFile::new(&path).load("default").unwrap_err();
        assert!(err.to_string().contains("generators.json"), "{err}");
        std::fs::write(&path, r#"[{"name":"t1","sensor_type":"temperature"}]"#).unwrap();
        let err = ConfigFile::new(&path).load("default").unwrap_err();
        assert!(err.to_string().contains("id1"), "{err}");
    }
}
