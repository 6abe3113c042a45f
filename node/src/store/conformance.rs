//! One behaviour for both stores: every check here runs against rocksdb and against a real
//! PostgreSQL (a fresh database per test on the server `KNOOP_TEST_POSTGRES` names, default the
//! local one over its socket; `tests/postgres.sh` starts it, as `.ci/run` does).

use std::sync::Arc;

use knoop_gossip::{EmbeddedKeys, Log, LogConfig, Source, TxBuilder};

use super::node_store::{Family, NodeStore};
use super::postgres::PgStore;
use super::rocks::RocksStore;

/// The server the PostgreSQL tests create their databases on.
fn server() -> String {
    std::env::var("KNOOP_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=/var/run/postgresql dbname=postgres".into())
}

/// A new, empty database on the test server: its connection string.
pub fn fresh_database() -> String {
    let name = format!("knoop_test_{:016x}", rand::random::<u64>());
    let mut admin = postgres::Client::connect(&server(), postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "no PostgreSQL for the store tests at {:?} ({e}): run tests/postgres.sh (or set \
             KNOOP_TEST_POSTGRES)",
            server()
        )
    });
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    format!("{} dbname={name}", server())
}

pub fn rocks() -> (Arc<dyn NodeStore>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("knoop-conf-{}", rand::random::<u64>()));
    (Arc::new(RocksStore::open(&dir).expect("open rocksdb")), dir)
}

fn pg(conn: &str) -> Arc<dyn NodeStore> {
    Arc::new(PgStore::open(conn, None, 3).expect("open the PostgreSQL store"))
}

/// Both stores, each with a way to open it again.
pub fn both(check: impl Fn(&dyn Fn() -> Arc<dyn NodeStore>)) {
    let (_, dir) = rocks();
    let rocks_dir = dir.clone();
    check(&move || Arc::new(RocksStore::open(&rocks_dir).expect("reopen rocksdb")));
    let _ = std::fs::remove_dir_all(&dir);
    let conn = fresh_database();
    check(&move || pg(&conn));
}

#[test]
fn the_log_survives_reopening_with_the_same_set_heads_and_indexes() {
    both(|open| {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let (digest, heads, ids) = {
            let store = open();
            assert_eq!(store.last_seq().unwrap(), 0);
            let mut log = Log::open(
                store.clone(),
                Arc::new(EmbeddedKeys::default()),
                LogConfig::default(),
            )
            .unwrap();
            let mut ids = Vec::new();
            for i in 0..40u8 {
                let cty = if i % 2 == 0 { "t/even" } else { "t/odd" };
                let tx = TxBuilder::new(cty)
                    .prevs(log.heads(16))
                    .sign(&key, vec![i; 100])
                    .unwrap();
                ids.push(tx.id());
                assert!(log.ingest(vec![tx], Source::Local).results[0].is_ok());
            }
            (log.index().digest(), log.heads(16), ids)
        };
        let store = open();
        assert_eq!(store.last_seq().unwrap(), 40);
        let after = store.list_after(37, 10).unwrap();
        assert_eq!(
            after,
            vec![(38, ids[37]), (39, ids[38]), (40, ids[39])],
            "{}",
            store.kind()
        );
        assert_eq!(store.list_after(0, 5).unwrap().len(), 5);
        let even = store.list_by_type("t/even", 0, 100).unwrap();
        assert_eq!(
            even.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (1..=40).step_by(2).collect::<Vec<u64>>()
        );
        assert_eq!(store.list_by_type("t/even", 35, 100).unwrap().len(), 2);
        assert_eq!(store.list_by_type("t/odd", 0, 3).unwrap().len(), 3);
        assert!(store.list_by_type("t/none", 0, 3).unwrap().is_empty());
        let stored = store.get_tx(&ids[5]).unwrap().expect("stored");
        assert_eq!(stored.seq, 6);
        assert!(store.contains_tx(&ids[5]).unwrap());
        assert!(!store.contains_tx(&knoop_gossip::Hash32([9; 32])).unwrap());
        let read = knoop_gossip::log::read_tx(store.as_ref(), &ids[5])
            .unwrap()
            .expect("read back");
        assert_eq!(read.1, Some(vec![5u8; 100]));
        let log = Log::open(
            store,
            Arc::new(EmbeddedKeys::default()),
            LogConfig::default(),
        )
        .unwrap();
        assert_eq!(log.index().digest(), digest);
        assert_eq!(log.heads(16), heads);
    });
}

