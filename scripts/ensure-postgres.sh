#!/usr/bin/env bash
# Make sure PostgreSQL server binaries exist for the tests (they start their own throw-away cluster).
# On a fresh Debian machine this installs Debian's packages (needs root, as CI runs); elsewhere it says what to do.
set -euo pipefail
if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "PostgreSQL server binaries not found. Install them (Debian: sudo apt-get install postgresql) and re-run." >&2
  exit 1
fi
echo "Installing PostgreSQL from Debian packages (tests start their own cluster on a free loopback port)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib locales >/dev/null
# Debian's package may start its own cluster; the tests do not use it — stop it to free memory and port 5432.
if command -v pg_ctlcluster >/dev/null 2>&1; then
  for c in $(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}'); do pg_ctlcluster ${c/\// } stop >/dev/null 2>&1 || true; done
fi
ls /usr/lib/postgresql/*/bin/pg_ctl
