#!/bin/sh
# Set up the test suite on a fresh Debian machine with Python 3.11; run as root.
# Idempotent: run it again at any time.
#   - .venv (created if missing) with durable_nb editable and its [test] extra
#   - .venv-ipykernel73: ipykernel 7.3.0 in front of .venv's packages, for the test of
#     JupyterLab's subshell path on that version (tests/test_suspend.py)
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

# A venv whose own site-packages hold only ipykernel 7.3.0, then .venv's (a .pth): the
# same packages and durable_nb as .venv, but for that one. Kept while it imports 7.3.0.
SIDE=.venv-ipykernel73
if ! "$SIDE/bin/python" -c 'import ipykernel, durable_nb, sys; sys.exit(ipykernel.__version__ != "7.3.0")' 2>/dev/null; then
    rm -rf "$SIDE"
    .venv/bin/python -m venv --without-pip "$SIDE"
    purelib='import sysconfig; print(sysconfig.get_path("purelib"))'
    side=$("$SIDE/bin/python" -c "$purelib")
    .venv/bin/python -m pip install -q --no-deps --target "$side" ipykernel==7.3.0
    echo "import site; site.addsitedir('$(.venv/bin/python -c "$purelib")')" >"$side/_dnb_venv.pth"
    "$SIDE/bin/python" -c 'import ipykernel, durable_nb, sys; sys.exit(ipykernel.__version__ != "7.3.0")'
fi

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
