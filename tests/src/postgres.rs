//! A real PostgreSQL for the tests of the PostgreSQL store: a fresh database per test on the
//! server `KNOOP_TEST_POSTGRES` names (default: the local server over its Unix socket, which
//! `tests/postgres.sh` starts, as `.ci/run` does).

use std::process::Command;

/// The server's connection string, without a database.
pub fn server() -> String {
    std::env::var("KNOOP_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=/var/run/postgresql dbname=postgres".into())
}

/// A new, empty database: its libpq connection string (what `store.postgres` takes).
pub fn fresh_database() -> String {
    let name = format!("knoop_test_{:016x}", rand::random::<u64>());
    psql(&format!("CREATE DATABASE {name}"));
    format!("{} dbname={name}", server())
}

/// Runs `sql` on the server's `postgres` database with Debian's `psql`, which must succeed.
pub fn psql(sql: &str) -> String {
    psql_in(&server(), sql)
}

/// Runs `sql` in the database `conn` names, which must succeed: its output rows.
pub fn psql_in(conn: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-tA", "-c", sql, conn])
        .output()
        .unwrap_or_else(|e| panic!("psql: {e} (PostgreSQL's client; .ci/run installs it)"));
    assert!(
        out.status.success(),
        "psql {sql:?} failed on {:?}: {} (run tests/postgres.sh, or set KNOOP_TEST_POSTGRES)",
        server(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
