//! The embedded store, the default: rocksdb with one column family per kind of record
//! (layout: `specs/storage.md`). Implements [`NodeStore`].

use std::path::Path;

use knoop_gossip::{CommitBatch, Hash32, Store, StoreError, StoredTx, TxId};

use super::node_store::{Family, KeyValue, NodeStore};
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};

/// On-disk format version written in `meta`.
pub const FORMAT_VERSION: &str = "3";

const CF_TX: &str = "tx";
const CF_PAYLOAD: &str = "payload";
const CF_BY_TIME: &str = "by_time";
const CF_BY_SEQ: &str = "by_seq";
const CF_HEADS: &str = "heads";
const CF_PEERS: &str = "peers";
const CF_META: &str = "meta";
const CF_BY_TYPE: &str = "by_type";
/// Secrets of the keystore (`crate::identity::keystore`), encrypted.
const CF_KEYS: &str = "keys";
/// Private transactions this node takes part in: sealed blobs and records (format 3).
const CF_PRIVATE: &str = "private";
/// The localisation index: entries by slot tag (format 3).
const CF_LOC: &str = "loc";
const ALL_CFS: [&str; 11] = [
    CF_TX, CF_PAYLOAD, CF_BY_TIME, CF_BY_SEQ, CF_HEADS, CF_PEERS, CF_META, CF_BY_TYPE, CF_KEYS,
    CF_PRIVATE, CF_LOC,
];
const KEY_FORMAT: &[u8] = b"format_version";

/// Opening the store failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open store at {path}: {source}")]
    Rocks {
        path: String,
        source: rocksdb::Error,
    },
    #[error(
        "the store at {path} is damaged: {source}{files}. Nothing was changed. Restore a backup \
         into an empty data directory (knoop restore --from <backup>); the network gives the \
         node back what came after it"
    )]
    Corrupt {
        path: String,
        source: rocksdb::Error,
        /// `" (in <file>, …)"`: the damaged files rocksdb's own log names, when its error
        /// does not (a damaged write-ahead log).
        files: String,
    },
    #[error(
        "store at {path} has format version {found}, this knoop reads version {FORMAT_VERSION}"
    )]
    Version { path: String, found: String },
    #[error("store at {path}: migration to format {FORMAT_VERSION} failed: {reason}")]
    Migration { path: String, reason: String },
}

/// The files of the store at `dir` that rocksdb's info log (`<dir>/LOG`) reports damaged at
/// the failed open, as `" (in a, b)"`; empty when `said` (its error) names the file already or
/// the log names none.
fn damaged_files(dir: &Path, said: &str) -> String {
    const TAIL: usize = 256 * 1024;
    let Ok(log) = std::fs::read(dir.join("LOG")) else {
        return String::new();
    };
    let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(TAIL)..]).into_owned();
    let prefix = format!("{}/", dir.display());
    let mut files: Vec<String> = Vec::new();
    for line in tail.lines().filter(|l| l.contains("Corruption")) {
        for word in line.split_whitespace() {
            if let Some(name) = word.strip_prefix(&prefix) {
                let name = name.trim_end_matches(':').to_owned();
                if !name.is_empty() && !said.contains(&name) && !files.contains(&name) {
                    files.push(name);
                }
            }
        }
    }
    if files.is_empty() {
        String::new()
    } else {
        format!(" (in {})", files.join(", "))
    }
}

/// rocksdb-backed store.
pub struct RocksStore {
    db: std::sync::Arc<DB>,
    /// The store's directory, whose file system's free space [`RocksStore::room`] checks.
    dir: std::path::PathBuf,
    /// Bytes kept free on that file system: new transactions and private records are refused
    /// below it (0: no reserve).
    reserve: std::sync::atomic::AtomicU64,
    /// Serialises the read-then-write of [`NodeStore::take`] and [`NodeStore::insert_new`]
    /// (one process opens a rocksdb store, so a lock in it is enough).
    conditional: std::sync::Mutex<()>,
}

