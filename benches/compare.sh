#!/usr/bin/env bash
# Side-by-side CPU speed: our criterion benches (benches/cpu.rs) and PyTorch eager / ONNX Runtime
# (benches/compare_pytorch.py) on the same THREADS cores, one after the other in one run.
# Needs a Python with torch, onnx, onnxruntime, onnxscript (PYTHON, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-python3}
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS
# Figures are only meaningful on an otherwise idle machine. With autogroup scheduling a `nice`
# background job still takes a whole core's share from the benchmark, so warn on any load.
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  echo "warning: load average $load before benchmarking: other processes will skew every figure" >&2
fi
cargo bench --bench cpu -- --noplot >&2
median() { "$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['median']['point_estimate']/1e9)" "$1"; }
ours_step=$(median target/criterion/spec_config/train_step_batch64/new/estimates.json)
ours_restore=$(median target/criterion/spec_config/restore_single_image/new/estimates.json)
ref=$(THREADS=$THREADS "$PYTHON" benches/compare_pytorch.py)
"$PYTHON" - "$ours_step" "$ours_restore" "$ref" <<'PY'
import json, sys
step, restore, ref = float(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
b = ref["batch"]
print(f"threads {ref['threads']}, torch {ref['torch']}")
print(f"train step, batch {b}: ambient {step*1e3:.1f} ms ({b/step:.1f} img/s) | PyTorch eager {ref['torch_train_step_s']*1e3:.1f} ms ({ref['torch_train_images_per_s']:.1f} img/s) | ratio torch/ours {ref['torch_train_step_s']/step:.2f}")
ort = ref.get("ort_restore_s")
line = f"restore 1 image: ambient {restore*1e3:.2f} ms | PyTorch eager {ref['torch_restore_s']*1e3:.2f} ms (x{ref['torch_restore_s']/restore:.2f})"
if ort:
    line += f" | ONNX Runtime {ort*1e3:.2f} ms (x{ort/restore:.2f})"
print(line)
PY
