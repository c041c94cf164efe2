#!/usr/bin/env bash
# Starts a throwaway RabbitMQ node on 127.0.0.1 for the test suite and prints
# its AMQP URL. Installs the server from Debian's packages when it is missing.
#   scripts/rabbitmq.sh start DIR   -> prints amqp://guest:guest@127.0.0.1:PORT/%2f
#   scripts/rabbitmq.sh stop DIR
#
# Everything the node writes (Mnesia database, logs, Erlang cookie, pid file)
# stays under DIR. It runs as the calling user with its own epmd on a private
# port, so stopping it kills only this node and its epmd, never another
# RabbitMQ or Erlang node on the machine. LLMSEC_AMQP_PORT picks the first
# port tried (default 56720). Started again after a stop, with the same DIR,
# the node takes its previous port when free, and so its name and database:
# durable exchanges, queues and persistent messages survive the restart.
set -euo pipefail
cmd=${1:?usage: rabbitmq.sh start|stop DIR}
dir=$(realpath -m -- "${2:?usage: rabbitmq.sh start|stop DIR}")
self=$(realpath -- "$0")
rmq=/usr/lib/rabbitmq/bin

# The first port from $1 on that nothing listens on and that is not in $2…
free_port() {
  local p=$1
  shift
  for _ in $(seq 1 100); do
    if [[ " $* " == *" $p "* ]] || (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      p=$((p + 1))
    else
      echo "$p"
      return 0
    fi
  done
  echo "rabbitmq.sh: no free port from $1" >&2
  return 1
}

# The environment every rabbitmq command of this node needs; written by
# `start` to DIR/env, read back by `stop`.
node_env() {
  export HOME="$dir" # the Erlang cookie lives here
  export RABBITMQ_NODENAME="llmsec-$RABBITMQ_NODE_PORT@localhost"
  export RABBITMQ_USE_LONGNAME=false
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT ERL_EPMD_PORT
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
  export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins"
  export ERL_CRASH_DUMP="$dir/log/erl_crash.dump"
  # Two cores and a few connections: fewer schedulers and async threads start
  # faster and leave the CPU to the build.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 2:2 +A 8"
}

case "$cmd" in
  start)
    if [ ! -x "$rmq/rabbitmq-server" ]; then
      echo "rabbitmq.sh: installing RabbitMQ from Debian's packages" >&2
      export DEBIAN_FRONTEND=noninteractive
      (apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=300 rabbitmq-server) >&2
      [ -x "$rmq/rabbitmq-server" ] || { echo "rabbitmq.sh: no $rmq/rabbitmq-server after install" >&2; exit 1; }
    fi
    previous=$(cat "$dir/port" 2>/dev/null || true)
    RABBITMQ_NODE_PORT=$(free_port "${LLMSEC_AMQP_PORT:-${previous:-56720}}")
    RABBITMQ_DIST_PORT=$(free_port 45672 "$RABBITMQ_NODE_PORT")
    ERL_EPMD_PORT=$(free_port 44369 "$RABBITMQ_NODE_PORT" "$RABBITMQ_DIST_PORT")
    mkdir -p "$dir/log" "$dir/mnesia" "$dir/plugins"
    echo "$RABBITMQ_NODE_PORT" >"$dir/port"
    node_env
    printf 'RABBITMQ_NODE_PORT=%s\nRABBITMQ_DIST_PORT=%s\nERL_EPMD_PORT=%s\n' \
      "$RABBITMQ_NODE_PORT" "$RABBITMQ_DIST_PORT" "$ERL_EPMD_PORT" >"$dir/env"
    : >"$RABBITMQ_CONF_ENV_FILE"
    echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE" # no plugins: no management UI to boot
    echo '[].' >"$RABBITMQ_ADVANCED_CONFIG_FILE"
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$RABBITMQ_NODE_PORT
loopback_users.guest = true
log.console = false
log.file.level = warning
EOF
    # The node in the background, in its own session so that a Ctrl-C of the
    # caller does not reach it; `stop` ends it.
    cd "$dir"
    setsid "$rmq/rabbitmq-server" >"$dir/log/startup.log" 2>&1 </dev/null &
    echo $! >"$dir/server.pid"
    # Each rabbitmqctl run boots an Erlang VM (about a second of CPU), and
    # await_startup fails at once while the node is not yet registered with
    # epmd; so wait for the AMQP listener (opened last in the boot) cheaply,
    # then let await_startup confirm the boot finished.
    pid=$(cat "$dir/server.pid")
    up=""
    for _ in $(seq 1 600); do
      kill -0 "$pid" 2>/dev/null || break
      if (exec 3<>"/dev/tcp/127.0.0.1/$RABBITMQ_NODE_PORT") 2>/dev/null; then up=1; break; fi
      sleep 0.2
    done
    if [ -z "$up" ] || ! "$rmq/rabbitmqctl" -q await_startup --timeout 60 >&2; then
      echo "rabbitmq.sh: the node did not start; its log:" >&2
      tail -n 40 "$dir/log/startup.log" >&2 || true
      "$self" stop "$dir" || true
      exit 1
    fi
    echo "amqp://guest:guest@127.0.0.1:$RABBITMQ_NODE_PORT/%2f"
    ;;
  stop)
    [ -f "$dir/env" ] || exit 0
    # shellcheck disable=SC1091
    . "$dir/env"
    node_env
    "$rmq/rabbitmqctl" -q stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || true
    # The node's own process group (setsid), should `rabbitmqctl stop` have failed.
    if [ -f "$dir/server.pid" ]; then
      pid=$(cat "$dir/server.pid")
      kill -TERM -- "-$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    # Our epmd only: it listens on the private port written at start.
    epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
    rm -f "$dir/env" "$dir/server.pid"
    ;;
  *) echo "usage: rabbitmq.sh start|stop DIR" >&2; exit 2 ;;
esac
