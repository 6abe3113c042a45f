//! The PostgreSQL store: the log and the record families in a vendor's database (layout:
//! `specs/storage.md` §6), for nodes whose state lives in a database the vendor already runs,
//! backs up and replicates. Implements [`NodeStore`] with the same keys as rocksdb.
//!
//! Only SQL that PostgreSQL-compatible distributed databases (CockroachDB, YugabyteDB) accept
//! too: plain tables with primary keys, `INSERT … ON CONFLICT`, `unnest` of arrays, no
//! extensions, advisory locks or server-side functions.

mod pool;

use knoop_gossip::{CommitBatch, Hash32, Store, StoreError, StoredTx, TxId};

use super::node_store::{prefix_end, Family, KeyValue, NodeStore};
use pool::{Pool, Tx};

/// The schema version, kept in the `meta` family under [`FORMAT_KEY`].
pub const PG_FORMAT: &str = "pg1";
const FORMAT_KEY: &[u8] = b"format_version";

/// The tables (idempotent: every replica runs them at start).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS knoop_tx (id BYTEA PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, \
     sigt BIGINT NOT NULL, lc BIGINT NOT NULL, envelope TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS knoop_payload (hash BYTEA PRIMARY KEY, content BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS knoop_head (id BYTEA PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS knoop_by_type (cty TEXT NOT NULL, seq BIGINT NOT NULL, \
     id BYTEA NOT NULL, PRIMARY KEY (cty, seq))",
    "CREATE TABLE IF NOT EXISTS knoop_peer (peer TEXT PRIMARY KEY, addrs TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS knoop_record (family SMALLINT NOT NULL, k BYTEA NOT NULL, \
     v BYTEA NOT NULL, PRIMARY KEY (family, k))",
    "CREATE TABLE IF NOT EXISTS knoop_lease (name TEXT PRIMARY KEY, holder TEXT NOT NULL, \
     epoch BIGINT NOT NULL, expires TIMESTAMPTZ NOT NULL)",
];

const GET_TX: &str = "SELECT seq, sigt, lc, envelope FROM knoop_tx WHERE id = $1";
const HAS_TX: &str = "SELECT 1 FROM knoop_tx WHERE id = $1";
const GET_PAYLOAD: &str = "SELECT content FROM knoop_payload WHERE hash = $1";
const PUT_TXS: &str = "INSERT INTO knoop_tx (id, seq, sigt, lc, envelope) \
     SELECT * FROM unnest($1::BYTEA[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[]) \
     ON CONFLICT (id) DO NOTHING";
const PUT_PAYLOADS: &str = "INSERT INTO knoop_payload (hash, content) \
     SELECT * FROM unnest($1::BYTEA[], $2::BYTEA[]) ON CONFLICT (hash) DO NOTHING";
const DROP_HEADS: &str = "DELETE FROM knoop_head WHERE id = ANY($1::BYTEA[])";
const ADD_HEADS: &str = "INSERT INTO knoop_head (id) SELECT * FROM unnest($1::BYTEA[]) \
     ON CONFLICT (id) DO NOTHING";
const PUT_BY_TYPE: &str = "INSERT INTO knoop_by_type (cty, seq, id) \
     SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BYTEA[]) ON CONFLICT (cty, seq) DO NOTHING";
const LOAD_SET: &str = "SELECT sigt, id FROM knoop_tx";
const LOAD_HEADS: &str = "SELECT id FROM knoop_head";
const LAST_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM knoop_tx";
const LIST_AFTER: &str = "SELECT seq, id FROM knoop_tx WHERE seq > $1 ORDER BY seq LIMIT $2";
const LIST_BY_TYPE: &str =
    "SELECT seq, id FROM knoop_by_type WHERE cty = $1 AND seq > $2 ORDER BY seq LIMIT $3";
const DROP_PEERS: &str = "DELETE FROM knoop_peer";
const PUT_PEERS: &str = "INSERT INTO knoop_peer (peer, addrs) \
     SELECT * FROM unnest($1::TEXT[], $2::TEXT[]) ON CONFLICT (peer) DO UPDATE SET addrs = excluded.addrs";
const LOAD_PEERS: &str = "SELECT peer, addrs FROM knoop_peer";
const GET_RECORD: &str = "SELECT v FROM knoop_record WHERE family = $1 AND k = $2";
const SCAN_FROM: &str = "SELECT k, v FROM knoop_record WHERE family = $1 AND k >= $2 ORDER BY k";
const SCAN_RANGE: &str =
    "SELECT k, v FROM knoop_record WHERE family = $1 AND k >= $2 AND k < $3 ORDER BY k";
const PUT_RECORDS: &str = "INSERT INTO knoop_record (family, k, v) \
     SELECT $1, k, v FROM unnest($2::BYTEA[], $3::BYTEA[]) AS r (k, v) \
     ON CONFLICT (family, k) DO UPDATE SET v = excluded.v";
const TAKE_RECORD: &str = "DELETE FROM knoop_record WHERE family = $1 AND k = $2 RETURNING v";
const INSERT_NEW_RECORD: &str = "INSERT INTO knoop_record (family, k, v) VALUES ($1, $2, $3) \
     ON CONFLICT (family, k) DO NOTHING";
const DROP_RECORDS: &str = "DELETE FROM knoop_record WHERE family = $1 AND k = ANY($2::BYTEA[])";
const DATABASE_SIZE: &str = "SELECT pg_database_size(current_database())";
/// The leadership lease (§9.6): created free, then taken by whoever holds it or finds it expired;
/// each change of holder increments the epoch. Times are the database's clock.
const LEASE_CREATE: &str = "INSERT INTO knoop_lease (name, holder, epoch, expires) \
     VALUES ('leader', '', 0, now()) ON CONFLICT (name) DO NOTHING";
const LEASE_TAKE: &str = "UPDATE knoop_lease SET \
     epoch = CASE WHEN holder = $1 THEN epoch ELSE epoch + 1 END, holder = $1, \
     expires = now() + $2::FLOAT8 * INTERVAL '1 second' \
     WHERE name = 'leader' AND (holder = $1 OR expires <= now()) RETURNING epoch";
const LEASE_RELEASE: &str =
    "UPDATE knoop_lease SET expires = now() WHERE name = 'leader' AND holder = $1";
/// The fence of every write of a leader: its lease, still its own and unexpired, locked
/// against a takeover until the write commits.
const LEASE_FENCE: &str = "SELECT epoch FROM knoop_lease WHERE name = 'leader' \
     AND holder = $1 AND epoch = $2 AND expires > now() FOR SHARE";

/// The node's store in a PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    /// The leadership this handle was granted (`holder`, epoch), fencing its writes.
    fence: std::sync::Mutex<Option<(String, i64)>>,
}