fn err(e: rocksdb::Error) -> StoreError {
    // A write rocksdb could not make for want of space (past the reserve, or another process
    // filled the disk) is a full disk too.
    if e.kind() == rocksdb::ErrorKind::IOError && e.as_ref().contains("No space left") {
        return StoreError::disk_full(e.as_ref());
    }
    StoreError(e.to_string())
}

impl RocksStore {
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let p = path.display().to_string();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // A write torn by a crash at the log's end is dropped (it was never acknowledged: the
        // write had not returned); a damaged record before it stops the open instead of
        // silently dropping everything after it (rocksdb's default, point-in-time recovery).
        opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        // Bound memtable memory across all column families.
        opts.set_db_write_buffer_size(64 << 20);
        let mut point = Options::default();
        point.set_compression_type(rocksdb::DBCompressionType::Lz4);
        point.set_write_buffer_size(16 << 20);
        let mut block = rocksdb::BlockBasedOptions::default();
        block.set_bloom_filter(10.0, false);
        point.set_block_based_table_factory(&block);
        let cfs = ALL_CFS
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, point.clone()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|source| {
            if source.kind() == rocksdb::ErrorKind::Corruption {
                let files = damaged_files(path, source.as_ref());
                OpenError::Corrupt {
                    path: p.clone(),
                    files,
                    source,
                }
            } else {
                OpenError::Rocks {
                    path: p.clone(),
                    source,
                }
            }
        })?;
        let store = RocksStore {
            db: std::sync::Arc::new(db),
            dir: path.to_path_buf(),
            reserve: std::sync::atomic::AtomicU64::new(0),
            conditional: std::sync::Mutex::new(()),
        };
        let meta = store.cf(CF_META);
        let rocks = |source| OpenError::Rocks {
            path: p.clone(),
            source,
        };
        let found = store.db.get_cf(meta, KEY_FORMAT).map_err(rocks)?;
        match found.as_deref() {
            None => {
                if store
                    .db
                    .iterator_cf(store.cf(CF_TX), IteratorMode::Start)
                    .next()
                    .is_some()
                {
                    return Err(OpenError::Version {
                        path: p,
                        found: "none (data without a format marker)".into(),
                    });
                }
                store
                    .db
                    .put_cf(meta, KEY_FORMAT, FORMAT_VERSION)
                    .map_err(rocks)?;
            }
            Some(v) if v == FORMAT_VERSION.as_bytes() => {}
            Some(b"2") => store.migrate_2_to_3().map_err(rocks)?,
            Some(b"1") => {
                store.migrate_1_to_2().map_err(|e| OpenError::Migration {
                    path: p.clone(),
                    reason: e.0,
                })?;
                store.migrate_2_to_3().map_err(rocks)?;
            }
            Some(v) => {
                return Err(OpenError::Version {
                    path: p,
                    found: String::from_utf8_lossy(v).into_owned(),
                })
            }
        }
        Ok(store)
    }

    /// Format 1 had no by-type index: build it from the stored envelopes, then mark format 2,
    /// in one atomic write.
    fn migrate_1_to_2(&self) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        let by_type = self.cf(CF_BY_TYPE);
        let mut n = 0u64;
        for item in self.db.iterator_cf(self.cf(CF_TX), IteratorMode::Start) {
            let (k, v) = item.map_err(err)?;
            let id = id_from(&k)?;
            let t = decode_tx(&v)?;
            let tx = knoop_gossip::Transaction::parse(&t.envelope, None)
                .map_err(|e| StoreError(format!("stored transaction {id}: {e}")))?;
            wb.put_cf(by_type, type_key(&tx.header().cty, t.seq), id.0);
            n += 1;
        }
        wb.put_cf(self.cf(CF_META), KEY_FORMAT, "2");
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo).map_err(err)?;
        tracing::info!(
            transactions = n,
            "store migrated from format 1 to 2 (by-type index)"
        );
        Ok(())
    }

    /// Format 3 only adds the `private` family, which open created empty: mark the format.
    fn migrate_2_to_3(&self) -> Result<(), rocksdb::Error> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.put_cf_opt(self.cf(CF_META), KEY_FORMAT, "3", &wo)?;
        tracing::info!("store migrated from format 2 to 3 (private family)");
        Ok(())
    }

    /// `Ok` while the file system has more than the reserve free.
    fn room(&self) -> Result<(), StoreError> {
        let reserve = self.reserve.load(std::sync::atomic::Ordering::Relaxed);
        if reserve == 0 {
            return Ok(());
        }
        let Ok(fs) = rustix::fs::statvfs(&self.dir) else {
            return Ok(()); // the write itself will say what is wrong
        };
        let free = fs.f_bavail.saturating_mul(fs.f_frsize);
        if free < reserve {
            return Err(StoreError::disk_full(format!(
                "{} MiB free on the disk of {}, the node keeps {} MiB (reserved_disk_mib); \
                 writes resume when space is freed",
                free >> 20,
                self.dir.display(),
                reserve >> 20
            )));
        }
        Ok(())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Every family in ALL_CFS is created at open.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    fn family_cf(&self, family: Family) -> &rocksdb::ColumnFamily {
        self.cf(match family {
            Family::Meta => CF_META,
            Family::Private => CF_PRIVATE,
            Family::Loc => CF_LOC,
            Family::Keys => CF_KEYS,
        })
    }
}

