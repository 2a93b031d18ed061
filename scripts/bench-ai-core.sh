#!/usr/bin/env bash
# Benchmarks ai-core: training throughput on large_dataset.csv (batch 32,
# 20 epochs, SGD and Adam), predictions per second through `ai-core serve`,
# and peak memory while training on a generated CSV of about 100 MB.
# When python3 has scikit-learn or PyTorch, it trains the same network on
# the same file for a ratio; without them that part is skipped.
#
# Usage: scripts/bench-ai-core.sh [work-dir]   (default: a new temp dir)
# Environment: THREADS (default: nproc), SERVE_REQUESTS (default 20000),
# BIG_ROWS (rows of the ~100 MB CSV, default 690000), REALTIME=1 to run the
# training runs under `chrt -f 10` (needs root), which approximates an idle
# machine when other processes share the cores.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
threads="${THREADS:-$(nproc)}"
serve_requests="${SERVE_REQUESTS:-20000}"
big_rows="${BIG_ROWS:-690000}"
priority=()
if [ "${REALTIME:-0}" = 1 ]; then
    priority=(chrt -f 10)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

echo "== build (release)"
cargo build --release -p ai-core --manifest-path "$root/Cargo.toml" >&2
bin="$CARGO_TARGET_DIR/release"
mkdir -p "$work"
cd "$work"

echo "== machine"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

"$bin/ai-core" generate large --out . >/dev/null
echo "== training throughput (large_dataset.csv, batch 32, 20 epochs, $threads threads) ${priority[*]}"
"${priority[@]}" "$bin/bench-train" large_dataset.csv --epochs 20 --batch-size 32 --threads "$threads" --repeat 5

echo "== training throughput, 1 thread ${priority[*]}"
"${priority[@]}" "$bin/bench-train" large_dataset.csv --epochs 20 --batch-size 32 --threads 1 --repeat 5

echo "== predictions per second through ai-core serve ($serve_requests requests)"
"$bin/ai-core" train large_dataset.csv bench --models-dir models --epochs 5 --threads "$threads" 2>/dev/null >/dev/null
vector="$(seq 20 | awk '{printf "%s0.%d", (NR > 1 ? "," : ""), NR % 10}')"
awk -v n="$serve_requests" -v v="$vector" \
    'BEGIN { for (i = 1; i <= n; i++) printf "{\"id\":%d,\"model_id\":\"bench\",\"inputs\":[[%s]]}\n", i, v }' \
    > requests.jsonl
start=$(date +%s.%N)
"$bin/ai-core" serve --models-dir models < requests.jsonl 2>/dev/null > responses.jsonl
end=$(date +%s.%N)
answered=$(grep -c '"success":true' responses.jsonl || true)
awk -v n="$answered" -v s="$start" -v e="$end" \
    'BEGIN { printf "single-row requests: %d answered in %.3f s = %.0f predictions/s\n", n, e - s, n / (e - s) }'

batch_requests=$((serve_requests / 100))
awk -v n="$batch_requests" -v v="$vector" \
    'BEGIN { for (i = 1; i <= n; i++) { printf "{\"id\":%d,\"model_id\":\"bench\",\"inputs\":[", i;
             for (j = 0; j < 100; j++) printf "%s[%s]", (j ? "," : ""), v; print "]}" } }' > batch.jsonl
start=$(date +%s.%N)
"$bin/ai-core" serve --models-dir models < batch.jsonl 2>/dev/null > batch-responses.jsonl
end=$(date +%s.%N)
answered=$(grep -c '"success":true' batch-responses.jsonl || true)
awk -v n="$answered" -v s="$start" -v e="$end" \
    'BEGIN { printf "100-row requests: %d answered in %.3f s = %.0f predictions/s\n", n, e - s, 100 * n / (e - s) }'

echo "== peak memory training on a ~100 MB CSV ($big_rows rows, 1 epoch)"
mkdir -p big
"$bin/ai-core" generate large --out big --rows "$big_rows" >/dev/null
echo "file size: $(du -m big/large_dataset.csv | cut -f1) MB"
/usr/bin/time -v "$bin/ai-core" train big/large_dataset.csv big --models-dir models --epochs 1 \
    --threads "$threads" --json 2> time.txt | head -c 300; echo
grep -E "Maximum resident set size|Elapsed \(wall clock\)" time.txt

echo "== reference libraries on large_dataset.csv (same network, batch 32, 20 epochs)"
if python3 -c "import sklearn" 2>/dev/null; then
    python3 - <<'PY'
import time, warnings
import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import MinMaxScaler

data = np.loadtxt("large_dataset.csv", delimiter=",", skiprows=1)
x = MinMaxScaler(feature_range=(-1, 1)).fit_transform(data[:, :-1])
y = data[:, -1]
warnings.filterwarnings("ignore")
for solver, rate in (("sgd", 0.1), ("adam", 0.005)):
    model = MLPClassifier(hidden_layer_sizes=(64, 32), batch_size=32, max_iter=20, solver=solver,
                          learning_rate_init=rate, momentum=0.0, tol=0.0, n_iter_no_change=1000,
                          random_state=42)
    start = time.perf_counter()
    model.fit(x, y)
    seconds = time.perf_counter() - start
    print(f"scikit-learn {solver}: {len(y) * 20 / seconds:.0f} samples/s, accuracy {model.score(x, y):.4f}")
PY
else
    echo "scikit-learn not installed; skipped"
fi
if python3 -c "import torch" 2>/dev/null; then
    python3 - <<'PY'
import time
import numpy as np
import torch

data = np.loadtxt("large_dataset.csv", delimiter=",", skiprows=1, dtype=np.float32)
x = data[:, :-1]
x = 2 * (x - x.min(0)) / (x.max(0) - x.min(0)) - 1
x, y = torch.from_numpy(x), torch.from_numpy(data[:, -1:])
torch.manual_seed(42)
for name in ("sgd", "adam"):
    net = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32),
                              torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.1) if name == "sgd" else torch.optim.Adam(net.parameters(), lr=0.005)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    start = time.perf_counter()
    for epoch in range(20):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            batch = order[i:i + 32]
            opt.zero_grad()
            loss_fn(net(x[batch]), y[batch]).backward()
            opt.step()
    seconds = time.perf_counter() - start
    accuracy = ((net(x) > 0).float() == y).float().mean().item()
    print(f"pytorch {name}: {len(x) * 20 / seconds:.0f} samples/s, accuracy {accuracy:.4f}")
PY
else
    echo "torch not installed; skipped"
fi
