#!/usr/bin/env bash
# Starts, stops and inspects the local three-node cluster.
#
#   scripts/cluster.sh start            start Node_A, Node_B, Node_C; wait for a leader
#   scripts/cluster.sh stop             stop every node started here (SIGTERM, then SIGKILL)
#   scripts/cluster.sh kill NODE        SIGKILL one node (as a crash would)
#   scripts/cluster.sh restart NODE     start one node again
#   scripts/cluster.sh leader           print the current leader's id
#   scripts/cluster.sh wait-leader      wait until a leader is known
#
# Environment: BIN_DIR (default target/release), DATA_ROOT (default disk),
# RUN_DIR for pid and log files (default $DATA_ROOT/run), RUST_LOG (default info).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-target/release}
DATA_ROOT=${DATA_ROOT:-disk}
RUN_DIR=${RUN_DIR:-$DATA_ROOT/run}
NODES=(Node_A Node_B Node_C)
declare -A HTTP_PORT=([Node_A]=8080 [Node_B]=8081 [Node_C]=8082)

pid_file() { echo "$RUN_DIR/$1.pid"; }

is_running() {
    local file
    file=$(pid_file "$1")
    [[ -f $file ]] && kill -0 "$(cat "$file")" 2>/dev/null
}

start_node() {
    local id=$1
    if is_running "$id"; then
        echo "$id is already running (pid $(cat "$(pid_file "$id")"))"
        return
    fi
    mkdir -p "$RUN_DIR"
    RUST_LOG=${RUST_LOG:-info} nohup "$BIN_DIR/node" --id "$id" --data-root "$DATA_ROOT" \
        >>"$RUN_DIR/$id.log" 2>&1 &
    echo $! >"$(pid_file "$id")"
    echo "started $id (pid $!, log $RUN_DIR/$id.log)"
}

# Prints the leader id as one node's monitor reports it, or nothing.
leader() {
    local id body
    for id in "${NODES[@]}"; do
        body=$(curl -fsS --max-time 1 "http://127.0.0.1:${HTTP_PORT[$id]}/health" 2>/dev/null) || continue
        python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"] or "")' <<<"$body" && return
    done
}

wait_leader() {
    local deadline=$((SECONDS + ${1:-15})) current
    while ((SECONDS < deadline)); do
        current=$(leader || true)
        if [[ -n $current ]]; then
            echo "$current"
            return
        fi
        sleep 0.1
    done
    echo "no leader elected within ${1:-15} s; see the logs in $RUN_DIR" >&2
    return 1
}

stop_node() {
    local id=$1 file pid
    file=$(pid_file "$id")
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        echo "stopped $id (pid $pid)"
    fi
    rm -f "$file"
}

case ${1:-} in
start)
    [[ -x $BIN_DIR/node && -x $BIN_DIR/ai-core ]] || {
        echo "missing $BIN_DIR/node or $BIN_DIR/ai-core; run 'cargo build --release' first" >&2
        exit 1
    }
    for id in "${NODES[@]}"; do start_node "$id"; done
    if ! current=$(wait_leader 15); then
        for id in "${NODES[@]}"; do
            is_running "$id" || echo "$id exited; the end of its log:" >&2
            is_running "$id" || tail -n 3 "$RUN_DIR/$id.log" >&2
        done
        exit 1
    fi
    echo "leader: $current"
    for id in "${NODES[@]}"; do
        if ! is_running "$id"; then
            echo "warning: $id exited; the end of its log:" >&2
            tail -n 3 "$RUN_DIR/$id.log" >&2
        fi
    done
    for id in "${NODES[@]}"; do echo "monitor $id: http://127.0.0.1:${HTTP_PORT[$id]}/"; done
    ;;
stop)
    for id in "${NODES[@]}"; do stop_node "$id"; done
    ;;
kill)
    file=$(pid_file "${2:?usage: cluster.sh kill NODE}")
    kill -KILL "$(cat "$file")"
    rm -f "$file"
    echo "killed $2 with SIGKILL"
    ;;
restart)
    start_node "${2:?usage: cluster.sh restart NODE}"
    ;;
leader)
    leader
    ;;
wait-leader)
    wait_leader "${2:-15}"
    ;;
*)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
