#!/usr/bin/env bash
# The device check, on a GPU machine, in one call: runs the test binaries that
# prepare-device-check.sh built (carried in target/cuda-check) against the real driver.
# Prints the GPU and driver, checks that libcuda.so.1 resolves to the real driver and not to
# the CI stub, runs every test binary with its output (ignored tests included: the batch-256
# bench with its memory and leak check), the command line with --backend cuda on MNIST (train,
# restore beside the CPU, sample; pictures to $OUT), then PyTorch eager's bench on the same GPU
# (benches/cuda_torch_bench.py), prints a summary, and fails if any test failed or skipped for
# want of a device. Copies its log to $OUT when that is set.
#   run: bash host-cuda/device-check.sh   (carry: target/cuda-check)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dir="$root/target/cuda-check"
log="$(mktemp)"
status=0
{
  echo "== GPU and driver"
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv ||
    echo "nvidia-smi not available"
  ls "$dir"/bin/* >/dev/null 2>&1 || { echo "FAIL: no test binaries in $dir/bin (run prepare-device-check.sh and carry target/cuda-check)"; exit 1; }
  echo "== libcuda.so.1 as the binaries load it"
  for b in "$dir"/bin/*; do
    resolved="$(ldd "$b" | grep 'libcuda.so' || true)"
    echo "$(basename "$b"): ${resolved:-does not load libcuda}"
    case "$resolved" in *cuda-stub*) echo "FAIL: $(basename "$b") loads the CI stub"; status=1 ;; esac
  done
  # The carried PTX, in a writable copy (the cache stores what it compiles there).
  export AMBIENT_PTX_CACHE="$(mktemp -d)"
  cp -r "$dir/ptx/." "$AMBIENT_PTX_CACHE/" 2>/dev/null || true
  echo "PTX cache: $(ls "$AMBIENT_PTX_CACHE" | tr '\n' ' ')"
  for b in "$dir"/bin/*; do
    echo "== $(basename "$b")"
    "$b" --nocapture --test-threads=1 --include-ignored || status=1
  done
  cli="$dir/cli/ambient"
  if [ -x "$cli" ]; then
    echo "== the command line with --backend cuda (MNIST, p = 0.8)"
    work="$(mktemp -d)"
    run() { echo "+ ambient $*"; "$cli" "$@" || { echo "FAIL: ambient $1"; status=1; }; }
    run corrupt --input data/mnist/train-images-idx3-ubyte.gz --p 0.8 --seed 1 --limit 4096 --out "$work/train"
    run corrupt --input data/mnist/t10k-images-idx3-ubyte.gz --p 0.8 --seed 1 --limit 500 --out "$work/test"
    run train --data "$work/train" --out "$work/run" --steps 200 --batch 256 --preview 0 --backend cuda
    tail -n 3 "$work/run/train_log.csv"
    for b in cuda cpu; do
      run restore --weights models/ambient-mnist-p0.8.safetensors --data "$work/test" --out "$work/restore-$b" \
        --sigma 0.1 --clean data/mnist/t10k-images-idx3-ubyte.gz --backend $b
    done
    run sample --weights models/ambient-mnist-p0.8.safetensors --out "$work/samples" --n 64 --backend cuda
    run sample --weights models/ambient-mnist-p0.8.safetensors --out "$work/guided" --n 16 --steps 16 --guidance 2 --backend cuda
    if [ -n "${OUT:-}" ]; then
      cp "$work/restore-cuda/pairs.png" "$OUT/cuda-restore-pairs.png" 2>/dev/null || true
      cp "$work/samples/samples.png" "$OUT/cuda-samples.png" 2>/dev/null || true
      cp "$work/guided/samples.png" "$OUT/cuda-guided-samples.png" 2>/dev/null || true
      cp "$work/run/train_log.csv" "$OUT/cuda-train_log.csv" 2>/dev/null || true
    fi
  else
    echo "no $cli: the command line was not checked"
  fi
  echo "== PyTorch eager on the same GPU (benches/cuda_torch_bench.py)"
  py="${PYTHON:-python3}"
  timeout 300 "$py" benches/cuda_torch_bench.py 200 || echo "PyTorch bench did not run (no torch with CUDA for $py?)"
  exit $status
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if grep -q "no CUDA device: skipping" "$log"; then
  echo "FAIL: tests skipped for want of a device on a GPU machine"
  status=1
fi
echo "== summary"
grep -E "^test .* (ok|FAILED)$|relative error|bit for bit|of its bound|^BENCH|^TILES|GPU busy|^PROFILE host|^step (1|5|10|20|30):|worst|^PSNR|^FAIL|trained .* steps" "$log" | sed 's/^/  /'
[ -n "${OUT:-}" ] && cp "$log" "$OUT/device-check.log"
echo "device check: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit $status
