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

use anyhow::{bail, Context};
use knoop_gossip::Store;
use serde::{Deserialize, Serialize};

use crate::store::{RocksStore, FORMAT_VERSION};

/// The manifest file in a backup directory.
pub const MANIFEST: &str = "backup.json";
const DEV_MASTER_KEY: &str = "master.key";

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
pub fn create(store: &RocksStore, data_dir: &Path, out: &Path) -> anyhow::Result<Manifest> {
    prepare_empty(out).context("backup directory")?;
    let checkpoint = out.join("store");
    store
        .checkpoint(&checkpoint)
        .with_context(|| format!("checkpoint into {}", checkpoint.display()))?;
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
    std::fs::write(out.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)
        .context("writing the manifest")?;
    tracing::info!(dir = %out.display(), transactions, digest = %manifest.digest, "backup written");
    Ok(manifest)
}

/// Restores the backup in `from` into `data_dir` (no node may run there; its store must not
/// exist yet). Returns the manifest, checked against the restored store.
pub fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<Manifest> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(from.join(MANIFEST))
            .with_context(|| format!("{} is not a knoop backup", from.display()))?,
    )
    .context("backup manifest")?;
    let newer = match (
        manifest.format_version.parse::<u32>(),
        FORMAT_VERSION.parse::<u32>(),
    ) {
        (Ok(b), Ok(ours)) => b > ours,
        _ => true,
    };
    if newer {
        bail!(
            "the backup has store format {}, this knoop reads up to {FORMAT_VERSION}: restore \
             it with knoop {} or newer",
            manifest.format_version,
            manifest.knoop_version
        );
    }
    let target = data_dir.join("store");
    if target.exists() && std::fs::read_dir(&target)?.next().is_some() {
        bail!(
            "{} already holds a store: stop the node and move it away (or choose another \
             data_dir) before restoring",
            target.display()
        );
    }
    std::fs::create_dir_all(&target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    copy_dir(&from.join("store"), &target)?;
    if manifest.master_key_file {
        let key = data_dir.join(DEV_MASTER_KEY);
        if !key.exists() {
            copy_private(&from.join(DEV_MASTER_KEY), &key)?;
        }
    }
    let (transactions, digest) = digest_of(&target)?;
    if digest != manifest.digest {
        bail!(
            "the restored store has set digest {digest} ({transactions} transactions), the \
             backup's manifest says {}: the backup is damaged",
            manifest.digest
        );
    }
    Ok(manifest)
}

/// Transaction count and set digest of the store at `path`.
fn digest_of(path: &Path) -> anyhow::Result<(u64, String)> {
    let store = RocksStore::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut set = store.load_set().context("reading the set")?;
    set.sort();
    let digest = knoop_gossip::log::set_digest(set.iter().map(|(_, id)| id));
    Ok((set.len() as u64, digest))
}

fn prepare_empty(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if std::fs::read_dir(dir)?.next().is_some() {
            bail!("{} exists and is not empty", dir.display());
        }
    } else {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let entries: Vec<PathBuf> = std::fs::read_dir(from)
        .with_context(|| format!("reading {}", from.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    for path in entries {
        let Some(name) = path.file_name() else {
            continue;
        };
        if path.is_dir() {
            let sub = to.join(name);
            std::fs::create_dir_all(&sub)?;
            copy_dir(&path, &sub)?;
        } else {
            std::fs::copy(&path, to.join(name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}

fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
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
        let manifest = create(&store, &data, &out).unwrap();
        assert_eq!(manifest.transactions, 5);
        assert_eq!(manifest.digest, digest, "the manifest digest is the log's");
        commit(6); // after the backup
        assert!(
            create(&store, &data, &out).is_err(),
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
