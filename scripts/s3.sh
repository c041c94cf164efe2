#!/usr/bin/env bash
# Starts a throwaway S3-compatible store (s3rver, from npm, installed under
# target/s3rver) on 127.0.0.1 for the export tests and prints its endpoint.
# It checks SigV4 signatures against the access key S3RVER / secret S3RVER
# and has one bucket, `exports`.
#   scripts/s3.sh start DIR   -> prints http://127.0.0.1:PORT
#   scripts/s3.sh stop DIR
set -euo pipefail
cmd=${1:?usage: s3.sh start|stop DIR}
dir=${2:?usage: s3.sh start|stop DIR}
port=${LLMSEC_S3_PORT:-54569}
root=$(cd "$(dirname "$0")/.." && pwd)
prefix="$root/target/s3rver"
bin="$prefix/node_modules/.bin/s3rver"

case "$cmd" in
  start)
    if [ ! -x "$bin" ]; then
      command -v npm >/dev/null || { echo "s3.sh: npm is needed (apt-get install -y npm)" >&2; exit 1; }
      echo "s3.sh: installing s3rver under target/s3rver" >&2
      mkdir -p "$prefix"
      npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error s3rver@3.7.1 >&2
    fi
    # Take the first free port from $port on, so parallel runs do not collide.
    for _ in $(seq 1 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then port=$((port + 1)); else break; fi
    done
    mkdir -p "$dir/data"
    "$bin" -d "$dir/data" -a 127.0.0.1 -p "$port" --silent --no-vhost-buckets --configure-bucket exports \
      >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "http://127.0.0.1:$port"
        exit 0
      fi
      if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then break; fi
      sleep 0.1
    done
    echo "s3.sh: s3rver did not start; its log:" >&2
    cat "$dir/log" >&2
    exit 1
    ;;
  stop)
    [ -f "$dir/pid" ] || exit 0
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/pid"
    ;;
  *) echo "usage: s3.sh start|stop DIR" >&2; exit 2 ;;
esac