impl NodeStore for RocksStore {
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.family_cf(family), key).map_err(err)
    }

    fn scan(&self, family: Family, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            self.family_cf(family),
            IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(err)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn write(
        &self,
        family: Family,
        puts: &[KeyValue],
        deletes: &[Vec<u8>],
        durable: bool,
    ) -> Result<(), StoreError> {
        // Private records are new data: refused below the reserve, like new transactions.
        // Settings, the index and keys go on (they are small, and the index is rebuilt).
        if family == Family::Private && !puts.is_empty() {
            self.room()?;
        }
        let cf = self.family_cf(family);
        let mut wb = WriteBatch::default();
        for (k, v) in puts {
            wb.put_cf(cf, k, v);
        }
        for k in deletes {
            wb.delete_cf(cf, k);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(durable);
        self.db.write_opt(wb, &wo).map_err(err)
    }

    fn take(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let _one = self
            .conditional
            .lock()
            .map_err(|_| StoreError("the store's conditional lock is poisoned".into()))?;
        let found = self.get(family, key)?;
        if found.is_some() {
            self.write(family, &[], &[key.to_vec()], true)?;
        }
        Ok(found)
    }

    fn insert_new(&self, family: Family, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        let _one = self
            .conditional
            .lock()
            .map_err(|_| StoreError("the store's conditional lock is poisoned".into()))?;
        if self.get(family, key)?.is_some() {
            return Ok(false);
        }
        self.write(family, &[(key.to_vec(), value.to_vec())], &[], true)?;
        Ok(true)
    }

    /// Approximate bytes on disk (SST files).
    fn disk_bytes(&self) -> u64 {
        ALL_CFS
            .iter()
            .filter_map(|n| {
                self.db
                    .property_int_value_cf(self.cf(n), "rocksdb.total-sst-files-size")
                    .ok()
                    .flatten()
            })
            .sum()
    }

    /// Flushes memtables (used at shutdown so the next start reads no WAL).
    fn flush(&self) -> Result<(), StoreError> {
        for n in ALL_CFS {
            self.db.flush_cf(self.cf(n)).map_err(err)?;
        }
        Ok(())
    }

    /// Keeps `bytes` free on the store's file system (`reserved_disk_mib`): below that, new
    /// transactions and private records are refused as a full disk, while reads, indexes of
    /// what is stored, the audit log and settings go on. Writes resume when space returns.
    fn set_reserve(&self, bytes: u64) {
        self.reserve
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// A rocksdb checkpoint: memtables are flushed first, SST files hard-linked where the file
    /// system allows.
    fn checkpoint(&self, path: &std::path::Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(path))
            .map_err(err)
    }

    fn kind(&self) -> &'static str {
        "rocksdb"
    }
}

