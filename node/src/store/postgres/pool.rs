//! The PostgreSQL store's connections: a few worker threads, each owning one connection with
//! its prepared statements, fed from one bounded queue. The store's callers block on the answer
//! as they would on a rocksdb read, from any thread (the synchronous client may not run on an
//! async runtime's threads, so it never does). A connection that breaks is opened again, and the
//! job that found it broken runs once more on the new one.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use knoop_gossip::StoreError;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};

/// Jobs waiting for a connection, at most: callers beyond it wait to queue.
const QUEUE: usize = 1024;

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// The worker threads and their queue.
pub struct Pool {
    jobs: SyncSender<Job>,
}

impl Pool {
    /// Starts `connections` workers. They connect on their first job.
    pub fn start(config: postgres::Config, connections: usize) -> Self {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..connections {
            let queue = queue.clone();
            let mut worker = Worker {
                config: config.clone(),
                conn: None,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("knoop-pg-{i}"))
                .spawn(move || work(&queue, &mut worker));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a PostgreSQL connection thread");
            }
        }
        Pool { jobs }
    }

    /// Runs `f` on a connection and returns its answer. `f` runs a second time, on a new
    /// connection, when the first one broke under it: it must be safe to repeat (every write
    /// of the store is a whole transaction of idempotent statements).
    pub fn run<R: Send + 'static>(
        &self,
        mut f: impl FnMut(&mut Conn) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = sync_channel(1);
        let job: Job = Box::new(move |worker: &mut Worker| {
            let mut outcome = worker.attempt(&mut f);
            if outcome
                .as_ref()
                .is_err_and(|e| worker.broken() || lost_connection(e))
            {
                worker.conn = None;
                outcome = worker.attempt(&mut f);
            }
            let _ = tx.send(outcome.map_err(store_error));
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError("the PostgreSQL connection threads have stopped".into()))?;
        rx.recv()
            .map_err(|_| StoreError("a PostgreSQL connection thread stopped mid-job".into()))?
    }
}

fn work(queue: &Mutex<Receiver<Job>>, worker: &mut Worker) {
    loop {
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(worker),
            Err(_) => return, // the store was dropped
        }
    }
}

/// A connection thread's state: its connection, while it has one.
struct Worker {
    config: postgres::Config,
    conn: Option<Conn>,
}

impl Worker {
    /// Runs `f` on the connection, connecting first when there is none or it broke.
    fn attempt<R>(
        &mut self,
        f: &mut impl FnMut(&mut Conn) -> Result<R, postgres::Error>,
    ) -> Result<R, postgres::Error> {
        if self.broken() {
            self.conn = None;
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot @ None => slot.insert(Conn {
                client: self.config.connect(NoTls)?,
                statements: HashMap::new(),
            }),
        };
        f(conn)
    }

    fn broken(&self) -> bool {
        self.conn.as_ref().is_none_or(|c| c.client.is_closed())
    }
}

/// One connection and the statements prepared on it.
pub struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// Runs `sql` (statements without parameters, such as the schema).
    pub fn batch(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.client.batch_execute(sql)
    }

    /// The rows of `sql` with `params`, through the connection's prepared statement.
    pub fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let client = &mut self.client;
        let statement = prepared(&mut self.statements, sql, |sql| client.prepare(sql))?;
        self.client.query(&statement, params)
    }

    /// Runs `f` in one database transaction: committed when it returns `Ok`, rolled back
    /// otherwise.
    pub fn transaction<R>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, postgres::Error>,
    ) -> Result<R, postgres::Error> {
        let mut tx = Tx {
            inner: self.client.transaction()?,
            statements: &mut self.statements,
        };
        let out = f(&mut tx)?;
        tx.inner.commit()?;
        Ok(out)
    }
}

/// A database transaction on a [`Conn`].
pub struct Tx<'a> {
    inner: postgres::Transaction<'a>,
    statements: &'a mut HashMap<&'static str, Statement>,
}

impl Tx<'_> {
    /// Executes `sql` with `params`, through the connection's prepared statement.
    pub fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let inner = &mut self.inner;
        let statement = prepared(self.statements, sql, |sql| inner.prepare(sql))?;
        self.inner.execute(&statement, params)
    }

    /// The rows of `sql` with `params`, through the connection's prepared statement.
    pub fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let inner = &mut self.inner;
        let statement = prepared(self.statements, sql, |sql| inner.prepare(sql))?;
        self.inner.query(&statement, params)
    }
}

/// The connection's statement for `sql`, prepared with `prepare` the first time.
fn prepared(
    statements: &mut HashMap<&'static str, Statement>,
    sql: &'static str,
    prepare: impl FnOnce(&str) -> Result<Statement, postgres::Error>,
) -> Result<Statement, postgres::Error> {
    if let Some(s) = statements.get(sql) {
        return Ok(s.clone());
    }
    let s = prepare(sql)?;
    statements.insert(sql, s.clone());
    Ok(s)
}

/// Whether `e` ended the connection: the server shut it down (SQLSTATE class 57P: an
/// administrator, a restart, a failover) or it broke (class 08). The client may not have seen
/// the socket close yet when the error arrives.
fn lost_connection(e: &postgres::Error) -> bool {
    e.is_closed()
        || e.code()
            .is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57P"))
}

/// Whether `e` is a create that lost a race with another replica's (a duplicate object).
pub fn is_duplicate(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::DUPLICATE_TABLE
            || *c == SqlState::DUPLICATE_OBJECT
    )
}

/// The store's error for a database error; a full disk keeps its meaning (`507 disk_full`).
fn store_error(e: postgres::Error) -> StoreError {
    let text = match e.as_db_error() {
        Some(db) => format!("postgresql: {} ({})", db.message(), db.code().code()),
        None => format!("postgresql: {e}"),
    };
    match e.code() {
        Some(c) if *c == SqlState::DISK_FULL => StoreError::disk_full(text),
        _ => StoreError(text),
    }
}
