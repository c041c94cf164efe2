#!/usr/bin/env bash
# The web dashboard in a real browser: builds `llmsec`, starts `llmsec
# serve` on 127.0.0.1 with a temporary data directory and a detectors file,
# and drives Debian's Chromium with playwright-core (npm, pinned) through
# scripts/dashboard-e2e.mjs at 1280 and 390 px: sign in, the empty state,
# an anomaly arriving live after a telemetry event, acknowledging it (and
# the REST API agreeing), replaying a blocked prompt, no console errors.
# Screenshots go to $CARGO_TARGET_DIR/dashboard-screenshots/.
#
# Needs the Rust toolchain, Node.js >= 18 with npm, and Chromium:
# `chromium` (and `nodejs`/`npm` when missing) are installed with apt-get
# when running as root. playwright-core drives the browser over the
# DevTools protocol, so no chromium-driver is needed; it is installed into
# $CARGO_TARGET_DIR/dashboard-e2e (kept between runs; nothing is
# downloaded but the npm package: CHROMIUM names the browser binary).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

PLAYWRIGHT_CORE_VERSION=1.65.2

fail() {
    printf '\nscripts/dashboard-e2e.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
tools="$CARGO_TARGET_DIR/dashboard-e2e"
shots="$CARGO_TARGET_DIR/dashboard-screenshots"
chromium=${CHROMIUM:-/usr/bin/chromium}

apt_install() {
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        printf '\n==> installing %s (apt-get)\n' "$*"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; } ||
            fail "could not install $* with apt-get"
    else
        fail "$* not found (install it, or run as root on Debian to have it installed)"
    fi
}

[ -x "$chromium" ] || apt_install chromium
command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm
node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' || fail "Node.js $(node --version) is too old: needs >= 18"

if [ "$(node -e "try{console.log(require('$tools/node_modules/playwright-core/package.json').version)}catch{}")" != "$PLAYWRIGHT_CORE_VERSION" ]; then
    printf '\n==> npm install playwright-core@%s into %s\n' "$PLAYWRIGHT_CORE_VERSION" "$tools"
    mkdir -p "$tools"
    (cd "$tools" && npm install --no-audit --no-fund --no-save --silent "playwright-core@$PLAYWRIGHT_CORE_VERSION") ||
        fail "npm install playwright-core failed"
fi

# --all-features, as scripts/test.sh builds: one shared build.
scripts/build-deps.sh || fail "cmake/libcurl for librdkafka could not be installed"
printf '\n==> build: cargo build -p llmsec --all-features\n'
cargo build -p llmsec --all-features || fail "cargo build -p llmsec failed"

data=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$data"
}
trap cleanup EXIT

cat > "$data/detectors.yaml" <<'YAML'
detectors:
  - id: prompt-injection
    name: Prompt injection in LLM traffic
    type: ml
    model: prompt-injection-v2
    threshold: 0.5
YAML

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
key="e2e-operator-key-$(date +%s%N)"
printf '\n==> llmsec serve on 127.0.0.1:%s (data %s)\n' "$port" "$data"
LLMSEC_ADMIN_KEY="$key" LLMSEC_SENTINEL_DETECTORS="$data/detectors.yaml" RUST_LOG=warn \
    "$CARGO_TARGET_DIR/debug/llmsec" serve --listen "127.0.0.1:$port" --data-dir "$data/db" >"$data/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    if node -e "fetch('http://127.0.0.1:$port/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"; then break; fi
    kill -0 "$pid" 2>/dev/null || { cat "$data/serve.log" >&2; fail "llmsec serve exited"; }
    sleep 0.2
done

printf '\n==> browser: scripts/dashboard-e2e.mjs (Chromium %s)\n' "$("$chromium" --version 2>/dev/null | awk '{print $2}')"
rm -rf "$shots"
E2E_BASE="http://127.0.0.1:$port" E2E_KEY="$key" E2E_SHOTS="$shots" E2E_NODE_MODULES="$tools/node_modules" E2E_CHROMIUM="$chromium" \
    node scripts/dashboard-e2e.mjs || { printf '\n--- llmsec serve log ---\n' >&2; tail -50 "$data/serve.log" >&2; fail "the browser test failed (screenshots so far in $shots)"; }
printf '\nscripts/dashboard-e2e.sh: ok; screenshots in %s\n' "$shots"
