#!/usr/bin/env bash
# Builds the firmware demo and runs it under QEMU (mps2-an386, Cortex-M4F). The firmware
# restores the embedded measurements and exits 0 only if every restoration's CRC-32 equals the
# one the host's int8 runner wrote to assets/expected.bin (checked on the host side by
# `cargo test -p ambient-cpu --test quantize_firmware`). Prints the sections' sizes (flash:
# .vector_table + .text + .rodata + .data; RAM: .data + .bss + .uninit, plus the stack).
#
# Regenerate the assets from a blob (see README.md):
#   AMBIENT_FW_BLOB=model.blob AMBIENT_FW_DATA=DIR AMBIENT_FW_CLEAN=t10k-images-idx3-ubyte.gz \
#     cargo test -p ambient-cpu --test quantize_firmware -- --ignored
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release
elf=target/thumbv7em-none-eabihf/release/firmware-demo
for size in llvm-size rust-size arm-none-eabi-size; do
  if command -v "$size" >/dev/null; then
    "$size" -A "$elf" | grep -E '^\.(vector_table|text|rodata|data|bss|uninit)'
    break
  fi
done
qemu=(qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic
      -semihosting-config enable=on,target=native -icount shift=0)
set +e
"${qemu[@]}" -kernel "$elf"
rc=$?
set -e
if [[ $rc -eq 0 ]]; then echo "firmware: PASS"; else echo "firmware: FAIL (exit $rc)"; fi
exit $rc
