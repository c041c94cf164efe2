#!/usr/bin/env bash
# The LLMSecOps pipeline on one machine, end to end:
#   1. lint the prompt templates (SARIF for code scanning),
#   2. test the Rego policies,
#   3. start `llmsec serve` with the Shield gateway in front of a local
#      stand-in model (mock_model.py, Python standard library),
#   4. red-team the model through the gateway (JSON, JUnit and HTML reports),
#   5. scan a sample of production logs after the fact (`llmsec logs scan`),
# then say where to look. Everything listens on 127.0.0.1 and nothing
# leaves the machine.
#
#   examples/llmsecops_demo/run.sh          # run, print the tour, stop the server
#   examples/llmsecops_demo/run.sh --keep   # ... and keep the server up (Ctrl-C ends it)
#
# LLMSEC_BIN picks the binary (default: build target/debug/llmsec);
# OUT the report folder (default: target/llmsecops-demo).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
demo="$root/examples/llmsecops_demo"
keep=false
[ "${1:-}" = "--keep" ] && keep=true

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
out="${OUT:-$CARGO_TARGET_DIR/llmsecops-demo}"
python=${PYTHON:-python3}

fail() {
    printf '\nexamples/llmsecops_demo/run.sh: FAILED: %s\n' "$*" >&2
    exit 1
}
step() {
    printf '\n==> %s\n' "$*"
}

if [ -z "${LLMSEC_BIN:-}" ]; then
    # --all-features, as scripts/test.sh builds: one shared build.
    "$root/scripts/build-deps.sh" || fail "cmake/libcurl for librdkafka could not be installed"
    step "build: cargo build -p llmsec --all-features"
    cargo build -q -p llmsec --all-features || fail "cargo build -p llmsec failed"
    LLMSEC_BIN="$CARGO_TARGET_DIR/debug/llmsec"
fi
llmsec=$LLMSEC_BIN
[ -x "$llmsec" ] || fail "$llmsec is not an executable"
command -v "$python" >/dev/null || fail "'$python' not found (set PYTHON)"
command -v curl >/dev/null || fail "curl not found"

rm -rf "$out"
mkdir -p "$out/data"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

step "1. lint the prompt templates: llmsec lint examples/lint/prompts --schema examples/lint/schema.yaml"
set +e
"$llmsec" lint examples/lint/prompts --schema examples/lint/schema.yaml
lint_status=$?
"$llmsec" lint examples/lint/prompts --schema examples/lint/schema.yaml --format sarif -o "$out/lint.sarif"
set -e
[ "$lint_status" -le 1 ] || fail "llmsec lint failed (exit $lint_status)"
[ -s "$out/lint.sarif" ] || fail "no SARIF written"

step "2. test the Rego policies: llmsec policy test deploy/policies"
"$llmsec" policy test deploy/policies || fail "the policy tests failed"

step "3. start the stand-in model and llmsec serve with the gateway"
"$python" "$demo/mock_model.py" "$out/model.port" &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$out/model.port" ] && break; sleep 0.1; done
[ -s "$out/model.port" ] || fail "the stand-in model did not start"
model_port=$(cat "$out/model.port")
# A free port for the server: bind 0, read it, let it go.
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$out/llmsec.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$out/data"

[gateway]
policy = "block"
canary = true

[[gateway.upstreams]]
name = "demo"
base_url = "http://127.0.0.1:$model_port/v1"
TOML
"$llmsec" serve --config "$out/llmsec.toml" >"$out/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && [ -s "$out/data/admin-key" ] && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || fail "llmsec serve did not start (see $out/serve.log)"
[ -s "$out/data/admin-key" ] || fail "no bootstrap key in $out/data/admin-key"
LLMSEC_DEMO_KEY=$(head -n1 "$out/data/admin-key")
export LLMSEC_DEMO_KEY
echo "llmsec serve on http://127.0.0.1:$port (gateway at /v1), stand-in model on 127.0.0.1:$model_port"

step "4. red-team the model through the gateway: llmsec redteam --target openai --base-url http://127.0.0.1:$port/v1"
set +e
"$llmsec" redteam --target openai --base-url "http://127.0.0.1:$port/v1" --model demo-model \
    --api-key-env LLMSEC_DEMO_KEY --concurrency 4 \
    --json "$out/redteam.json" --junit "$out/redteam.junit.xml" --html "$out/redteam.html" \
    --upload "http://127.0.0.1:$port" --upload-key-env LLMSEC_DEMO_KEY
redteam_status=$?
set -e
[ "$redteam_status" -le 1 ] || fail "llmsec redteam failed (exit $redteam_status)"
for f in redteam.json redteam.junit.xml redteam.html; do [ -s "$out/$f" ] || fail "no $f written"; done
runs=$(curl -fsS -H "Authorization: Bearer $LLMSEC_DEMO_KEY" "http://127.0.0.1:$port/api/v1/redteam/runs" |
    "$python" -c 'import json, sys; print(len(json.load(sys.stdin)["runs"]))')
[ "$runs" -eq 1 ] || fail "the red-team run was not stored in the server ($runs runs)"

step "5. scan production logs after the fact: llmsec logs scan examples/llmsecops_demo/sample-logs.jsonl"
set +e
"$llmsec" logs scan "$demo/sample-logs.jsonl"
logs_status=$?
"$llmsec" logs scan --format json "$demo/sample-logs.jsonl" >"$out/logs-scan.json"
set -e
[ "$logs_status" -le 1 ] || fail "llmsec logs scan failed (exit $logs_status)"

events=$(curl -fsS -H "Authorization: Bearer $LLMSEC_DEMO_KEY" "http://127.0.0.1:$port/api/security/events?limit=1" |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["total_count"])')
[ "$events" -gt 0 ] || fail "the gateway stored no security events"

cat <<TOUR

==> where to look
  dashboard        http://127.0.0.1:$port/  (sign in with the key in $out/data/admin-key)
  security events  $events stored by the gateway's scans (Events page, or GET /api/security/events)
  lint (SARIF)     $out/lint.sarif  (upload with github/codeql-action/upload-sarif)
  red team         $out/redteam.html, redteam.json, redteam.junit.xml; the run's figures
                   in the server (GET /api/v1/redteam/runs, the dashboard's Insights page)
  log scan         $out/logs-scan.json
  Grafana          deploy/grafana/*.json and deploy/prometheus/ (see deploy/README.md)
  metrics          http://127.0.0.1:$port/metrics (with the key)
TOUR

if $keep; then
    echo
    echo "The server keeps running; Ctrl-C stops it."
    wait
fi
