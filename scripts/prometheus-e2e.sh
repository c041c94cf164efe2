#!/usr/bin/env bash
# The Grafana dashboards and Prometheus rules of deploy/ against a real
# Prometheus scraping a real `llmsec serve`:
#
#   1. `promtool check rules` and `promtool test rules` on deploy/prometheus;
#   2. `llmsec serve` on 127.0.0.1 with a temporary SQLite data directory,
#      Sentinel detectors (ml, entropy) and a Shield gateway section;
#   3. Prometheus (Debian's package) with deploy/prometheus/prometheus.yml,
#      its target and intervals (1 s) rewritten for the run, checked with
#      `promtool check config`;
#   4. traffic: analyses that block and pass, replays, a webhook whose
#      deliveries dead-letter, telemetry with roles, addresses, tool calls
#      and logprobs that make Sentinel raise anomalies, gateway calls;
#   5. every target of every panel in deploy/grafana/*.json, with Grafana's
#      variables replaced ($job, $__rate_interval, $__range, ...), must
#      return data through Prometheus's /api/v1/query, and every rule must
#      evaluate without error. A query that returns nothing is named with
#      its dashboard, panel and expression.
#
# Needs the Rust toolchain (unless LLMSEC_BIN names a built binary; default
# $CARGO_TARGET_DIR/debug/llmsec, built here), curl, python3 (stdlib only)
# and `prometheus`/`promtool` (installed with apt-get when missing and
# running as root). Nothing leaves 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

fail() {
    printf '\nscripts/prometheus-e2e.sh: FAILED: %s\n' "$*" >&2
    exit 1
}
section() {
    printf '\n==> %s\n' "$*"
}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
started=$SECONDS

apt_install() {
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        section "installing $* (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; } ||
            fail "could not install $* with apt-get"
    else
        fail "$* not found (install it, or run as root on Debian to have it installed)"
    fi
}

{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || apt_install prometheus
command -v curl >/dev/null || apt_install curl
command -v python3 >/dev/null || apt_install python3

section "promtool check rules / test rules (deploy/prometheus)"
promtool check rules deploy/prometheus/rules/*.yml || fail "promtool check rules"
promtool test rules deploy/prometheus/tests/*.yml || fail "promtool test rules"

if [ -z "${LLMSEC_BIN:-}" ]; then
    # --all-features, as scripts/test.sh builds: one shared build.
    scripts/build-deps.sh || fail "cmake/libcurl for librdkafka could not be installed"
    section "build: cargo build -p llmsec --all-features"
    cargo build -p llmsec --all-features || fail "cargo build -p llmsec failed"
fi
llmsec=${LLMSEC_BIN:-$CARGO_TARGET_DIR/debug/llmsec}
[ -x "$llmsec" ] || fail "$llmsec is not an executable (set LLMSEC_BIN)"

work=$(mktemp -d)
serve_pid=
prom_pid=
cleanup() {
    for p in "$prom_pid" "$serve_pid"; do
        if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
prom_port=$(free_port)
# Nothing listens here: the gateway's upstream, so a call that passes the
# scan ends in an upstream error without leaving the machine, and the
# webhook's receiver, so its deliveries dead-letter.
dead_port=$(free_port)
admin="prom-e2e-operator-$(date +%s%N)"

cat > "$work/detectors.yaml" <<'YAML'
detectors:
  - id: prompt-injection
    name: Prompt injection in LLM traffic
    type: ml
    threshold: 0.5
  - id: output-entropy
    name: Uncertain completions
    type: entropy
    threshold: 2.0
YAML
# One attempt per delivery (a refused connection is then a dead letter);
# loopback allowed as a webhook address for that receiver.
cat > "$work/server.toml" <<TOML
[delivery]
max_attempts = 1
poll_ms = 50

[egress]
allow = ["127.0.0.1/32"]

[gateway]
policy = "block"

[[gateway.upstreams]]
name = "nowhere"
base_url = "http://127.0.0.1:$dead_port/v1"
timeout_ms = 2000
connect_timeout_ms = 500
connect_retries = 0
TOML

section "llmsec serve on 127.0.0.1:$port"
LLMSEC_ADMIN_KEY="$admin" LLMSEC_SENTINEL_DETECTORS="$work/detectors.yaml" RUST_LOG=warn \
    "$llmsec" serve --config "$work/server.toml" --listen "127.0.0.1:$port" --data-dir "$work/db" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; fail "llmsec serve exited"; }
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { tail -30 "$work/serve.log" >&2; fail "llmsec serve did not answer /healthz"; }

make_key() {
    curl -fsS -X POST "http://127.0.0.1:$port/api/admin/keys" -H "Authorization: Bearer $admin" \
        -H 'content-type: application/json' -d "$1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])'
}
read_key=$(make_key '{"name": "prometheus", "scopes": ["read"]}') || fail "could not make the read key"

# The committed sample config, pointed at this server, scraping every second.
mkdir -p "$work/prom"
cp -r deploy/prometheus/rules "$work/prom/rules"
printf '%s' "$read_key" > "$work/prom/llmsec-read-key"
python3 - "$port" deploy/prometheus/prometheus.yml "$work/prom/prometheus.yml" <<'PY'
import sys
port, src, dst = sys.argv[1:]
text = open(src).read()
for old, new in [("127.0.0.1:8080", f"127.0.0.1:{port}"), ("scrape_interval: 15s", "scrape_interval: 1s"),
                 ("evaluation_interval: 15s", "evaluation_interval: 1s")]:
    if old not in text:
        sys.exit(f"{src} no longer holds {old!r}: update scripts/prometheus-e2e.sh")
    text = text.replace(old, new)
open(dst, "w").write(text)
PY
section "promtool check config (deploy/prometheus/prometheus.yml, target 127.0.0.1:$port)"
promtool check config "$work/prom/prometheus.yml" || fail "promtool check config"

section "prometheus on 127.0.0.1:$prom_port ($(prometheus --version 2>&1 | head -1))"
prometheus --config.file="$work/prom/prometheus.yml" --storage.tsdb.path="$work/prom/data" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1 && break
    kill -0 "$prom_pid" 2>/dev/null || { cat "$work/prometheus.log" >&2; fail "prometheus exited"; }
    sleep 0.2
done

section "traffic, then every panel's queries through Prometheus"
E2E_BASE="http://127.0.0.1:$port" E2E_HOOK="http://127.0.0.1:$dead_port/hook" E2E_PROM="http://127.0.0.1:$prom_port" E2E_ADMIN="$admin" \
    python3 scripts/prometheus-e2e.py deploy/grafana/*.json || {
    printf '\n--- llmsec serve log ---\n' >&2
    tail -30 "$work/serve.log" >&2
    printf '\n--- prometheus log ---\n' >&2
    tail -30 "$work/prometheus.log" >&2
    fail "dashboard queries against a real Prometheus"
}

printf '\nscripts/prometheus-e2e.sh: all checks passed in %s s\n' "$((SECONDS - started))"
