//! Backup and restore of a node's store (`specs/storage.md`, "Backup").
//!
//! A backup is a directory: `store/`, a rocksdb checkpoint taken while the node runs (one
//! consistent point in time; files are hard-linked when the backup is on the same file
//! system), and `backup.json`, the manifest with the set digest of that checkpoint. The
//! keystore lives in the store, so the backup holds the node's and its tenants' keys, still
//! sealed under the master key. The master key itself is copied only when it is the
//! development key file beside the store (`<data_dir>/master.key`); a production master key
//! stays in its secret store and is needed again to use the restored node.
//!
//! Restore writes a backup into an empty data directory while no node runs there, opens the
//! result (migrating an older format as any start does) and checks that its set digest is the
//! manifest's.

use std::path::{Path, PathBuf};

use knoop_gossip::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::store::{NodeStore, RocksStore, FORMAT_VERSION};

/// The manifest file in a backup directory.
pub const MANIFEST: &str = "backup.json";
const DEV_MASTER_KEY: &str = "master.key";

/// Why a backup or a restore failed. Each message names the file or directory at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} exists and is not empty", .0.display())]
    NotEmpty(PathBuf),
    #[error("{} is not a knoop backup: {source}", path.display())]
    NotABackup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("backup manifest: {0}")]
    Manifest(#[from] serde_json::Error),
    #[error(
        "the backup has store format {format}, this knoop reads up to {FORMAT_VERSION}: restore \
         it with knoop {version} or newer"
    )]
    NewerFormat { format: String, version: String },
    #[error(
        "{} already holds a store: stop the node and move it away (or choose another \
         data_dir) before restoring", .0.display()
    )]
    StoreExists(PathBuf),
    #[error(transparent)]
    Open(#[from] crate::store::OpenError),
    #[error("store {}: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error(
        "the restored store has set digest {digest} ({transactions} transactions), the \
         backup's manifest says {manifest}: the backup is damaged"
    )]
    Damaged {
        digest: String,
        transactions: u64,
        manifest: String,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io { what, path, source }
}

fn store_err(path: &Path) -> impl FnOnce(StoreError) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Store { path, source }
}

/// What a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The knoop version that wrote it.
    pub knoop_version: String,
    /// The store's on-disk format version.
    pub format_version: String,
    pub created_ms: u64,
    pub transactions: u64,
    /// The set digest of the checkpoint (`specs/transaction.md`, "Set digest").
    pub digest: String,
    /// Whether the development master key file was copied beside the store.
    pub master_key_file: bool,
}

/// Writes a backup of the running node's `store` into `out`, which must not exist or be
/// empty.
pub fn create(store: &dyn NodeStore, data_dir: &Path, out: &Path) -> Result<Manifest, BackupError> {
    prepare_empty(out)?;
    let checkpoint = out.join("store");
    store
        .checkpoint(&checkpoint)
        .map_err(store_err(&checkpoint))?;
    let (transactions, digest) = digest_of(&checkpoint)?;
    let dev_key = data_dir.join(DEV_MASTER_KEY);
    let master_key_file = dev_key.is_file();
    if master_key_file {
        copy_private(&dev_key, &out.join(DEV_MASTER_KEY))?;
    }
    let manifest = Manifest {
        knoop_version: env!("CARGO_PKG_VERSION").into(),
        format_version: FORMAT_VERSION.into(),
        created_ms: knoop_gossip::tx::now_ms(),
        transactions,
        digest,
        master_key_file,
    };
    let path = out.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .map_err(io("writing the manifest", &path))?;
    tracing::info!(dir = %out.display(), transactions, digest = %manifest.digest, "backup written");
    Ok(manifest)
}