fn decode_tx(v: &[u8]) -> Result<StoredTx, StoreError> {
    if v.len() < 24 {
        return Err(StoreError("tx record shorter than 24 bytes".into()));
    }
    let n = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().unwrap_or([0; 8]));
    let envelope = std::str::from_utf8(&v[24..])
        .map_err(|_| StoreError("tx record envelope is not UTF-8".into()))?
        .to_owned();
    Ok(StoredTx {
        seq: n(0),
        sigt: n(8),
        lc: n(16),
        envelope,
    })
}

fn encode_tx(t: &StoredTx) -> Vec<u8> {
    let mut v = Vec::with_capacity(24 + t.envelope.len());
    v.extend_from_slice(&t.seq.to_be_bytes());
    v.extend_from_slice(&t.sigt.to_be_bytes());
    v.extend_from_slice(&t.lc.to_be_bytes());
    v.extend_from_slice(t.envelope.as_bytes());
    v
}

/// by_type key: content type, a 0 byte, then the arrival seq (8 bytes big-endian).
fn type_key(cty: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(cty.len() + 9);
    k.extend_from_slice(cty.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn id_from(bytes: &[u8]) -> Result<TxId, StoreError> {
    let a: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError("id is not 32 bytes".into()))?;
    Ok(Hash32(a))
}

impl Store for RocksStore {
    fn get_tx(&self, id: &TxId) -> Result<Option<StoredTx>, StoreError> {
        match self.db.get_pinned_cf(self.cf(CF_TX), id.0).map_err(err)? {
            Some(v) => Ok(Some(decode_tx(&v)?)),
            None => Ok(None),
        }
    }

    fn contains_tx(&self, id: &TxId) -> Result<bool, StoreError> {
        let cf = self.cf(CF_TX);
        if !self.db.key_may_exist_cf(cf, id.0) {
            return Ok(false);
        }
        Ok(self.db.get_pinned_cf(cf, id.0).map_err(err)?.is_some())
    }

    fn get_payload(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(CF_PAYLOAD), hash.0).map_err(err)
    }

    fn commit(&self, batch: CommitBatch) -> Result<(), StoreError> {
        self.room()?;
        let mut wb = WriteBatch::default();
        let (tx, by_time, by_seq, heads, payload) = (
            self.cf(CF_TX),
            self.cf(CF_BY_TIME),
            self.cf(CF_BY_SEQ),
            self.cf(CF_HEADS),
            self.cf(CF_PAYLOAD),
        );
        for (id, t) in &batch.txs {
            wb.put_cf(tx, id.0, encode_tx(t));
            let mut k = [0u8; 40];
            k[..8].copy_from_slice(&t.sigt.to_be_bytes());
            k[8..].copy_from_slice(&id.0);
            wb.put_cf(by_time, k, []);
            wb.put_cf(by_seq, t.seq.to_be_bytes(), id.0);
        }
        for (h, p) in &batch.payloads {
            wb.put_cf(payload, h.0, p);
        }
        for h in &batch.heads_removed {
            wb.delete_cf(heads, h.0);
        }
        for h in &batch.heads_added {
            wb.put_cf(heads, h.0, []);
        }
        let by_type = self.cf(CF_BY_TYPE);
        for (cty, seq, id) in &batch.by_type {
            wb.put_cf(by_type, type_key(cty, *seq), id.0);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(batch.durable);
        self.db.write_opt(wb, &wo).map_err(err)
    }

    fn load_set(&self) -> Result<Vec<(u64, TxId)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_BY_TIME), IteratorMode::Start)
        {
            let (k, _) = item.map_err(err)?;
            if k.len() != 40 {
                return Err(StoreError("by_time key is not 40 bytes".into()));
            }
            let sigt = u64::from_be_bytes(k[..8].try_into().unwrap_or([0; 8]));
            out.push((sigt, id_from(&k[8..])?));
        }
        Ok(out)
    }

    fn load_heads(&self) -> Result<Vec<TxId>, StoreError> {
        self.db
            .iterator_cf(self.cf(CF_HEADS), IteratorMode::Start)
            .map(|r| r.map_err(err).and_then(|(k, _)| id_from(&k)))
            .collect()
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        match self
            .db
            .iterator_cf(self.cf(CF_BY_SEQ), IteratorMode::End)
            .next()
        {
            Some(r) => {
                let (k, _) = r.map_err(err)?;
                let a: [u8; 8] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError("by_seq key is not 8 bytes".into()))?;
                Ok(u64::from_be_bytes(a))
            }
            None => Ok(0),
        }
    }

    fn list_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, TxId)>, StoreError> {
        let start = (after.saturating_add(1)).to_be_bytes();
        let mut out = Vec::new();
        for r in self
            .db
            .iterator_cf(
                self.cf(CF_BY_SEQ),
                IteratorMode::From(&start, rocksdb::Direction::Forward),
            )
            .take(limit)
        {
            let (k, v) = r.map_err(err)?;
            let a: [u8; 8] = k
                .as_ref()
                .try_into()
                .map_err(|_| StoreError("by_seq key is not 8 bytes".into()))?;
            out.push((u64::from_be_bytes(a), id_from(&v)?));
        }
        Ok(out)
    }

    fn list_by_type(
        &self,
        cty: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, TxId)>, StoreError> {
        let start = type_key(cty, after.saturating_add(1));
        let prefix_len = cty.len() + 1;
        let mut out = Vec::new();
        for r in self.db.iterator_cf(
            self.cf(CF_BY_TYPE),
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        ) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = r.map_err(err)?;
            if k.len() != prefix_len + 8 || k[..prefix_len] != start[..prefix_len] {
                break;
            }
            let a: [u8; 8] = k[prefix_len..]
                .try_into()
                .map_err(|_| StoreError("by_type key has no seq".into()))?;
            out.push((u64::from_be_bytes(a), id_from(&v)?));
        }
        Ok(out)
    }

    fn save_peers(&self, peers: &[(String, Vec<String>)]) -> Result<(), StoreError> {
        let cf = self.peers_cf();
        let mut wb = WriteBatch::default();
        for r in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, _) = r.map_err(err)?;
            wb.delete_cf(cf, k);
        }
        for (id, addrs) in peers {
            let v = serde_json::to_vec(addrs).map_err(|e| StoreError(e.to_string()))?;
            wb.put_cf(cf, id.as_bytes(), v);
        }
        self.db.write(wb).map_err(err)
    }

    fn load_peers(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let mut out = Vec::new();
        for r in self.db.iterator_cf(self.peers_cf(), IteratorMode::Start) {
            let (k, v) = r.map_err(err)?;
            // A damaged entry is skipped: remembered peers are a hint, not data.
            let (Ok(id), Ok(addrs)) = (
                std::str::from_utf8(&k),
                serde_json::from_slice::<Vec<String>>(&v),
            ) else {
                continue;
            };
            out.push((id.to_owned(), addrs));
        }
        Ok(out)
    }
}

