#!/usr/bin/env bash
# Installs what testnet/fhir needs: Node.js + npm (Debian packages, only when missing) and the
# pinned npm dependencies from package-lock.json (only when node_modules is missing or older than
# the lock file). Idempotent; quiet unless it has to do something or something fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "knoop-fhir: installing nodejs and npm with apt-get..." >&2
  if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "knoop-fhir: apt-get install nodejs npm failed" >&2
    exit 1
  fi
fi

major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "knoop-fhir: Node.js $(node --version) is too old; Medplum 5 needs Node 20 or newer" >&2
  exit 1
fi

# npm writes node_modules/.package-lock.json on every install: use it as the "installed at" stamp.
stamp="$here/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
  # Medplum declares node >= 22 but runs on 20 (serve adds --experimental-websocket): the
  # EBADENGINE warning is expected, hence --loglevel=error.
  if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
    cat "$log" >&2
    echo "knoop-fhir: npm ci failed" >&2
    exit 1
  fi
  touch "$stamp"
fi
