#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on 127.0.0.1 for the test suite and prints
# its URL. Installs the server from Debian's packages when it is missing.
#   scripts/postgres.sh start DIR   -> prints postgres://postgres@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop DIR
set -euo pipefail
cmd=${1:?usage: postgres.sh start|stop DIR}
dir=${2:?usage: postgres.sh start|stop DIR}
port=${LLMSEC_PG_PORT:-55432}

bin=""
for v in 17 16 15; do
  if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then bin="/usr/lib/postgresql/$v/bin"; break; fi
done

case "$cmd" in
  start)
    if [ -z "$bin" ]; then
      echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
      export DEBIAN_FRONTEND=noninteractive
      (apt-get update -qq && apt-get install -y -qq postgresql) >&2
      for v in 17 16 15; do
        if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then bin="/usr/lib/postgresql/$v/bin"; break; fi
      done
      [ -n "$bin" ] || { echo "postgres.sh: no initdb after install" >&2; exit 1; }
    fi
    # Take the first free port from $port on, so parallel runs do not collide.
    for _ in $(seq 1 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then port=$((port + 1)); else break; fi
    done
    mkdir -p "$dir"
    run_as=()
    if [ "$(id -u)" = 0 ]; then
      chown postgres: "$dir"
      run_as=(su postgres -s /bin/sh -c)
    else
      run_as=(sh -c)
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      "${run_as[@]}" "$bin/initdb -D '$dir/data' -U postgres -A trust --no-sync -E UTF8" >/dev/null
    fi
    "${run_as[@]}" "$bin/pg_ctl -D '$dir/data' -l '$dir/log' -w -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300\" start" >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ] || exit 0
    if [ "$(id -u)" = 0 ]; then
      su postgres -s /bin/sh -c "$bin/pg_ctl -D '$dir/data' -m fast -w stop" >/dev/null
    else
      "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
  *) echo "usage: postgres.sh start|stop DIR" >&2; exit 2 ;;
esac
