#!/usr/bin/env bash
# cluster.sh starts, drives and stops a three-node RabbitMQ cluster
# (lf1@localhost..lf3@localhost, AMQP on 5681-5683) from the Debian
# rabbitmq-server package alone, every path under DIR. It never touches
# the broker on 5672: its own node names, ports, Erlang cookie and files.
#
#   cluster.sh start DIR        boot three nodes, join them, wait for all three
#   cluster.sh stop DIR         stop every node, remove DIR
#   cluster.sh ctl DIR N ARGS   rabbitmqctl ARGS against node lfN
#   cluster.sh queues DIR N ARGS  rabbitmq-queues ARGS against node lfN
#
# start tears down what it started if any step fails. The cluster tests
# (internal/cluster) run when LOGFAN_CLUSTER names DIR.
set -euo pipefail

cmd=${1:?usage: cluster.sh start|stop|ctl|queues DIR ...}
dir=${2:?usage: cluster.sh $cmd DIR ...}
shift 2

# The rabbitmqctl on PATH switches to the rabbitmq user, and with it to
# the main broker's HOME and Erlang cookie: call the package's own scripts.
sbin=$(dirname "$(dpkg -L rabbitmq-server | grep '/sbin/rabbitmq-server$' | head -n1)")
nodes=(1 2 3)

node_env() {
  local n=$1 d="$dir/lf$1"
  export HOME="$dir"
  export RABBITMQ_CONF_ENV_FILE="$dir/empty-env.conf"
  export RABBITMQ_NODENAME="lf$n@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$((5680 + n))
  export RABBITMQ_DIST_PORT=$((25680 + n))
  export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$d/mnesia"
  export RABBITMQ_LOG_BASE="$d/log"
  export RABBITMQ_PID_FILE="$d/pid"
  export ERL_EPMD_ADDRESS=127.0.0.1
  # One scheduler that does not spin: three nodes share two cores with the
  # tests and the main broker.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none -kernel inet_dist_use_interface {127,0,0,1}"
}

ctl() { (node_env "$1"; shift; "$sbin/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"); }
queues() { (node_env "$1"; shift; "$sbin/rabbitmq-queues" -n "$RABBITMQ_NODENAME" "$@"); }

prepare() {
  mkdir -p "$dir"
  : >"$dir/empty-env.conf"
  # The nodes must share a cookie of their own, readable only by us.
  if [ ! -f "$dir/.erlang.cookie" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/.erlang.cookie"
    chmod 0400 "$dir/.erlang.cookie"
  fi
  for n in "${nodes[@]}"; do
    mkdir -p "$dir/lf$n/mnesia" "$dir/lf$n/log"
    echo '[].' >"$dir/lf$n/enabled_plugins"
    echo '[].' >"$dir/lf$n/advanced.config"
    # A node takes 40% of the machine's memory by default; four brokers on
    # one machine would each think they own it.
    cat >"$dir/lf$n/rabbitmq.conf" <<CONF
vm_memory_high_watermark.absolute = 1GB
disk_free_limit.absolute = 100MB
loopback_users = none
CONF
  done
}

boot() {
  local n=$1
  (node_env "$n"; "$sbin/rabbitmq-server" -detached >"$dir/lf$n/log/detached.out" 2>&1)
}

# await_startup fails at once until the node has registered with epmd.
await() {
  local n=$1
  for _ in $(seq 1 60); do
    if ctl "$n" -q await_startup --timeout 60 >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "cluster: lf$n@localhost did not start; see $dir/lf$n/log" >&2
  return 1
}

running_nodes() {
  ctl 1 -q cluster_status --formatter json 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))' 2>/dev/null || echo 0
}

start() {
  prepare
  trap 'echo "cluster: start failed, tearing down" >&2; stop' ERR
  for n in "${nodes[@]}"; do boot "$n"; done
  for n in "${nodes[@]}"; do await "$n"; done
  for n in 2 3; do
    ctl "$n" -q stop_app
    ctl "$n" -q join_cluster lf1@localhost
    ctl "$n" -q start_app
  done
  for _ in $(seq 1 60); do
    [ "$(running_nodes)" = 3 ] && break
    sleep 1
  done
  [ "$(running_nodes)" = 3 ] || { echo "cluster: three nodes did not join" >&2; false; }
  ctl 1 -q add_vhost logfan-test
  ctl 1 -q set_permissions -p logfan-test guest '.*' '.*' '.*'
  trap - ERR
  echo "cluster: lf1..lf3@localhost running on 5681-5683 (vhost logfan-test)"
}

stop() {
  for n in "${nodes[@]}"; do
    [ -d "$dir/lf$n" ] || continue
    ctl "$n" -q stop >/dev/null 2>&1 || true
    # A node that would not stop is killed: nothing may outlive the run.
    if [ -f "$dir/lf$n/pid" ]; then kill -9 "$(cat "$dir/lf$n/pid")" 2>/dev/null || true; fi
  done
  rm -rf "$dir"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  ctl) n=${1:?node number}; shift; ctl "$n" "$@" ;;
  queues) n=${1:?node number}; shift; queues "$n" "$@" ;;
  *) echo "usage: cluster.sh start|stop|ctl|queues DIR ..." >&2; exit 2 ;;
esac
