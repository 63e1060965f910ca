"""PyTorch eager on the GPU beside ambient's CUDA backend (host-cuda/tests/net_device.rs,
bench_batch256_training_memory_and_leak): AmbientUNet v1 of benches/torch_ref.py (the network
that reproduces tests/golden), spec config, batch 256, f32 (TF32 off, as ours), on cuda:0.

Measures one ambient training step (forward, loss, backward, gradient clipping at 1, Adam),
and one denoiser call D(y, A, s) at batch 256: images/s over timed steps after a warm-up, and
torch.cuda.max_memory_allocated. Prints lines starting with "BENCH torch".

With --profile, also prints torch.profiler's table of GPU time per kernel over 5 training
steps (lines "PROFILE torch"), beside the profile of ours in net_device.rs.

Run: python3 benches/cuda_torch_bench.py [steps] [--profile]   (needs torch with CUDA)
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from torch_ref import AmbientUNet, ambient_loss  # noqa: E402


def main():
    args = [a for a in sys.argv[1:] if a != "--profile"]
    steps = int(args[0]) if args else 200
    if not torch.cuda.is_available():
        print("BENCH torch: no CUDA device")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda:0")
    torch.manual_seed(0)
    batch = 256
    model = AmbientUNet(img_channels=1, ch=32, mult=(1, 2, 2), blocks=1, groups=8).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x0 = torch.rand(batch, 1, 28, 28, device=dev) * 2 - 1
    a = (torch.rand(batch, 1, 28, 28, device=dev) > 0.5).float()

    def step():
        a_tilde = a * (torch.rand_like(a) > 0.2).float()
        sigma = torch.exp(torch.randn(batch, device=dev) * 1.2 - 1.2)
        y = a_tilde * (x0 + sigma[:, None, None, None] * torch.randn_like(x0))
        loss = ambient_loss(model(y, a_tilde, sigma), a * x0, a, a_tilde, sigma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps):
        loss = step()
    torch.cuda.synchronize()
    secs = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"BENCH torch train batch 256 ({torch.cuda.get_device_name(0)}, torch {torch.__version__}): "
          f"{steps} steps in {secs:.1f} s = {batch * steps / secs:.0f} images/s ({1e3 * secs / steps:.1f} ms/step), "
          f"last loss {loss.item():.4f}, peak allocated {peak:.2f} GiB")
    sigma = torch.full((batch,), 0.1, device=dev)
    with torch.no_grad():
        for _ in range(5):
            model(a * x0, a, sigma)
        torch.cuda.synchronize()
        calls = 50
        t = time.perf_counter()
        for _ in range(calls):
            model(a * x0, a, sigma)
        torch.cuda.synchronize()
        secs = time.perf_counter() - t
    print(f"BENCH torch denoise batch 256: {batch * calls / secs:.0f} images/s ({1e3 * secs / calls:.1f} ms/call)")
    if "--profile" in sys.argv[1:]:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                step()
            torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=30, max_name_column_width=70)
        print("PROFILE torch, 5 training steps at batch 256:")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