#[test]
fn families_are_ordered_maps_apart_from_each_other() {
    both(|open| {
        let store = open();
        let kind = store.kind();
        store.put_private(b"r/1", b"x").unwrap();
        store
            .put_private_many(&[
                (b"r/2".to_vec(), b"y".to_vec()),
                (b"r/\xff\xff".to_vec(), b"top".to_vec()),
                (b"s/1".to_vec(), b"z".to_vec()),
            ])
            .unwrap();
        store
            .put_loc(&[(b"r/1".to_vec(), b"loc".to_vec())])
            .unwrap();
        store.put_meta(b"trust", b"table").unwrap();
        assert_eq!(
            store.get_private(b"r/1").unwrap().as_deref(),
            Some(&b"x"[..])
        );
        let r: Vec<Vec<u8>> = store
            .scan_private(b"r/")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            r,
            vec![b"r/1".to_vec(), b"r/2".to_vec(), b"r/\xff\xff".to_vec()],
            "{kind}"
        );
        assert_eq!(store.scan_private(b"r/\xff").unwrap().len(), 1, "{kind}");
        assert_eq!(store.scan_private(b"").unwrap().len(), 4, "{kind}");
        assert_eq!(store.scan_loc(b"r/").unwrap().len(), 1);
        assert_eq!(
            store.get_meta(b"trust").unwrap().as_deref(),
            Some(&b"table"[..])
        );
        assert_eq!(
            store
                .get(Family::Meta, b"settings/trust")
                .unwrap()
                .as_deref(),
            Some(&b"table"[..])
        );
        assert!(store.get_private(b"trust").unwrap().is_none());
        // Overwrite and delete, together and atomically.
        store
            .write(
                Family::Private,
                &[(b"r/1".to_vec(), b"x2".to_vec())],
                &[b"r/2".to_vec(), b"absent".to_vec()],
                true,
            )
            .unwrap();
        drop(store);
        let store = open();
        assert_eq!(
            store.get_private(b"r/1").unwrap().as_deref(),
            Some(&b"x2"[..])
        );
        assert!(store.get_private(b"r/2").unwrap().is_none());
        store.delete_private(&[b"r/1".to_vec()]).unwrap();
        store.delete_private(&[]).unwrap();
        assert_eq!(store.scan_private(b"r/").unwrap().len(), 1, "{kind}");
        assert_eq!(store.scan_loc(b"r/1").unwrap().len(), 1);
    });
}

#[test]
fn remembered_peers_are_replaced_as_a_whole() {
    both(|open| {
        let store = open();
        let a = vec!["/ip4/127.0.0.1/tcp/1".to_owned()];
        store
            .save_peers(&[("p1".into(), a.clone()), ("p2".into(), vec![])])
            .unwrap();
        store.save_peers(&[("p3".into(), a.clone())]).unwrap();
        assert_eq!(store.load_peers().unwrap(), vec![("p3".to_owned(), a)]);
        store.save_peers(&[]).unwrap();
        assert!(store.load_peers().unwrap().is_empty());
    });
}

