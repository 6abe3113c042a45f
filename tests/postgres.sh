#!/usr/bin/env bash
# Starts the local PostgreSQL server the PostgreSQL store's tests use (Debian's cluster, over
# its Unix socket /var/run/postgresql), gives the current user a role on it, and drops the test
# databases earlier runs left. Idempotent; .ci/run installs the package and tests/run.sh calls
# this. Tests reach another server through KNOOP_TEST_POSTGRES (a libpq connection string).
set -euo pipefail
if [ -n "${KNOOP_TEST_POSTGRES:-}" ]; then
  exit 0
fi
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "tests/postgres.sh: PostgreSQL is not installed (apt-get install postgresql; .ci/run does)" >&2
  exit 1
fi
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
read -r version cluster _ < <(pg_lsclusters -h | head -n 1) || true
if [ -z "${version:-}" ]; then
  version="$(ls /usr/lib/postgresql | sort -n | tail -n 1)"
  cluster=main
  as_root pg_createcluster "$version" "$cluster" >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $4}' | grep -q online; then
  as_root pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 1 50); do
  pg_isready -q -h /var/run/postgresql && break
  sleep 0.2
done
pg_isready -q -h /var/run/postgresql
me="$(id -un)"
if [ "$(as_postgres psql -XtAc "SELECT 1 FROM pg_roles WHERE rolname = '$me'")" != 1 ]; then
  as_postgres psql -Xqc "CREATE ROLE \"$me\" LOGIN SUPERUSER"
fi
psql -XtA -h /var/run/postgresql -d postgres \
  -c "SELECT datname FROM pg_database WHERE datname LIKE 'knoop\_test\_%'" |
  while read -r db; do
    [ -n "$db" ] && psql -Xq -h /var/run/postgresql -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
  done
echo "PostgreSQL $version/$cluster is up on /var/run/postgresql"