/// Why a fenced write was refused.
const FENCED: &str = "this node no longer leads the store (another replica took over)";

/// Opening the PostgreSQL store failed.
#[derive(Debug, thiserror::Error)]
pub enum PgOpenError {
    #[error("store.postgres is not a PostgreSQL connection string: {0}")]
    Config(String),
    #[error("cannot open the PostgreSQL store: {0}")]
    Database(StoreError),
    #[error(
        "the PostgreSQL store has format {found}, this knoop reads {PG_FORMAT}: point the node \
         at its own database (or schema), or upgrade knoop"
    )]
    Version { found: String },
}

impl PgStore {
    /// Connects with `connections` connections (at least one), creates the tables when they are
    /// missing and checks the format marker. `conn` is a libpq connection string (`host=… dbname=…`
    /// or `postgresql://…`); `password`, when given, replaces any password in it.
    pub fn open(
        conn: &str,
        password: Option<String>,
        connections: u32,
    ) -> Result<Self, PgOpenError> {
        let mut config: postgres::Config = conn
            .parse()
            .map_err(|e: postgres::Error| PgOpenError::Config(e.to_string()))?;
        if let Some(pw) = password {
            config.password(pw);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config.application_name("knoop");
        let store = PgStore {
            pool: Pool::start(config, connections.max(1) as usize),
            fence: std::sync::Mutex::new(None),
        };
        store
            .pool
            .run(|c| {
                // Two replicas starting together may both create a table: the loser of that
                // race sees a duplicate and finds the table there on its second pass.
                for attempt in 0..2 {
                    let created = SCHEMA.iter().try_for_each(|sql| c.batch(sql));
                    match created {
                        Ok(()) => break,
                        Err(e) if attempt == 0 && pool::is_duplicate(&e) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            })
            .map_err(PgOpenError::Database)?;
        let marker = store
            .get(Family::Meta, FORMAT_KEY)
            .map_err(PgOpenError::Database)?;
        match marker.as_deref() {
            None => store
                .write(
                    Family::Meta,
                    &[(FORMAT_KEY.to_vec(), PG_FORMAT.as_bytes().to_vec())],
                    &[],
                    true,
                )
                .map_err(PgOpenError::Database)?,
            Some(v) if v == PG_FORMAT.as_bytes() => {}
            Some(v) => {
                return Err(PgOpenError::Version {
                    found: String::from_utf8_lossy(v).into_owned(),
                })
            }
        }
        Ok(store)
    }
}

impl PgStore {
    /// Runs the writes of `f` in one database transaction, fenced by the leadership this
    /// handle holds, if any (§9.6): refused, writing nothing, once another replica took over.
    fn fenced<R: Send + 'static>(
        &self,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, StoreError> {
        let fence = self
            .fence
            .lock()
            .map_err(|_| StoreError("the store's fence lock is poisoned".into()))?
            .clone();
        let written = self.pool.run(move |c| {
            c.transaction(|t| {
                if let Some((holder, epoch)) = &fence {
                    if t.query(LEASE_FENCE, &[holder, epoch])?.is_empty() {
                        return Ok(None);
                    }
                }
                f(t).map(Some)
            })
        })?;
        written.ok_or_else(|| StoreError(FENCED.into()))
    }
}

/// A number the log keeps as `u64`, as PostgreSQL's `BIGINT`.
fn big(n: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError(format!("{what} {n} is beyond a BIGINT")))
}

/// A `BIGINT` read back as the log's `u64`.
fn small(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError(format!("stored {what} {n} is negative")))
}

fn id_from(bytes: &[u8]) -> Result<TxId, StoreError> {
    let a: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError("stored id is not 32 bytes".into()))?;
    Ok(Hash32(a))
}

