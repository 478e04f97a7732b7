#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium exists: the offline test opens the Data Docs and the run report in it
# with networking disabled. Installs it on Debian as root (as CI runs); elsewhere says what to do.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium not found (the offline Data Docs test needs it). Install it (Debian: sudo apt-get install chromium) and re-run." >&2
  exit 1
fi
echo "Installing Chromium from Debian packages (for the offline Data Docs test)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
