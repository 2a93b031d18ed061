#!/usr/bin/env bash
# Fault test on real processes and a real network: three nodes, each in its own network
# namespace, joined through a router namespace where links between nodes are cut and healed.
#
#   sudo scripts/fault-test.sh
#
# Scenarios (scripts/fault/scenarios.py): an isolated leader, a partition of one link,
# an isolated follower rejoining, SIGKILL of the leader during uploads and during training.
# At the end every acknowledged upload and model must be on all three nodes, byte-identical.
# Exits non-zero on any failure and then prints the tail of each node's log.
#
# Needs root, `ip` (iproute2) and python3. Builds nothing: run `cargo build --release
# --workspace` first.
#
# Environment:
#   BIN_DIR     directory with the node and ai-core binaries (default target/release)
#   KEEP_WORK   1 keeps the temporary directory (data and logs) even when the test passes
#   RUST_LOG    node log level (default info)
#   FAULT_PARTITION_S  seconds that the partitions of scenarios b and c last (default 3)
#
# Topology: namespace fault-router-PID forwards between the veth links
# 10.213.N.1 <-> 10.213.N.2 (N = 1, 2, 3); node N runs in fault-nodeN-PID at 10.213.N.2.
# A cut is a pair of `ip rule ... blackhole` rules in the router, so packets between the
# two nodes vanish silently, as on a real network. The test client runs in the router
# namespace and so reaches every node during every cut. All traffic stays inside these
# namespaces.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN_DIR=$(realpath "${BIN_DIR:-target/release}")
KEEP_WORK=${KEEP_WORK:-0}
export RUST_LOG=${RUST_LOG:-info}

if [[ $(id -u) != 0 ]]; then
    echo "fault-test.sh needs root to create network namespaces; run it with sudo" >&2
    exit 2
fi
for tool in ip python3; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool; install iproute2 and python3" >&2
        exit 2
    }
done
for binary in node ai-core; do
    [[ -x $BIN_DIR/$binary ]] || {
        echo "missing $BIN_DIR/$binary; run 'cargo build --release --workspace' first or set BIN_DIR" >&2
        exit 2
    }
done

ROUTER=fault-router-$$
NODE_NS=(fault-node1-$$ fault-node2-$$ fault-node3-$$)
WORK=$(mktemp -d /tmp/fault-test.XXXXXX)
CREATED_NS=()

# Kills every process this run started, by PID: the scenario runner, the nodes and any
# ai-core child that outlived its node. Each has the unique $WORK path in its command line.
kill_own_processes() {
    local file command_line pid
    for file in /proc/[0-9]*/cmdline; do
        command_line=$(tr '\0' ' ' 2>/dev/null <"$file") || continue
        pid=${file#/proc/}
        pid=${pid%/cmdline}
        if [[ $command_line == *"$WORK"* && $pid != "$$" ]]; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    kill_own_processes
    for ns in "${CREATED_NS[@]}"; do
        ip netns delete "$ns" 2>/dev/null || true
    done
    if [[ $status == 0 && $KEEP_WORK != 1 ]]; then
        rm -rf "$WORK"
    else
        echo "data and logs kept in $WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

add_namespace() {
    ip netns add "$1"
    CREATED_NS+=("$1")
    ip -n "$1" link set lo up
}

add_namespace "$ROUTER"
ip netns exec "$ROUTER" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
for n in 1 2 3; do
    ns=${NODE_NS[n - 1]}
    add_namespace "$ns"
    # Both veth ends are created inside the namespaces, so no link ever exists in the
    # root namespace and deleting the namespaces removes them.
    ip -n "$ROUTER" link add "node$n" type veth peer name eth0 netns "$ns"
    ip -n "$ROUTER" addr add "10.213.$n.1/24" dev "node$n"
    ip -n "$ROUTER" link set "node$n" up
    ip -n "$ns" addr add "10.213.$n.2/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "10.213.$n.1"
done

# In the background, so that `wait` returns at once when INT or TERM arrives and the
# cleanup runs without waiting for the scenarios to finish.
export PYTHONDONTWRITEBYTECODE=1
ip netns exec "$ROUTER" python3 scripts/fault/scenarios.py \
    --bin-dir "$BIN_DIR" --work "$WORK" --router "$ROUTER" --namespaces "$(IFS=,; echo "${NODE_NS[*]}")" &
status=0
wait $! || status=$?
exit "$status"
