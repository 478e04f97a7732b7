#!/usr/bin/env bash
# Make sure a Java 17+ runtime exists for the Spark identity backend's tests (pyspark runs Spark in a JVM).
# On a fresh Debian machine this installs Debian's headless JRE (needs root, as CI runs); elsewhere it says what to do.
set -euo pipefail
if command -v java >/dev/null 2>&1 && java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "Java 17+ not found (Spark needs it). Install it (Debian: sudo apt-get install openjdk-17-jre-headless) and re-run." >&2
  exit 1
fi
echo "Installing a Java runtime from Debian packages (for the Spark identity backend)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
java -version
