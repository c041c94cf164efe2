#!/usr/bin/env bash
# Starts a throwaway NATS server with JetStream on 127.0.0.1 for the test
# suite and prints its URL. Installs the server from Debian's packages when it
# is missing.
#   scripts/nats.sh start DIR   -> prints nats://127.0.0.1:PORT
#   scripts/nats.sh stop DIR
#
# JetStream's store, the log and the pid file stay under DIR. The server
# requires the user `llmsec` with a password made up at the first start and
# kept in DIR/password (readable by the caller only), so the tests go
# through authentication as a real deployment does. LLMSEC_NATS_PORT picks
# the first port tried (default 54222); started again with the same DIR,
# the server takes its previous port when free, and its password and store.
set -euo pipefail
cmd=${1:?usage: nats.sh start|stop DIR}
dir=$(realpath -m -- "${2:?usage: nats.sh start|stop DIR}")
port=${LLMSEC_NATS_PORT:-$(cat "$dir/port" 2>/dev/null || echo 54222)}

case "$cmd" in
  start)
    if ! command -v nats-server >/dev/null; then
      echo "nats.sh: installing the NATS server from Debian's packages" >&2
      export DEBIAN_FRONTEND=noninteractive
      (apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=300 nats-server) >&2
      command -v nats-server >/dev/null || { echo "nats.sh: no nats-server after install" >&2; exit 1; }
    fi
    # Take the first free port from $port on, so parallel runs do not collide.
    for _ in $(seq 1 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then port=$((port + 1)); else break; fi
    done
    mkdir -p "$dir"
    echo "$port" >"$dir/port"
    if [ ! -s "$dir/password" ]; then
      (umask 077 && od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$dir/password")
    fi
    password=$(cat "$dir/password")
    : >"$dir/nats.log"
    # The password in a file only the caller reads, not on the command line.
    (umask 077 && printf 'authorization {\n  user: llmsec\n  password: "%s"\n}\n' "$password" >"$dir/nats.conf")
    # In its own session so that a Ctrl-C of the caller does not reach it.
    setsid nats-server -c "$dir/nats.conf" -js -sd "$dir" -a 127.0.0.1 -p "$port" \
      -l "$dir/nats.log" -P "$dir/nats.pid" \
      </dev/null >/dev/null 2>&1 &
    pid=$!
    echo "$pid" >"$dir/server.pid"
    # "Server is ready" is logged once the client port listens and JetStream is up.
    ready=""
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      if grep -q "Server is ready" "$dir/nats.log"; then ready=1; break; fi
      sleep 0.1
    done
    if [ -z "$ready" ]; then
      echo "nats.sh: the server did not start; its log:" >&2
      tail -n 40 "$dir/nats.log" >&2 || true
      kill -TERM "$pid" 2>/dev/null || true
      exit 1
    fi
    echo "nats://127.0.0.1:$port"
    ;;
  stop)
    [ -f "$dir/server.pid" ] || exit 0
    pid=$(cat "$dir/server.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/server.pid"
    ;;
  *) echo "usage: nats.sh start|stop DIR" >&2; exit 2 ;;
esac
