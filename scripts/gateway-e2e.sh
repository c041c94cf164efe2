#!/usr/bin/env bash
# The Shield gateway end to end with real clients (tests/e2e): builds the
# `llmsec` binary, makes a virtual environment with the official `openai`
# Python package and pytest (pinned, from PyPI), and runs
# tests/e2e/test_gateway_openai.py. That module starts `llmsec gateway` in
# front of a mock OpenAI upstream on 127.0.0.1 and talks to it with the
# `openai` client and `curl -N`; nothing leaves 127.0.0.1 (pip aside).
#
# Needs the Rust toolchain, CPython >= 3.9 with venv and pip (PYTHON to
# pick the interpreter, default python3) and curl (installed with apt-get
# when missing and running as root). The virtual environment
# ($CARGO_TARGET_DIR/gateway-e2e-venv, default target/gateway-e2e-venv) is
# kept and reused between runs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

OPENAI_VERSION=2.54.0
PYTEST_VERSION=9.2.0

fail() {
    printf '\nscripts/gateway-e2e.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
python=${PYTHON:-python3}
venv="$CARGO_TARGET_DIR/gateway-e2e-venv"
started=$SECONDS

command -v "$python" >/dev/null || fail "'$python' not found (set PYTHON)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || fail "$("$python" --version 2>&1) is too old: needs CPython >= 3.9"
if ! command -v curl >/dev/null; then
    # The raw SSE test reads the stream with curl -N; a fresh Debian
    # machine may not have it.
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        printf '\n==> installing curl (apt-get)\n'
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl >/dev/null; } ||
            fail "could not install curl with apt-get"
    else
        fail "curl not found: the raw SSE test reads the stream with curl -N (install curl)"
    fi
fi

# --all-features, as scripts/test.sh builds: one shared build.
scripts/build-deps.sh || fail "cmake/libcurl for librdkafka could not be installed"
printf '\n==> build: cargo build -p llmsec --all-features\n'
cargo build -p llmsec --all-features || fail "cargo build -p llmsec failed"

# A kept venv made by another interpreter version is made again.
version_of() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}
if [ -x "$venv/bin/python" ] && [ "$(version_of "$venv/bin/python")" != "$(version_of "$python")" ]; then
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    printf '\n==> virtual environment: creating %s\n' "$venv"
    "$python" -m venv "$venv" || fail "cannot create a virtual environment (on Debian: apt-get install python3-venv)"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION" "pytest==$PYTEST_VERSION" ||
    fail "pip could not install openai==$OPENAI_VERSION and pytest==$PYTEST_VERSION into $venv"

printf '\n==> test: pytest tests/e2e (llmsec gateway, openai %s, curl -N)\n' "$OPENAI_VERSION"
LLMSEC_BIN="$CARGO_TARGET_DIR/debug/llmsec" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/e2e ||
    fail "the gateway's end-to-end tests failed"

printf '\n==> gateway end to end: all checks passed in %s s\n' "$((SECONDS - started))"