/// Rows of `(seq, id)`.
fn seq_ids(rows: Vec<(i64, Vec<u8>)>) -> Result<Vec<(u64, TxId)>, StoreError> {
    rows.into_iter()
        .map(|(s, id)| Ok((small(s, "seq")?, id_from(&id)?)))
        .collect()
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store for PgStore {
    fn get_tx(&self, id: &TxId) -> Result<Option<StoredTx>, StoreError> {
        let key = id.0.to_vec();
        let row = self.pool.run(move |c| {
            let rows = c.query(GET_TX, &[&key])?;
            rows.first()
                .map(|r| {
                    Ok((
                        r.try_get::<_, i64>(0)?,
                        r.try_get::<_, i64>(1)?,
                        r.try_get::<_, i64>(2)?,
                        r.try_get::<_, String>(3)?,
                    ))
                })
                .transpose()
        })?;
        row.map(|(seq, sigt, lc, envelope)| {
            Ok(StoredTx {
                seq: small(seq, "seq")?,
                sigt: small(sigt, "sigt")?,
                lc: small(lc, "lc")?,
                envelope,
            })
        })
        .transpose()
    }

    fn contains_tx(&self, id: &TxId) -> Result<bool, StoreError> {
        let key = id.0.to_vec();
        self.pool
            .run(move |c| Ok(!c.query(HAS_TX, &[&key])?.is_empty()))
    }

    fn get_payload(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        let key = hash.0.to_vec();
        self.pool.run(move |c| {
            c.query(GET_PAYLOAD, &[&key])?
                .first()
                .map(|r| r.try_get::<_, Vec<u8>>(0))
                .transpose()
        })
    }

    fn commit(&self, batch: CommitBatch) -> Result<(), StoreError> {
        let mut ids = Vec::with_capacity(batch.txs.len());
        let (mut seqs, mut sigts, mut lcs, mut envelopes) = (vec![], vec![], vec![], vec![]);
        for (id, t) in &batch.txs {
            ids.push(id.0.to_vec());
            seqs.push(big(t.seq, "seq")?);
            sigts.push(big(t.sigt, "sigt")?);
            lcs.push(big(t.lc, "lc")?);
            envelopes.push(t.envelope.clone());
        }
        let (hashes, contents): (Vec<Vec<u8>>, Vec<Vec<u8>>) = batch
            .payloads
            .iter()
            .map(|(h, p)| (h.0.to_vec(), p.clone()))
            .unzip();
        let removed: Vec<Vec<u8>> = batch.heads_removed.iter().map(|h| h.0.to_vec()).collect();
        let added: Vec<Vec<u8>> = batch.heads_added.iter().map(|h| h.0.to_vec()).collect();
        let mut types = Vec::with_capacity(batch.by_type.len());
        let (mut type_seqs, mut type_ids) = (vec![], vec![]);
        for (cty, seq, id) in &batch.by_type {
            types.push(cty.clone());
            type_seqs.push(big(*seq, "seq")?);
            type_ids.push(id.0.to_vec());
        }
        self.fenced(move |t| {
            if !ids.is_empty() {
                t.execute(PUT_TXS, &[&ids, &seqs, &sigts, &lcs, &envelopes])?;
            }
            if !hashes.is_empty() {
                t.execute(PUT_PAYLOADS, &[&hashes, &contents])?;
            }
            if !removed.is_empty() {
                t.execute(DROP_HEADS, &[&removed])?;
            }
            if !added.is_empty() {
                t.execute(ADD_HEADS, &[&added])?;
            }
            if !types.is_empty() {
                t.execute(PUT_BY_TYPE, &[&types, &type_seqs, &type_ids])?;
            }
            Ok(())
        })
    }

    fn load_set(&self) -> Result<Vec<(u64, TxId)>, StoreError> {
        let rows = self.pool.run(|c| {
            c.query(LOAD_SET, &[])?
                .iter()
                .map(|r| Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, Vec<u8>>(1)?)))
                .collect::<Result<Vec<_>, postgres::Error>>()
        })?;
        seq_ids(rows)
    }

    fn load_heads(&self) -> Result<Vec<TxId>, StoreError> {
        let rows = self.pool.run(|c| {
            c.query(LOAD_HEADS, &[])?
                .iter()
                .map(|r| r.try_get::<_, Vec<u8>>(0))
                .collect::<Result<Vec<_>, _>>()
        })?;
        rows.iter().map(|id| id_from(id)).collect()
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        let n = self.pool.run(|c| {
            c.query(LAST_SEQ, &[])?
                .first()
                .map(|r| r.try_get::<_, i64>(0))
                .transpose()
        })?;
        small(n.unwrap_or(0), "seq")
    }

    fn list_after(&self, after: u64, max: usize) -> Result<Vec<(u64, TxId)>, StoreError> {
        let after = big(after, "seq")?;
        let rows = self.pool.run(move |c| {
            c.query(LIST_AFTER, &[&after, &limit(max)])?
                .iter()
                .map(|r| Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, Vec<u8>>(1)?)))
                .collect::<Result<Vec<_>, postgres::Error>>()
        })?;
        seq_ids(rows)
    }

    fn list_by_type(
        &self,
        cty: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, TxId)>, StoreError> {
        let after = big(after, "seq")?;
        let cty = cty.to_owned();
        let rows = self.pool.run(move |c| {
            c.query(LIST_BY_TYPE, &[&cty, &after, &limit(max)])?
                .iter()
                .map(|r| Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, Vec<u8>>(1)?)))
                .collect::<Result<Vec<_>, postgres::Error>>()
        })?;
        seq_ids(rows)
    }

    fn save_peers(&self, peers: &[(String, Vec<String>)]) -> Result<(), StoreError> {
        let mut ids = Vec::with_capacity(peers.len());
        let mut addrs = Vec::with_capacity(peers.len());
        for (id, a) in peers {
            ids.push(id.clone());
            addrs.push(serde_json::to_string(a).map_err(|e| StoreError(e.to_string()))?);
        }
        self.fenced(move |t| {
            t.execute(DROP_PEERS, &[])?;
            if !ids.is_empty() {
                t.execute(PUT_PEERS, &[&ids, &addrs])?;
            }
            Ok(())
        })
    }

    fn load_peers(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let rows = self.pool.run(|c| {
            c.query(LOAD_PEERS, &[])?
                .iter()
                .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, String>(1)?)))
                .collect::<Result<Vec<_>, postgres::Error>>()
        })?;
        // A damaged entry is skipped: remembered peers are a hint, not data.
        Ok(rows
            .into_iter()
            .filter_map(|(id, a)| Some((id, serde_json::from_str::<Vec<String>>(&a).ok()?)))
            .collect())
    }
}