/// The database drops every connection (a restart, a failover of the database service): the
/// next operations reconnect and nothing is lost.
#[test]
fn a_dropped_database_connection_is_opened_again() {
    let conn = fresh_database();
    let store = pg(&conn);
    store.put_private(b"k", b"before").unwrap();
    let dbname = conn.rsplit("dbname=").next().unwrap_or_default().to_owned();
    let mut admin = postgres::Client::connect(&server(), postgres::NoTls).unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 \
             AND pid <> pg_backend_pid()",
            &[&dbname],
        )
        .unwrap();
    assert!(!killed.is_empty(), "the store had connections to drop");
    for i in 0..20u8 {
        store.put_private(&[b'n', i], b"after").unwrap();
    }
    assert_eq!(
        store.get_private(b"k").unwrap().as_deref(),
        Some(&b"before"[..])
    );
    assert_eq!(store.scan_private(b"n").unwrap().len(), 20);
}

/// Many threads at once (the node's handlers): every write lands, none is lost or mixed up.
#[test]
fn concurrent_writers_all_land() {
    both(|open| {
        let store = open();
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..50u8 {
                        store.put_private(&[b'c', t, i], &[t, i]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all = store.scan_private(b"c").unwrap();
        assert_eq!(all.len(), 400, "{}", store.kind());
        assert!(all.iter().all(|(k, v)| k[1..] == v[..]));
    });
}

#[test]
fn a_store_of_another_format_and_a_bad_connection_string_are_refused() {
    let conn = fresh_database();
    {
        let store = pg(&conn);
        store
            .write(
                Family::Meta,
                &[(b"format_version".to_vec(), b"pg9".to_vec())],
                &[],
                true,
            )
            .unwrap();
    }
    let err = PgStore::open(&conn, None, 1).err().expect("refused");
    assert!(err.to_string().contains("pg9"), "{err}");
    let err = PgStore::open(
        "host=/nonexistent/socket dbname=x connect_timeout=2",
        None,
        1,
    )
    .err()
    .expect("refused");
    assert!(
        err.to_string().contains("cannot open the PostgreSQL store"),
        "{err}"
    );
    let err = PgStore::open("port=notanumber", None, 1)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("connection string"), "{err}");
}

/// Two replicas on one database (`specs/storage.md` §9.6): one leads, the other is refused until
/// the lease runs out; then it takes over with a new epoch, and the old leader's writes are
/// fenced off, the log's included.
#[test]
fn one_replica_leads_and_a_replica_that_lost_the_lease_writes_nothing() {
    let conn = fresh_database();
    let (a, b) = (pg(&conn), pg(&conn));
    let ttl = std::time::Duration::from_millis(1500);
    assert_eq!(a.lead("a", ttl).unwrap(), Some(1));
    assert_eq!(b.lead("b", ttl).unwrap(), None);
    assert_eq!(
        a.lead("a", ttl).unwrap(),
        Some(1),
        "renewal keeps the epoch"
    );
    a.put_private(b"from-a", b"1").unwrap();
    // The leader stops renewing; the standby keeps asking until the lease is its own.
    let t0 = std::time::Instant::now();
    let epoch = loop {
        if let Some(e) = b.lead("b", ttl).unwrap() {
            break e;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(5),
            "never took over"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(epoch, 2);
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(1000),
        "took over a live lease"
    );
    // The old leader's writes are refused now: records, peers and the log.
    let refused = a.put_private(b"late", b"x").unwrap_err();
    assert!(refused.0.contains("no longer leads"), "{refused}");
    assert!(a.save_peers(&[("p".into(), vec![])]).is_err());
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let tx = TxBuilder::new("t/x").sign(&key, vec![1]).unwrap();
    let mut log = Log::open(
        a.clone(),
        Arc::new(EmbeddedKeys::default()),
        LogConfig::default(),
    )
    .unwrap();
    assert!(log.ingest(vec![tx.clone()], Source::Local).results[0].is_err());
    assert_eq!(a.lead("a", ttl).unwrap(), None, "the old leader stays out");
    assert!(b.get_private(b"late").unwrap().is_none());
    assert!(!b.contains_tx(&tx.id()).unwrap());
    // The new leader writes.
    b.put_private(b"from-b", b"2").unwrap();
    assert_eq!(b.scan_private(b"from-").unwrap().len(), 2);
}
