//! The node's store interface, [`NodeStore`]: the log ([`knoop_gossip::Store`]) plus the
//! node's own record families (settings, private records, the localisation index, the sealed
//! keystore), each an ordered map of byte keys to byte values. Both implementations (rocksdb,
//! PostgreSQL) keep the same keys, so the layers above never know which one they run on.

use knoop_gossip::{Store, StoreError};

/// A raw record: key and value bytes.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Transactions of one content type read from the by-type index: `(last seq read,
/// [(seq, transaction, content)])`.
pub type ByTypePage = (u64, Vec<(u64, knoop_gossip::Transaction, Vec<u8>)>);

/// The node's record families besides the log (`specs/storage.md` §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Node settings and markers (the trust table, indexer positions), under `settings/`.
    Meta,
    /// Private transactions, the audit log, consent and localisation records.
    Private,
    /// The localisation index: entries by slot tag.
    Loc,
    /// The keystore's sealed secrets.
    Keys,
}

impl Family {
    /// Every family, in a fixed order.
    pub const ALL: [Family; 4] = [Family::Meta, Family::Private, Family::Loc, Family::Keys];

    /// The family's number in a store that keeps all families in one table (PostgreSQL).
    pub fn number(self) -> i16 {
        match self {
            Family::Meta => 1,
            Family::Private => 2,
            Family::Loc => 3,
            Family::Keys => 4,
        }
    }
}

/// The prefix of node settings in [`Family::Meta`].
const SETTINGS: &[u8] = b"settings/";

/// The node's durable store. Implementations make every [`NodeStore::write`] atomic, and
/// durable when asked.
pub trait NodeStore: Store {
    /// The value of `key` in `family`.
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every record of `family` whose key starts with `prefix`, in key order.
    fn scan(&self, family: Family, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;

    /// Puts `puts` and deletes `deletes` in `family`, atomically; fsynced when `durable`.
    fn write(
        &self,
        family: Family,
        puts: &[KeyValue],
        deletes: &[Vec<u8>],
        durable: bool,
    ) -> Result<(), StoreError>;

    /// Removes `key` from `family` and returns its value, atomically: of several callers (on
    /// any replica of a shared store) taking the same key, one gets it. Fsynced.
    fn take(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes `key` only when `family` holds no record under it, atomically: `false` when it
    /// did (a replay). Fsynced.
    fn insert_new(&self, family: Family, key: &[u8], value: &[u8]) -> Result<bool, StoreError>;

    /// Approximate bytes the store takes on disk.
    fn disk_bytes(&self) -> u64;

    /// Makes everything written so far durable and cheap to reopen (at shutdown).
    fn flush(&self) -> Result<(), StoreError>;

    /// Keeps `bytes` free on the store's disk (`reserved_disk_mib`), where the node manages
    /// that disk itself.
    fn set_reserve(&self, bytes: u64);

    /// A consistent copy of the whole store in the directory `path` (`knoop backup`).
    fn checkpoint(&self, path: &std::path::Path) -> Result<(), StoreError>;

    /// What the store is, for logs and `/status`: `rocksdb` or `postgresql`.
    fn kind(&self) -> &'static str;

    /// Takes or renews the store's leadership for `holder` for `ttl` (`specs/storage.md`
    /// §9.6): `Some(epoch)` while `holder` leads, `None` while another does. Once granted, every
    /// write of this handle is fenced: refused when the leadership it holds has passed on. A
    /// store that only one process can open at a time (rocksdb) is always led by it.
    fn lead(&self, holder: &str, ttl: std::time::Duration) -> Result<Option<u64>, StoreError> {
        let _ = (holder, ttl);
        Ok(Some(1))
    }

    /// Gives up the leadership `holder` holds (a clean shutdown), so that a standby takes over
    /// at its next try instead of waiting for the lease to run out.
    fn step_down(&self, holder: &str) -> Result<(), StoreError> {
        let _ = holder;
        Ok(())
    }

    /// A record of the `private` family (fsynced on write).
    fn put_private(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.write(
            Family::Private,
            &[(key.to_vec(), value.to_vec())],
            &[],
            true,
        )
    }

    /// Records of the `private` family, in one fsynced batch.
    fn put_private_many(&self, rows: &[KeyValue]) -> Result<(), StoreError> {
        self.write(Family::Private, rows, &[], true)
    }

    fn get_private(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(Family::Private, key)
    }

    /// Every `(key, value)` of the `private` family under `prefix`.
    fn scan_private(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.scan(Family::Private, prefix)
    }

    /// Deletes records of the `private` family, in one fsynced batch.
    fn delete_private(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(Family::Private, &[], keys, true)
    }

    /// Indexes localisation entries: `(key, value)` pairs of the `loc` family, in one batch
    /// (not fsynced: the index is rebuilt from the log).
    fn put_loc(&self, entries: &[KeyValue]) -> Result<(), StoreError> {
        self.write(Family::Loc, entries, &[], false)
    }

    /// The `loc` records under `prefix` (a slot tag).
    fn scan_loc(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.scan(Family::Loc, prefix)
    }

    /// A node setting kept in `meta` under `settings/<key>` (e.g. the trust store).
    fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(Family::Meta, &[SETTINGS, key].concat())
    }

    /// Writes a node setting (fsynced).
    fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.write(
            Family::Meta,
            &[([SETTINGS, key].concat(), value.to_vec())],
            &[],
            true,
        )
    }
}

/// Every transaction of content type `cty` after by-type sequence number `after`, with its
/// content (transactions without content are skipped): what the node's indexers read.
pub fn read_by_type<S: Store + ?Sized>(store: &S, cty: &str, after: u64) -> ByTypePage {
    let mut out = Vec::new();
    let mut last = after;
    while let Some(ids) = match store.list_by_type(cty, last, 1000) {
        Ok(ids) if !ids.is_empty() => Some(ids),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, cty, "reading the by-type index failed; retried next round");
            None
        }
    } {
        for (seq, id) in ids {
            last = seq;
            let read = knoop_gossip::log::read_tx(store, &id).ok().flatten();
            if let Some((t, Some(payload))) = read {
                if let Ok(tx) = knoop_gossip::Transaction::parse(&t.envelope, None) {
                    out.push((seq, tx, payload));
                }
            }
        }
    }
    (last, out)
}

/// The smallest key above every key that starts with `prefix` (`None`: no such bound, the
/// prefix is empty or all `0xff`): the end of a prefix scan in a store without prefix
/// iterators.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_successor() {
        assert_eq!(prefix_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