impl RocksStore {
    /// Peers CF: key = peer id text, value = JSON array of multiaddr texts.
    fn peers_cf(&self) -> &rocksdb::ColumnFamily {
        self.cf(CF_PEERS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knoop_gossip::{EmbeddedKeys, Log, LogConfig, Source, TxBuilder};
    use std::sync::Arc;

    #[test]
    fn format_2_opens_as_3_with_the_private_family() {
        let dir = std::env::temp_dir().join(format!("knoop-store-v2-{}", rand::random::<u64>()));
        {
            let store = RocksStore::open(&dir).unwrap();
            store.db.put_cf(store.cf(CF_META), KEY_FORMAT, "2").unwrap();
        }
        let store = RocksStore::open(&dir).unwrap();
        let marker = store.db.get_cf(store.cf(CF_META), KEY_FORMAT).unwrap();
        assert_eq!(marker.as_deref(), Some(FORMAT_VERSION.as_bytes()));
        store.put_private(b"r/1", b"x").unwrap();
        store.put_private(b"r/2", b"y").unwrap();
        store.put_private(b"s/1", b"z").unwrap();
        assert_eq!(
            store.get_private(b"r/1").unwrap().as_deref(),
            Some(&b"x"[..])
        );
        assert_eq!(store.scan_private(b"r/").unwrap().len(), 2);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn format_1_is_migrated_with_a_by_type_index() {
        let dir = std::env::temp_dir().join(format!("knoop-store-test-{}", rand::random::<u64>()));
        let key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        {
            let store = Arc::new(RocksStore::open(&dir).unwrap());
            let mut log = Log::open(
                store.clone(),
                Arc::new(EmbeddedKeys::default()),
                LogConfig::default(),
            )
            .unwrap();
            for i in 0..6u8 {
                let cty = if i % 2 == 0 { "t/even" } else { "t/odd" };
                let tx = TxBuilder::new(cty)
                    .prevs(log.heads(16))
                    .sign(&key, vec![i])
                    .unwrap();
                assert!(log.ingest(vec![tx], Source::Local).results[0].is_ok());
            }
            assert_eq!(store.list_by_type("t/even", 0, 10).unwrap().len(), 3);
            // Turn it into a format-1 store: no by_type index, marker "1".
            let cf = store.cf(CF_BY_TYPE);
            let keys: Vec<_> = store
                .db
                .iterator_cf(cf, IteratorMode::Start)
                .map(|r| r.unwrap().0)
                .collect();
            for k in keys {
                store.db.delete_cf(cf, k).unwrap();
            }
            store.db.put_cf(store.cf(CF_META), KEY_FORMAT, "1").unwrap();
            assert!(store.list_by_type("t/even", 0, 10).unwrap().is_empty());
        }
        let store = RocksStore::open(&dir).unwrap();
        let even = store.list_by_type("t/even", 0, 10).unwrap();
        let odd = store.list_by_type("t/odd", 0, 10).unwrap();
        assert_eq!(
            even.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![1, 3, 5]
        );
        assert_eq!(
            odd.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![2, 4, 6]
        );
        assert_eq!(store.list_by_type("t/even", 3, 10).unwrap().len(), 1);
        assert_eq!(
            store
                .db
                .get_cf(store.cf(CF_META), KEY_FORMAT)
                .unwrap()
                .unwrap(),
            FORMAT_VERSION.as_bytes()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_an_unknown_format_version() {
        let dir = std::env::temp_dir().join(format!("knoop-store-test-{}", rand::random::<u64>()));
        {
            let s = RocksStore::open(&dir).unwrap();
            s.db.put_cf(s.cf(CF_META), KEY_FORMAT, "99").unwrap();
        }
        assert!(matches!(
            RocksStore::open(&dir),
            Err(OpenError::Version { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A damaged table file or manifest stops the store from opening, with the file named
    /// (RELIABILITY.md: a corrupted store).
    #[test]
    fn a_damaged_file_is_refused_by_name() {
        for victim in ["sst", "MANIFEST", "log"] {
            let dir =
                std::env::temp_dir().join(format!("knoop-store-test-{}", rand::random::<u64>()));
            {
                let s = RocksStore::open(&dir).unwrap();
                for i in 0..2000u32 {
                    s.db.put_cf(s.cf(CF_META), format!("k{i}"), [7u8; 100])
                        .unwrap();
                }
                if victim != "log" {
                    s.db.flush_cf(s.cf(CF_META)).unwrap();
                }
            }
            let file = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    match victim {
                        "sst" => name.ends_with(".sst"),
                        "log" => name.ends_with(".log") && std::fs::metadata(p).unwrap().len() > 0,
                        _ => name.starts_with("MANIFEST"),
                    }
                })
                .unwrap();
            let mut bytes = std::fs::read(&file).unwrap();
            let n = bytes.len();
            // The table's footer (its magic number), the manifest's records, or a stretch in
            // the middle of the write-ahead log (acknowledged writes after it).
            let range = match victim {
                "sst" => n - 48..n,
                "log" => n / 2..n / 2 + 64,
                _ => 0..n,
            };
            bytes[range].iter_mut().for_each(|b| *b = 0xa5);
            std::fs::write(&file, &bytes).unwrap();
            let err = RocksStore::open(&dir)
                .err()
                .expect("a damaged store is refused");
            let text = err.to_string();
            assert!(matches!(err, OpenError::Corrupt { .. }), "{victim}: {text}");
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            assert!(text.contains(&name), "{victim}: {text}");
            assert!(text.contains("knoop restore"), "{text}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
