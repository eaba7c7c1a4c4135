#!/usr/bin/env bash
# The prepared GPU check of lossbook (one script, well under 10 minutes on one GPU).
#
#   bash benchmarks/gpu_check.sh          # from anywhere; PYTHON=/path/to/python to choose the interpreter
#
# On a machine with CUDA it runs, each stage under its own time limit:
#   1. the CUDA parity tests of the generic suite: every registered loss, CPU float64 vs CUDA
#      float64 / float32 / bfloat16 (pytest tests/test_generic.py -k cuda)            <= 150 s
#   2. torch.compile (inductor) on CUDA for every loss, values and gradients vs eager  <= 240 s
#   3. the benchmark suite on CUDA, eager, small/medium/large, plus the linear
#      cross-entropy case (N=8192, D=256, V=32768)                                     <= 180 s
# and prints a short table last. On a CPU-only machine it says so and exits 0 (nothing to check).
# Exit status: 0 when every stage passed, 1 otherwise (the table says which).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -x /work/venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=/work/venv/bin/python; fi

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False)."
  echo "gpu_check: skipped the CUDA parity tests, the CUDA compile check and the CUDA benchmark; nothing failed."
  exit 0
fi

LOG=$(mktemp -d)
"$PY" -c "import torch; print('gpu_check:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"

echo "== 1/3 CUDA parity (pytest tests/test_generic.py -k cuda)"
timeout 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_generic.py -k cuda 2>&1 | tee "$LOG/parity.txt" | tail -15
parity_rc=${PIPESTATUS[0]}

echo "== 2/3 torch.compile on CUDA, every loss"
timeout 240 "$PY" benchmarks/compile_check.py --device cuda --budget 200 2>&1 | tee "$LOG/compile.txt" | grep -v " ok " | tail -25
compile_rc=${PIPESTATUS[0]}

echo "== 3/3 benchmark suite on CUDA (eager) + linear cross-entropy"
timeout 180 "$PY" benchmarks/run.py --device cuda --no-compile --with-linear-ce > "$LOG/bench.txt" 2>&1
bench_rc=$?
tail -12 "$LOG/bench.txt"

"$PY" - "$LOG" "$parity_rc" "$compile_rc" "$bench_rc" <<'EOF'
import json, pathlib, re, sys
log, rcs = pathlib.Path(sys.argv[1]), [int(x) for x in sys.argv[2:]]
def last(path, pattern):
    lines = [l for l in (log / path).read_text(errors="replace").splitlines() if re.search(pattern, l)]
    return lines[-1].strip() if lines else "(no summary line)"
rows = [("CUDA parity", rcs[0], last("parity.txt", r"passed|failed|error")),
        ("compile (inductor)", rcs[1], last("compile.txt", r"^compile check")),
        ("benchmark", rcs[2], last("bench.txt", r"rows, .* missed"))]
res = pathlib.Path("benchmarks/results")
lce = res / "linear_ce_cuda.json"
if lce.exists():
    d = json.loads(lce.read_text())
    rows.append(("linear CE 8192x256x32768", 0 if d["status"] == "ok" else 1,
                 f"memory {d['mem_ratio']:.3f}x, time {d['ratio']:.2f}x of naive"))
cuda = res / "cuda.json"
if cuda.exists():
    data = json.loads(cuda.read_text())["rows"]
    miss = sorted({r["loss"] for r in data if r.get("status") in ("MISS", "error")})
    rows.append(("targets missed on CUDA", 0, ", ".join(miss[:8]) + (" ..." if len(miss) > 8 else "") or "none"))
print("\n=== gpu_check summary")
for name, rc, text in rows:
    state = "ok" if rc == 0 else ("TIMEOUT" if rc == 124 else "FAIL")
    print(f"{name:26s} {state:7s} {text}")
sys.exit(0 if all(rc == 0 for _, rc, _ in rows[:3]) else 1)
EOF
