"""Side-by-side speed reference: PyTorch eager (and ONNX Runtime for restoration) running
AmbientUNet v1 (benches/torch_ref.py) on the same CPU threads as our criterion benches.

Measures, for the spec config (C = 1, 28 x 28, ch 32, mult [1, 2, 2], blocks 1):
  - one ambient training step at batch 64 (forward, loss, backward, Adam): median seconds, images/s;
  - one single-image restoration D(y, A, s_r) (NFE = 1): latency, PyTorch eager and ONNX Runtime,
    as the median of each of 5 blocks of 150 calls; the fastest block is the figure compared.
On this project's 2-core machines both runtimes' single-image latency is bimodal (PyTorch about
5.2-5.5 ms or 8.5-9.3 ms), switching between processes and within one; flushing denormals
(torch.set_flush_denormal) does not change it (12 processes, 2026-11-28). Taking each
runtime's fastest block compares against its fast mode, in our disfavour.
Prints one JSON object; benches/compare.sh joins it with `cargo bench` medians.

Setup: python3 -m venv venv && venv/bin/pip install torch numpy onnx onnxruntime onnxscript safetensors
"""
import json
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from torch_ref import AmbientUNet, ambient_loss  # noqa: E402


def median_time(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def block_medians(fn, warmup, blocks=5, reps=150):
    """The median seconds of each of `blocks` runs of `reps` calls, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(blocks):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out.append(statistics.median(times))
    return out


def main():
    threads = int(os.environ.get("THREADS", "2"))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    batch = int(os.environ.get("BATCH", "64"))
    model = AmbientUNet(img_channels=1, ch=32, mult=(1, 2, 2), blocks=1, groups=8)
    # Non-zero conv2/out_conv weights, as after some training (zeros would not change the cost).
    for n, p in model.named_parameters():
        if n.endswith("conv2.weight") or n == "out_conv.weight":
            torch.nn.init.uniform_(p, -0.05, 0.05)
    if os.environ.get("RESTORE_BLOCKS"):
        # Only PyTorch's restoration, as RESTORE_BLOCKS block medians (compare.sh interleaves
        # these with ours).
        model.eval()
        g = torch.Generator().manual_seed(1)
        m1 = (torch.rand(1, 1, 28, 28, generator=g) > 0.8).float()
        y1 = m1 * (torch.rand(1, 1, 28, 28, generator=g) * 2 - 1)
        with torch.inference_mode():
            blocks = block_medians(lambda: model(y1, m1, torch.tensor([0.1])), 20,
                                   blocks=int(os.environ["RESTORE_BLOCKS"]))
        print(json.dumps({"torch_restore_blocks_s": blocks}))
        return
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x0 = torch.rand(batch, 1, 28, 28) * 2 - 1
    a = (torch.rand(batch, 1, 28, 28) > 0.8).float()
    at = a * (torch.rand(batch, 1, 28, 28) > 0.1).float()
    def train_step():
        sigma = torch.exp(torch.randn(batch) * 1.2 - 1.2)
        y = at * (a * x0 + sigma[:, None, None, None] * torch.randn_like(x0))
        d = model(y, at, sigma)
        loss = ambient_loss(d, x0, a, at, sigma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step_s = median_time(train_step, 3, 15)

    model.eval()
    y1 = at[:1] * x0[:1]
    m1 = at[:1]
    s1 = torch.tensor([0.1])
    with torch.inference_mode():
        restore_blocks = block_medians(lambda: model(y1, m1, s1), 20)

    ort_blocks = None
    try:
        import onnxruntime as ort

        path = os.path.join(tempfile.mkdtemp(), "ambient_unet.onnx")
        with torch.no_grad():
            torch.onnx.export(model, (y1, m1, s1), path, input_names=["y", "m", "sigma"],
                              output_names=["d"], opset_version=17, dynamo=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feeds = {"y": y1.numpy(), "m": m1.numpy(), "sigma": s1.numpy()}
        out = sess.run(None, feeds)[0]
        with torch.inference_mode():
            ref = model(y1, m1, s1).numpy()
        assert abs(out - ref).max() < 1e-3, "ONNX export disagrees with eager"
        ort_blocks = block_medians(lambda: sess.run(None, feeds), 20)
    except Exception as e:  # report, do not hide
        print(f"onnxruntime: {e}", file=sys.stderr)

    print(json.dumps({
        "threads": threads,
        "torch": torch.__version__,
        "batch": batch,
        "torch_train_step_s": step_s,
        "torch_train_images_per_s": batch / step_s,
        "torch_restore_s": min(restore_blocks),
        "torch_restore_blocks_s": restore_blocks,
        "ort_restore_s": min(ort_blocks) if ort_blocks else None,
        "ort_restore_blocks_s": ort_blocks,
    }))


if __name__ == "__main__":
    main()
