//! The durable store, behind one interface ([`NodeStore`]: the log and the node's record
//! families) with two implementations: rocksdb in the data directory, the embedded default,
//! and PostgreSQL, where a vendor keeps its nodes' state in its own database (`[store]
//! postgres`). Layouts: `specs/storage.md`.

pub mod expiring;
pub mod node_store;
pub mod postgres;
pub mod rocks;

use std::sync::Arc;

pub use node_store::{read_by_type, ByTypePage, Family, KeyValue, NodeStore};
pub use postgres::PgStore;
pub use rocks::{OpenError, RocksStore, FORMAT_VERSION};

use crate::config::Config;

#[cfg(test)]
pub mod conformance;

/// Opens the store the configuration names: PostgreSQL when `store.postgres` is set, else
/// rocksdb at `<data_dir>/store`.
pub fn open(cfg: &Config) -> anyhow::Result<Arc<dyn NodeStore>> {
    match &cfg.store.postgres {
        Some(conn) => {
            let password = match &cfg.store.postgres_password_file {
                Some(file) => Some(
                    std::fs::read_to_string(file)
                        .map_err(|e| {
                            anyhow::anyhow!("store.postgres_password_file {}: {e}", file.display())
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                ),
                None => None,
            };
            let store = PgStore::open(conn, password, cfg.store.postgres_connections)?;
            Ok(Arc::new(store))
        }
        None => {
            let store = RocksStore::open(&cfg.data_dir.join("store"))?;
            store.set_reserve(cfg.reserved_disk_mib << 20);
            Ok(Arc::new(store))
        }
    }
}
