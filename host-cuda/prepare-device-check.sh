#!/usr/bin/env bash
# Prepares the one-call device check, here, without a GPU: builds ambient-cuda's test binaries
# against the link-time driver stub, copies them to target/cuda-check/bin (debug info stripped,
# to stay small enough to carry), and, where NVRTC is available here (AMBIENT_NVRTC), compiles
# the kernels' PTX for the compute capabilities in $ARCHS (default "90 80": H100/H200, A100)
# into target/cuda-check/ptx, so that the GPU machine needs no NVRTC of its own; and the
# `ambient` command built with --features cuda (target/cuda-check/cli).
# Then, on the GPU machine, with target/cuda-check carried: host-cuda/device-check.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="$root/target/cuda-check"

host-cuda/stub/build-stub.sh
export CUDA_LIBRARY_PATH="$root/target/cuda-stub"
export LD_LIBRARY_PATH="$root/target/cuda-stub/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

bins="$(cargo test -p ambient-cuda --features cuda --no-run --message-format=json |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')"
rm -rf "$out"
mkdir -p "$out/bin" "$out/ptx"
for b in $bins; do
  strip --strip-debug -o "$out/bin/$(basename "$b")" "$b"
done

# The command line with --backend cuda, for the end-to-end part of the check.
cargo build -q --release --features cuda
mkdir -p "$out/cli"
strip -o "$out/cli/ambient" target/release/ambient

if [ -n "${AMBIENT_NVRTC:-}" ]; then
  AMBIENT_PTX_CACHE="$out/ptx" cargo run -q -p ambient-cuda --features cuda --example precompile_ptx -- ${ARCHS:-90 80}
else
  echo "prepare-device-check: AMBIENT_NVRTC not set: no PTX prepared (the GPU machine must have NVRTC)"
fi
ls -l "$out/bin" "$out/ptx"
du -sh "$out"
