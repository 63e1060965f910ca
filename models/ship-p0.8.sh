#!/usr/bin/env bash
# Refreshes models/ambient-mnist-p0.8.* from a finished ambient p = 0.8 training run (by default the
# one `ambient experiment paper --budget 1.0` trains): copies its EMA weights and training log,
# quantizes the int8 blob at the sigma `--sigma auto` picks, and measures everything the card
# (models/README.md) quotes, into models/ambient-mnist-p0.8.eval.json and .int8.txt, plus the
# card's two pictures. The card's text is then updated from those files.
#
#   models/ship-p0.8.sh [RUN_DIR]     (needs target/release/ambient: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${AMBIENT:-target/release/ambient}
run=${1:-runs/paper/models/ambient-p0.8-n60000-b64-ch32-seed0}
train_data=${TRAIN_DATA:-runs/paper/data/train-p0.8-n60000-seed1}
test_clean=data/mnist/t10k-images-idx3-ubyte.gz
m=models/ambient-mnist-p0.8
work=runs/ship-p0.8
[ -x "$B" ] || { echo "ship: $B not built (cargo build --release)" >&2; exit 1; }
[ -f "$run/model.safetensors" ] || { echo "ship: $run/model.safetensors: no finished run" >&2; exit 1; }
"$B" info "$run/checkpoint.safetensors"
mkdir -p "$work"

# Weights and log: temp file, then rename.
for f in model.safetensors:safetensors train_log.csv:train_log.csv; do
  cp "$run/${f%%:*}" "$m.${f##*:}.tmp" && mv "$m.${f##*:}.tmp" "$m.${f##*:}"
done

# The card's test measurements: the first 500 MNIST test images at p = 0.8, corruption seed 1.
[ -f "$work/test/corruption.json" ] ||
  "$B" corrupt --input "$test_clean" --p 0.8 --seed 1 --limit 500 --out "$work/test"

# f32: NFE = 1 restoration against harmonic and biharmonic inpainting, sigma chosen by "auto".
"$B" eval restore --weights "$m.safetensors" --data "$work/test" --clean "$test_clean" --limit 500 \
  --baseline biharmonic --baseline harmonic --json "$m.eval.json.tmp"
mv "$m.eval.json.tmp" "$m.eval.json"
sigma=$(python3 -c 'import json,sys; print("%g" % json.load(open(sys.argv[1]))["sigma"])' "$m.eval.json")
echo "ship: sigma auto = $sigma"

# int8 at that sigma (recorded in the blob), calibrated on 256 training measurements; its PSNR
# on the same 500.
"$B" quantize --weights "$m.safetensors" --data "$train_data" --limit 256 --sigma "$sigma" \
  --out "$work/model.int8.blob"
cp "$work/model.int8.blob" "$m.int8.blob.tmp" && mv "$m.int8.blob.tmp" "$m.int8.blob"
"$B" restore --int8 "$m.int8.blob" --data "$work/test" --clean "$test_clean" \
  --out "$work/restore-int8" 2>&1 | tee "$m.int8.txt"

# Pictures: measurement / restoration pairs (f32) and 64 fixed-mask samples.
"$B" restore --weights "$m.safetensors" --data "$work/test" --clean "$test_clean" --limit 64 \
  --sigma "$sigma" --out "$work/restore"
cp "$work/restore/pairs.png" "$m.restorations.png"
"$B" sample --weights "$m.safetensors" --n 64 --steps 32 --seed 0 --out "$work/samples"
cp "$work/samples/samples.png" "$m.samples.png"
echo "ship: done; update models/README.md from $m.eval.json and $m.int8.txt"