impl NodeStore for PgStore {
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        self.pool.run(move |c| {
            c.query(GET_RECORD, &[&family.number(), &key])?
                .first()
                .map(|r| r.try_get::<_, Vec<u8>>(0))
                .transpose()
        })
    }

    fn scan(&self, family: Family, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let start = prefix.to_vec();
        let end = prefix_end(prefix);
        self.pool.run(move |c| {
            let rows = match &end {
                Some(end) => c.query(SCAN_RANGE, &[&family.number(), &start, end])?,
                None => c.query(SCAN_FROM, &[&family.number(), &start])?,
            };
            rows.iter()
                .map(|r| Ok((r.try_get::<_, Vec<u8>>(0)?, r.try_get::<_, Vec<u8>>(1)?)))
                .collect()
        })
    }

    /// Every commit of PostgreSQL is durable (`synchronous_commit` as the database has it), so
    /// `durable` asks nothing more.
    fn write(
        &self,
        family: Family,
        puts: &[KeyValue],
        deletes: &[Vec<u8>],
        _durable: bool,
    ) -> Result<(), StoreError> {
        if puts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let (keys, values): (Vec<Vec<u8>>, Vec<Vec<u8>>) = puts.iter().cloned().unzip();
        let deletes = deletes.to_vec();
        self.fenced(move |t| {
            if !deletes.is_empty() {
                t.execute(DROP_RECORDS, &[&family.number(), &deletes])?;
            }
            if !keys.is_empty() {
                t.execute(PUT_RECORDS, &[&family.number(), &keys, &values])?;
            }
            Ok(())
        })
    }

    fn take(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        self.fenced(move |t| {
            t.query(TAKE_RECORD, &[&family.number(), &key])?
                .first()
                .map(|r| r.try_get::<_, Vec<u8>>(0))
                .transpose()
        })
    }

    fn insert_new(&self, family: Family, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        let (key, value) = (key.to_vec(), value.to_vec());
        self.fenced(move |t| {
            Ok(t.execute(INSERT_NEW_RECORD, &[&family.number(), &key, &value])? == 1)
        })
    }

    /// The database's size (`pg_database_size`; 0 where the database has no such function).
    fn disk_bytes(&self) -> u64 {
        self.pool
            .run(|c| {
                c.query(DATABASE_SIZE, &[])?
                    .first()
                    .map(|r| r.try_get::<_, i64>(0))
                    .transpose()
            })
            .ok()
            .flatten()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0)
    }

    /// Nothing to do: every commit is durable when it returns.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The database manages its own disk; a write it refuses for want of space comes back as
    /// a full disk (SQLSTATE 53100).
    fn set_reserve(&self, _bytes: u64) {}

    fn checkpoint(&self, _path: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError(
            "this node's store is a PostgreSQL database: back it up with the database's own \
             tools (pg_dump, or the replication and backups of the database service)"
                .into(),
        ))
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn step_down(&self, holder: &str) -> Result<(), StoreError> {
        let who = holder.to_owned();
        self.pool
            .run(move |c| c.query(LEASE_RELEASE, &[&who]).map(|_| ()))?;
        if let Ok(mut fence) = self.fence.lock() {
            if let Some((_, held)) = fence.as_mut() {
                *held = -1;
            }
        }
        Ok(())
    }

    fn lead(&self, holder: &str, ttl: std::time::Duration) -> Result<Option<u64>, StoreError> {
        let who = holder.to_owned();
        let secs = ttl.as_secs_f64();
        let epoch = self.pool.run(move |c| {
            c.transaction(|t| {
                t.execute(LEASE_CREATE, &[])?;
                t.query(LEASE_TAKE, &[&who, &secs])?
                    .first()
                    .map(|r| r.try_get::<_, i64>(0))
                    .transpose()
            })
        })?;
        let mut fence = self
            .fence
            .lock()
            .map_err(|_| StoreError("the store's fence lock is poisoned".into()))?;
        match epoch {
            Some(e) => {
                *fence = Some((holder.to_owned(), e));
                Ok(Some(small(e, "epoch")?))
            }
            None => {
                // Whatever this handle held has passed on: its writes stay refused.
                if let Some((_, held)) = fence.as_mut() {
                    *held = -1;
                }
                Ok(None)
            }
        }
    }
}
