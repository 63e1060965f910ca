#!/usr/bin/env bash
# Side-by-side CPU speed: our criterion benches (benches/cpu.rs) and PyTorch eager / ONNX Runtime
# (benches/compare_pytorch.py) on the same THREADS cores, one after the other in one run; the
# single-image restoration also as block medians on both sides (benches/restore_latency.rs),
# since on a 2-core VM every runtime's latency switches between a fast and a slow mode.
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
# The restoration again as interleaved pairs of blocks, one of ours (benches/restore_latency.rs)
# then one of PyTorch's, so that each pair shares a stretch of time and, mostly, a mode.
cargo bench -q --bench restore_latency --no-run 2>/dev/null
pairs=()
for _ in 1 2 3 4 5 6; do
  ours=$(BLOCKS=1 cargo bench -q --bench restore_latency 2>/dev/null | tail -n 1)
  theirs=$(RESTORE_BLOCKS=1 THREADS=$THREADS "$PYTHON" benches/compare_pytorch.py)
  pairs+=("[$ours, $theirs]")
done
"$PYTHON" - "$ours_step" "$ours_restore" "$ref" "${pairs[@]}" <<'PY'
import json, statistics, sys
step, restore, ref = float(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
pairs = [json.loads(p) for p in sys.argv[4:]]
pairs = [(o["ambient_restore_blocks_s"][0], t["torch_restore_blocks_s"][0]) for o, t in pairs]
b = ref["batch"]
print(f"threads {ref['threads']}, torch {ref['torch']}")
print(f"train step, batch {b}: ambient {step*1e3:.1f} ms ({b/step:.1f} img/s) | PyTorch eager {ref['torch_train_step_s']*1e3:.1f} ms ({ref['torch_train_images_per_s']:.1f} img/s) | ratio torch/ours {ref['torch_train_step_s']/step:.2f}")
ort = ref.get("ort_restore_s")
fmt = lambda ts: "/".join(f"{t*1e3:.2f}" for t in ts)
line = f"restore 1 image, criterion median against the runtimes' fastest blocks: ambient {restore*1e3:.2f} ms | PyTorch eager {ref['torch_restore_s']*1e3:.2f} ms (x{ref['torch_restore_s']/restore:.2f})"
if ort:
    line += f" | ONNX Runtime {ort*1e3:.2f} ms (x{ort/restore:.2f})"
print(line)
print(f"  their blocks (ms): PyTorch {fmt(ref['torch_restore_blocks_s'])}"
      + (f"; ONNX Runtime {fmt(ref['ort_restore_blocks_s'])}" if ort else ""))
ratios = [t / o for o, t in pairs]
print(f"restore 1 image, interleaved block pairs (ambient ms, PyTorch ms): "
      + ", ".join(f"{o*1e3:.2f}/{t*1e3:.2f}" for o, t in pairs)
      + f"; PyTorch/ambient median x{statistics.median(ratios):.2f} (range x{min(ratios):.2f}-x{max(ratios):.2f})")
PY