/// Restores the backup in `from` into `data_dir` (no node may run there; its store must not
/// exist yet). Returns the manifest, checked against the restored store.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Manifest, BackupError> {
    let bytes = std::fs::read(from.join(MANIFEST)).map_err(|source| BackupError::NotABackup {
        path: from.to_path_buf(),
        source,
    })?;
    let manifest: Manifest = serde_json::from_slice(&bytes)?;
    let newer = match (
        manifest.format_version.parse::<u32>(),
        FORMAT_VERSION.parse::<u32>(),
    ) {
        (Ok(b), Ok(ours)) => b > ours,
        _ => true,
    };
    if newer {
        return Err(BackupError::NewerFormat {
            format: manifest.format_version,
            version: manifest.knoop_version,
        });
    }
    let target = data_dir.join("store");
    if target.exists()
        && std::fs::read_dir(&target)
            .map_err(io("reading", &target))?
            .next()
            .is_some()
    {
        return Err(BackupError::StoreExists(target));
    }
    std::fs::create_dir_all(&target).map_err(io("cannot create", &target))?;
    copy_dir(&from.join("store"), &target)?;
    if manifest.master_key_file {
        let key = data_dir.join(DEV_MASTER_KEY);
        if !key.exists() {
            copy_private(&from.join(DEV_MASTER_KEY), &key)?;
        }
    }
    let (transactions, digest) = digest_of(&target)?;
    if digest != manifest.digest {
        return Err(BackupError::Damaged {
            digest,
            transactions,
            manifest: manifest.digest,
        });
    }
    Ok(manifest)
}

/// Transaction count and set digest of the store at `path`.
fn digest_of(path: &Path) -> Result<(u64, String), BackupError> {
    let store = RocksStore::open(path)?;
    let mut set = store.load_set().map_err(store_err(path))?;
    set.sort();
    let digest = knoop_gossip::log::set_digest(set.iter().map(|(_, id)| id));
    Ok((set.len() as u64, digest))
}

fn prepare_empty(dir: &Path) -> Result<(), BackupError> {
    if dir.exists() {
        if std::fs::read_dir(dir)
            .map_err(io("reading", dir))?
            .next()
            .is_some()
        {
            return Err(BackupError::NotEmpty(dir.to_path_buf()));
        }
    } else {
        std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), BackupError> {
    let entries: Vec<PathBuf> = std::fs::read_dir(from)
        .map_err(io("reading", from))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io("reading", from))?;
    for path in entries {
        let Some(name) = path.file_name() else {
            continue;
        };
        if path.is_dir() {
            let sub = to.join(name);
            std::fs::create_dir_all(&sub).map_err(io("cannot create", &sub))?;
            copy_dir(&path, &sub)?;
        } else {
            std::fs::copy(&path, to.join(name)).map_err(io("copying", &path))?;
        }
    }
    Ok(())
}

fn copy_private(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::copy(from, to).map_err(io("copying", from))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
            .map_err(io("setting permissions of", to))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("knoop-backup-{name}-{}", rand::random::<u64>()))
    }

    #[test]
    fn a_restored_store_has_the_digest_of_the_backup_and_later_writes_are_not_in_it() {
        use knoop_gossip::{EmbeddedKeys, Log, LogConfig, Source, TxBuilder};
        use std::sync::Arc;
        let (data, out, restored) = (tmp("data"), tmp("out"), tmp("restored"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join(DEV_MASTER_KEY), [7u8; 64]).unwrap();
        let store = Arc::new(RocksStore::open(&data.join("store")).unwrap());
        let mut log = Log::open(
            store.clone(),
            Arc::new(EmbeddedKeys::default()),
            LogConfig::default(),
        )
        .unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let mut commit = |i: u8| {
            let tx = TxBuilder::new("t/x")
                .prevs(log.heads(16))
                .sign(&key, vec![i])
                .unwrap();
            assert!(log.ingest(vec![tx], Source::Local).results[0].is_ok());
            log.index().digest()
        };
        let mut digest = String::new();
        for i in 0..5 {
            digest = commit(i);
        }
        let manifest = create(store.as_ref(), &data, &out).unwrap();
        assert_eq!(manifest.transactions, 5);
        assert_eq!(manifest.digest, digest, "the manifest digest is the log's");
        commit(6); // after the backup
        assert!(
            create(store.as_ref(), &data, &out).is_err(),
            "wrote into a non-empty backup dir"
        );

        let back = restore(&out, &restored).unwrap();
        assert_eq!(back, manifest);
        assert_eq!(digest_of(&restored.join("store")).unwrap().0, 5);
        assert_eq!(
            std::fs::read(restored.join(DEV_MASTER_KEY)).unwrap(),
            vec![7u8; 64]
        );
        // A second restore into the same place is refused; a damaged manifest is caught.
        assert!(restore(&out, &restored).is_err());
        let mut bad = manifest.clone();
        bad.digest = "5-00".into();
        std::fs::write(out.join(MANIFEST), serde_json::to_vec(&bad).unwrap()).unwrap();
        let err = restore(&out, &tmp("again")).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
        for d in [data, out, restored] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
