//! What every operation of `sql/` works with: this backend's types, and
//! [`StoreCore`], the state the operations share.

pub(super) use super::super::{Backend, Conn, Db};
use crate::backend::BackendOps;
use crate::failure::Outcome;
use std::sync::Arc;

/// What every operation works with.
pub(crate) struct StoreCore {
    pub(super) backend: Arc<Backend>,
    /// Whether writes keep the rollups (`StoreOptions::rollups`).
    pub(super) rollups: bool,
    /// The refresher's and the retention sweeper's turn in this process
    /// (across processes, [`BackendOps::begin_refresh`] decides): they
    /// write the same catalog and rollup rows, and SQLite's named-lock
    /// stand-in lets everyone in.
    pub(super) maintenance: tokio::sync::Mutex<()>,
}

impl StoreCore {
    pub(super) fn new(backend: Backend, rollups: bool) -> Self {
        Self {
            backend: Arc::new(backend),
            rollups,
            maintenance: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) async fn conn(&self) -> Outcome<<Backend as BackendOps>::Pooled> {
        self.backend.conn().await
    }
}
