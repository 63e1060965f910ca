"""AmbientUNet v1 in PyTorch, written from docs/ambient-unet-spec.md, for the speed comparison
of benches/compare_pytorch.py (and as a third reading of the spec: `--check-golden` compares
it with tests/golden, which came from another implementation).

Weights load from our safetensors files by the spec's tensor names.
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F_


class GatedConv(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.gate = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.empty(cout))
        bound = 1.0 / math.sqrt(cin * k * k)
        for p in (self.weight, self.gate, self.bias):
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x):
        pad = self.k // 2
        both = F_.conv2d(x, torch.cat([self.weight, self.gate], 0), padding=pad)
        main, gate = both.chunk(2, dim=1)
        return main * torch.sigmoid(gate) + self.bias[None, :, None, None]


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = GatedConv(cin, cout, 3)
        self.emb_proj = nn.Linear(emb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.conv2 = GatedConv(cout, cout, 3)
        nn.init.zeros_(self.conv2.weight)
        self.skip = GatedConv(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F_.silu(self.norm1(x)))
        h = h + self.emb_proj(emb)[:, :, None, None]
        h = self.conv2(F_.silu(self.norm2(h)))
        skip = x if self.skip is None else self.skip(x)
        return (h + skip) / math.sqrt(2.0)


class AmbientUNet(nn.Module):
    def __init__(self, img_channels=1, ch=32, mult=(1, 2, 2), blocks=1, groups=8, sigma_data=0.5, **_):
        super().__init__()
        self.ch, self.mult, self.blocks, self.sd = ch, list(mult), blocks, sigma_data
        emb = 4 * ch
        self.emb = nn.Module()
        self.emb.fc1 = nn.Linear(ch, emb)
        self.emb.fc2 = nn.Linear(emb, emb)
        self.in_conv = GatedConv(2 * img_channels, ch, 3)
        self.enc = nn.ModuleList()
        cur, skips = ch, []
        for l, m in enumerate(self.mult):
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(ResBlock(cur, ch * m, emb, groups))
                cur = ch * m
            skips.append(cur)
            self.enc.append(level)
        self.mid = ResBlock(cur, cur, emb, groups)
        self.dec = nn.ModuleList([None] * len(self.mult))
        for l in reversed(range(len(self.mult))):
            level = nn.ModuleList()
            for b in range(blocks):
                cin = cur + skips[l] if b == 0 else cur
                level.append(ResBlock(cin, ch * self.mult[l], emb, groups))
                cur = ch * self.mult[l]
            self.dec[l] = level
        self.out_norm = nn.GroupNorm(groups, cur, eps=1e-5)
        self.out_conv = GatedConv(cur, img_channels, 3)
        nn.init.zeros_(self.out_conv.weight)

    def embedding(self, c_noise):
        half = self.ch // 2
        f = torch.pow(10000.0, -torch.arange(half, dtype=torch.float32, device=c_noise.device) / half)
        a = c_noise[:, None] * f[None, :]
        pos = torch.cat([torch.cos(a), torch.sin(a)], dim=1)
        return F_.silu(self.emb.fc2(F_.silu(self.emb.fc1(pos))))

    def raw(self, f_in, c_noise):
        emb = self.embedding(c_noise)
        x = self.in_conv(f_in)
        skips = []
        L = len(self.mult)
        for l in range(L):
            for blk in self.enc[l]:
                x = blk(x, emb)
            skips.append(x)
            if l < L - 1:
                x = F_.avg_pool2d(x, 2)
        x = self.mid(x, emb)
        for l in reversed(range(L)):
            x = torch.cat([x, skips[l]], dim=1)
            for blk in self.dec[l]:
                x = blk(x, emb)
            if l > 0:
                x = F_.interpolate(x, scale_factor=2, mode="nearest")
        return self.out_conv(F_.silu(self.out_norm(x)))

    def forward(self, y, m, sigma):
        """Mask-aware EDM preconditioning: D(y, m, sigma); sigma has one value per image."""
        sd = self.sd
        s = sigma[:, None, None, None]
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / torch.sqrt(s**2 + sd**2)
        c_in = 1.0 / torch.sqrt(s**2 + sd**2)
        f = self.raw(torch.cat([c_in * y, m], dim=1), torch.log(sigma) / 4.0)
        return m * (c_skip * y + c_out * f) + (1 - m) * sd * f


def ambient_loss(d, x0, a, a_tilde, sigma, sd=0.5):
    s = sigma[:, None, None, None]
    c_out = s * sd / torch.sqrt(s**2 + sd**2)
    w = a_tilde / c_out**2 + (a - a_tilde) / sd**2
    return (w * (d - a * x0) ** 2).sum(dim=(1, 2, 3)).mean()


def load_model(path):
    from safetensors.torch import load_file
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        cfg = json.loads(f.metadata()["config"])
    model = AmbientUNet(**cfg)
    state = load_file(path)
    missing, unexpected = model.load_state_dict(state, strict=True)
    return model, cfg


def check_golden(prefix):
    from safetensors.torch import load_file

    model, cfg = load_model(f"{prefix}.weights.safetensors")
    v = load_file(f"{prefix}.vectors.safetensors")
    y = v["y"].clone().requires_grad_(True)
    d = model(y, v["A_tilde"], v["sigma"].reshape(-1))
    loss = ambient_loss(d, v["x0"], v["A"], v["A_tilde"], v["sigma"].reshape(-1), cfg["sigma_data"])
    loss.backward()
    def rel(a, b):
        return float((a - b).abs().max() / (b.abs().max() + 1e-12))
    print(prefix, "D rel", rel(d.detach(), v["D"]), "loss", float(loss), "vs", float(v["loss"]),
          "grad_input rel", rel(y.grad, v["grad_input"]))
    worst = max(rel(p.grad, v["grad." + n]) for n, p in model.named_parameters())
    print(prefix, "worst param grad rel", worst)


if __name__ == "__main__":
    import sys

    for prefix in sys.argv[1:] or ["tests/golden/tiny", "tests/golden/spec"]:
        check_golden(prefix)
