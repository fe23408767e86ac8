#!/bin/sh
# Set up the test suite on a fresh Debian machine with Python 3.11; run as root.
# Idempotent: run it again at any time.
#   - .venv (created if missing) with durable_nb editable and its [test] extra
#   - Debian's chromium, which the browser tests drive through Playwright
#     (never `playwright install`: the browser comes from Debian).
set -eu
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv; then
        echo "setup: could not create .venv; on Debian: apt-get install -y python3-venv" >&2
        exit 1
    fi
fi
.venv/bin/python -m pip install -q -e ".[test]"

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: chromium is missing; run this script as root to install it" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium
fi

echo "setup: ok ($(.venv/bin/python --version), $(chromium --version 2>/dev/null))"
