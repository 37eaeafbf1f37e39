#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the gallery test, when it is missing.
# Idempotent: does nothing when `chromium` is already on PATH. Needs root (CI runs as root).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-chromium: chromium is missing and apt-get as root is not available; the gallery" \
         "browser test will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium
