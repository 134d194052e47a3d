#!/usr/bin/env bash
# Make sure headless Chromium is there for the report tests: Debian's package (never a browser download).
# Without root the tests that need it are skipped with a reason; CI runs as root and installs it.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  command -v chromium >/dev/null
else
  echo "note: chromium is not installed and this is not root; the browser tests will be skipped" >&2
fi
