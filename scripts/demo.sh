#!/usr/bin/env bash
# The live demo: start the three-node cluster, train on a generated dataset, predict
# from every node, SIGKILL the leader, keep working, and bring the old leader back.
# Expects release binaries in target/release (make demo builds them).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-target/release}
export BIN_DIR
DATA_ROOT=${DATA_ROOT:-disk}
export DATA_ROOT
CLIENT="$BIN_DIR/client"
WORK=$(mktemp -d)
declare -A CLIENT_PORT=([Node_A]=5000 [Node_B]=5001 [Node_C]=5002)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

leader_other_than() {
    local old=$1 deadline=$((SECONDS + 10)) current
    while ((SECONDS < deadline)); do
        current=$(scripts/cluster.sh leader || true)
        if [[ -n $current && $current != "$old" ]]; then
            echo "$current"
            return
        fi
        sleep 0.05
    done
    echo "no new leader within 10 s" >&2
    return 1
}

step "Starting the cluster (data in $DATA_ROOT/)"
scripts/cluster.sh stop >/dev/null
scripts/cluster.sh start

step "Generating circles.csv (500 rows: class 0 at radius 1, class 1 at radius 3)"
"$BIN_DIR/ai-core" generate circles --out "$WORK"

step "Training model circles-v1 (replicated to a majority before and after training)"
"$CLIENT" train "$WORK/circles.csv" --model circles-v1

step "Predicting from every node: (1.0, 0.2) is inside, (3.0, 0.1) is outside"
for node in Node_A Node_B Node_C; do
    echo "-- $node"
    "$CLIENT" --nodes "127.0.0.1:${CLIENT_PORT[$node]}" predict --model circles-v1 1.0,0.2
    "$CLIENT" --nodes "127.0.0.1:${CLIENT_PORT[$node]}" predict --model circles-v1 3.0,0.1
done

old_leader=$(scripts/cluster.sh leader)
step "Killing the leader $old_leader with SIGKILL"
started=$(date +%s%N)
scripts/cluster.sh kill "$old_leader"
new_leader=$(leader_other_than "$old_leader")
echo "new leader: $new_leader after $(( ($(date +%s%N) - started) / 1000000 )) ms"

step "Predicting again on the survivors"
"$CLIENT" predict --model circles-v1 1.0,0.2

step "Training a second model, circles-v2, with one node down"
"$CLIENT" train "$WORK/circles.csv" --model circles-v2 --epochs 50

step "Restarting $old_leader; it catches up from the log"
scripts/cluster.sh restart "$old_leader"
deadline=$((SECONDS + 20))
until "$CLIENT" --nodes "127.0.0.1:${CLIENT_PORT[$old_leader]}" --attempts 1 predict --model circles-v2 3.0,0.1 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "$old_leader did not catch up within 20 s" >&2; exit 1; }
    sleep 0.2
done
"$CLIENT" status
"$CLIENT" --nodes "127.0.0.1:${CLIENT_PORT[$old_leader]}" models

step "Files on every node (identical hashes)"
for node in Node_A Node_B Node_C; do
    (cd "$DATA_ROOT/$node" && sha256sum datasets/* models/* | sed "s/^/$node  /")
done
rm -rf "$WORK"

step "Done. The cluster is still running: watch it at http://127.0.0.1:8080/ and stop it with 'make stop'"
