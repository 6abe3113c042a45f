#!/usr/bin/env bash
# Installs testnet/idp's pinned npm dependencies (panva's oidc-provider) from package-lock.json,
# when node_modules is missing or older than the lock file. Node.js and npm come with
# testnet/fhir/install.sh. Idempotent; quiet unless something fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$here/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
  # oidc-provider 9 asks for Node 22 and runs on Debian's 20: the engine warning is expected.
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
