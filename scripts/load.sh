#!/usr/bin/env bash
# Load test of POST /api/security/analyze over loopback with wrk.
#   scripts/load.sh [--postgres] [--duration 20s] [--connections 64] [--threads 1]
# Builds the release binary, starts `llmsec serve` on a fresh SQLite file
# (or a throwaway PostgreSQL with --postgres), makes an analyze key, and runs
# wrk with a 1 KiB prompt. Installs wrk from Debian's packages if missing.
# Everything stays on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

backend=sqlite duration=20s connections=64 threads=1
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) backend=postgres ;;
    --duration) duration=$2; shift ;;
    --connections) connections=$2; shift ;;
    --threads) threads=$2; shift ;;
    *) echo "usage: $0 [--postgres] [--duration 20s] [--connections 64] [--threads 1]" >&2; exit 2 ;;
  esac
  shift
done

if ! command -v wrk >/dev/null; then
  echo "load.sh: installing wrk" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >&2
fi
cargo build --release -q -p llmsec

work=$(mktemp -d /tmp/llmsec-load.XXXXXX)
pg_dir=$(mktemp -d /tmp/llmsec-load-pg.XXXXXX)   # its own: postgres must own it
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  [ "$backend" = postgres ] && scripts/postgres.sh stop "$pg_dir" || true
  rm -rf "$work" "$pg_dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin="load-test-admin-key-$(date +%s)"
db_args=(--data-dir "$work/data")
if [ "$backend" = postgres ]; then
  url=$(scripts/postgres.sh start "$pg_dir")
  db_args=(--database-url "$url")
fi
cat > "$work/server.toml" <<TOML
[limits]
rate_per_sec = 1000000000.0
burst = 1000000000.0
TOML
LLMSEC_ADMIN_KEY=$admin LLMSEC_LOG=warn target/release/llmsec serve --config "$work/server.toml" \
  --listen "127.0.0.1:$port" "${db_args[@]}" &
server_pid=$!
for _ in $(seq 1 200); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.1)" 2>/dev/null && break
  sleep 0.05
done

key=$(python3 - "$port" "$admin" <<'PY'
import json, sys, urllib.request
port, admin = sys.argv[1], sys.argv[2]
req = urllib.request.Request(f"http://127.0.0.1:{port}/api/admin/keys", method="POST",
    data=json.dumps({"tenant": "load", "name": "load", "scopes": ["analyze", "read"]}).encode(),
    headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["key"])
PY
)

# A 1 KiB benign prompt: the common case, and the one that runs every scanner to the end.
python3 - "$work/body.json" <<'PY'
import json, sys
text = ("Please summarize the following meeting notes for the weekly report. The team discussed the "
        "migration of the billing service to the new cluster, the timeline for the security review, and "
        "the open questions about data retention for customer support transcripts. ")
while len(text) < 1024:
    text += text
json.dump({"input": text[:1024], "user_id": "load-user", "session_id": "load-session"}, open(sys.argv[1], "w"))
PY

echo "== wrk: $backend, $connections connections, $threads thread(s), $duration, 1 KiB prompt"
LLMSEC_KEY=$key LLMSEC_BODY_FILE="$work/body.json" wrk -t"$threads" -c"$connections" -d"$duration" --latency \
  -s scripts/load/analyze.lua "http://127.0.0.1:$port/api/security/analyze"

stored=$(python3 - "$port" "$key" <<'PY'
import json, sys, urllib.request
port, key = sys.argv[1], sys.argv[2]
req = urllib.request.Request(f"http://127.0.0.1:{port}/api/security/events?limit=1", headers={"Authorization": f"Bearer {key}"})
print(json.load(urllib.request.urlopen(req))["total_count"])
PY
)
echo "events stored: $stored"
