#!/usr/bin/env bash
# Runs every benchmark and records the raw output in docs/BENCHMARKS.md.
#
#   1. the cluster benchmark (cargo bench -p node --bench cluster): replicated
#      1 KiB writes with 1 and 8 clients, and leader failover;
#   2. scripts/bench-ai-core.sh, when it exists: ai-core training throughput;
#   3. `client stress -n 1000` with 8 and then 1 concurrent requests, when the
#      client has a stress command, against a cluster started here with
#      scripts/cluster.sh on the default ports and a temporary DATA_ROOT.
#
# The output of the last run replaces the part of docs/BENCHMARKS.md between
# the "bench.sh output" markers, and docs/BENCHMARKS-ai-core.md, when it
# exists, replaces the part between the "ai-core" markers. The text outside
# the markers is written by hand.
#
# Usage: scripts/bench.sh
# Environment:
#   CARGO_TARGET_DIR      where the release binaries are (default: target)
#   CLUSTER_BENCH_ARGS    options of the cluster benchmark (default: none;
#                         `cargo bench -p node --bench cluster -- --help` lists them)
#   BENCH_OUT             directory for raw output (default: a new temp dir)
#   BENCH_STEP_TIMEOUT    time limit of each step, in seconds (default 1200)
#   BENCH_UPDATE_DOC=0    leave docs/BENCHMARKS.md unchanged
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
bin="$CARGO_TARGET_DIR/release"
out="${BENCH_OUT:-$(mktemp -d -t bench-XXXXXX)}"
step_timeout="${BENCH_STEP_TIMEOUT:-1200}"
mkdir -p "$out"
failed=()

echo "== build (release)"
cargo build --release -p node -p ai-core -p client || exit 1

echo "== machine"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores (nproc)"
    echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

echo "== cluster benchmark"
# Progress goes to stderr and only the result table, on stdout, goes to the file.
# shellcheck disable=SC2086 # CLUSTER_BENCH_ARGS is a list of options.
BENCH_JSON="$out/cluster.json" timeout "$step_timeout" \
    cargo bench -p node --bench cluster -- ${CLUSTER_BENCH_ARGS:-} | tee "$out/cluster.txt"
[[ ${PIPESTATUS[0]} -eq 0 ]] || failed+=("cluster benchmark")

if [[ -x scripts/bench-ai-core.sh ]]; then
    echo "== ai-core benchmark (scripts/bench-ai-core.sh)"
    timeout "$step_timeout" scripts/bench-ai-core.sh "$out/ai-core-work" 2>&1 | tee "$out/ai-core.txt"
    [[ ${PIPESTATUS[0]} -eq 0 ]] || failed+=("ai-core benchmark")
else
    echo "== ai-core benchmark: scripts/bench-ai-core.sh not found; skipped"
fi

# Prints the default cluster ports that something already listens on.
ports_in_use() {
    local port
    for port in 5000 5001 5002 6000 6001 6002 8080 8081 8082; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo -n "$port "
        fi
    done
}

stress_cluster_started=""
stop_stress_cluster() {
    if [[ -n $stress_cluster_started ]]; then
        DATA_ROOT="$out/stress-disk" BIN_DIR="$bin" scripts/cluster.sh stop
        stress_cluster_started=""
    fi
}
trap stop_stress_cluster EXIT

if ! "$bin/client" stress --help >/dev/null 2>&1; then
    echo "== client stress: $bin/client has no stress command; skipped"
elif busy="$(ports_in_use)"; [[ -n $busy ]]; then
    echo "== client stress: ports $busy are in use (another cluster?); skipped" | tee "$out/stress-skipped.txt"
    failed+=("client stress (ports in use)")
else
    echo "== client stress against a cluster on the default ports"
    if DATA_ROOT="$out/stress-disk" BIN_DIR="$bin" scripts/cluster.sh start; then
        stress_cluster_started=yes
        for concurrency in 8 1; do
            echo "-- client stress -n 1000 --concurrency $concurrency"
            timeout "$step_timeout" "$bin/client" stress -n 1000 --concurrency "$concurrency" --max-seconds 600 \
                2>&1 | tee "$out/stress-c$concurrency.txt"
            [[ ${PIPESTATUS[0]} -eq 0 ]] || failed+=("client stress --concurrency $concurrency")
        done
        stop_stress_cluster
    else
        failed+=("starting the stress cluster")
        stress_cluster_started=yes
        stop_stress_cluster
    fi
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"

if [[ ${BENCH_UPDATE_DOC:-1} != 0 ]]; then
    python3 - "$out" docs/BENCHMARKS.md docs/BENCHMARKS-ai-core.md <<'PY'
import os
import re
import sys

out, doc_path, ai_core_path = sys.argv[1:4]


def read(name):
    path = os.path.join(out, name)
    return open(path, encoding="utf-8", errors="replace").read().strip() if os.path.exists(path) else None


def strip_build_lines(text):
    keep = [l for l in text.splitlines() if not re.match(r"\s*(Compiling|Finished|Running|Blocking|warning:)", l)]
    return "\n".join(keep).strip()


def replace_between(text, name, body):
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        return text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    return text.rstrip() + "\n\n" + block + "\n"


parts = ["### Machine\n\n```\n" + (read("machine.txt") or "not recorded") + "\n```"]
steps = [
    ("cluster.txt", "Cluster benchmark (`cargo bench -p node --bench cluster`)"),
    ("ai-core.txt", "ai-core benchmark (`scripts/bench-ai-core.sh`)"),
    ("stress-c8.txt", "`client stress -n 1000 --concurrency 8`"),
    ("stress-c1.txt", "`client stress -n 1000 --concurrency 1`"),
    ("stress-skipped.txt", "`client stress`"),
]
for name, title in steps:
    text = read(name)
    if text is not None:
        parts.append(f"### {title}\n\n```\n{strip_build_lines(text)}\n```")

doc = open(doc_path, encoding="utf-8").read() if os.path.exists(doc_path) else "# Benchmarks\n"
doc = replace_between(doc, "bench.sh output", "\n\n".join(parts))
if os.path.exists(ai_core_path):
    # One heading level down, so that the merged page keeps a single title. Lines in
    # code blocks stay as they are.
    lines, in_code = [], False
    for line in open(ai_core_path, encoding="utf-8").read().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        lines.append("#" + line if not in_code and re.match(r"#+ ", line) else line)
    doc = replace_between(doc, "ai-core", "\n".join(lines))
open(doc_path, "w", encoding="utf-8").write(doc)
print(f"updated {doc_path}")
PY
fi

echo "raw output: $out"
if ((${#failed[@]})); then
    echo "failed steps: ${failed[*]}" >&2
    exit 1
fi
