//! How a store is opened: [`StoreOptions`], [`InsertMethod`], [`Migrations`].

/// Whether opening a store applies pending migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Apply them (the primary database).
    Run,
    /// Leave the schema alone (a read replica follows the primary).
    Skip,
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Connections the pool keeps open (`None`: the backend's default,
    /// [`MYSQL_POOL_SIZE`](crate::MYSQL_POOL_SIZE) or [`SQLITE_POOL_SIZE`](crate::SQLITE_POOL_SIZE)).
    pub pool_size: Option<usize>,
    /// Whether writes keep the hourly rollups and the device catalog
    /// (`ROLLUPS`, on by default). Off, analytics read raw rows; turned on
    /// again, every hour is rebuilt.
    pub rollups: bool,
    /// How batches are written (`INGEST_WRITER`).
    pub insert_method: InsertMethod,
}

/// How a batch of readings is written to MySQL/MariaDB (SQLite always
/// writes multi-row INSERTs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InsertMethod {
    /// `LOAD DATA LOCAL INFILE` streamed from memory where the server
    /// allows it (`local_infile`), else multi-row `INSERT IGNORE`: found
    /// out at the first batch and logged once.
    #[default]
    Auto,
    /// Always multi-row `INSERT IGNORE`.
    Insert,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: None,
            rollups: true,
            insert_method: InsertMethod::Auto,
        }
    }
}
