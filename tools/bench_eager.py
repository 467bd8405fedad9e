#!/usr/bin/env python3
"""PyTorch eager reference for `lit bench forward`: DiT-XL/2 and LiT-XL/2 written in plain PyTorch (torch only),
one backbone forward per batch on random latents, timesteps and labels, timed the same way and printed in the
same columns, so the C++ numbers have an eager baseline measured on the same GPU.

  python3 tools/bench_eager.py                      # CUDA, bf16, 256/512/1024 px with batch 32/16/4
  python3 tools/bench_eager.py --device cpu --dtype fp32 --sizes 256 --batches 1 --depth 2   # smoke test
  python3 tools/bench_eager.py --compile            # also torch.compile of both models (the baseline users pick)

The architectures follow DESIGN.md section 3 (DiT as released: adaLN-Zero blocks, tanh-GELU MLP of ratio 4,
softmax attention with 16 heads, patch 2, width 1152, depth 28, 4 latent channels, learned sigma) and the
simplified linear attention of fixtures/README.md (lit/). Weights are PyTorch's default initialisation (their
values do not change the time). The softmax attention uses F.scaled_dot_product_attention (torch >= 2.0; older
versions fall back to the spelled-out softmax(q k^T / sqrt(d)) v, which is slower on a GPU).
"""

import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------------
# Embedders
# ---------------------------------------------------------------------------------------------------------


def sincos_1d(dim, positions):
    """(M,) positions -> (M, dim): dim/2 sines then dim/2 cosines, frequencies 1/10000^(i/(dim/2)), float64."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.reshape(-1, 1).to(torch.float64) * omega.reshape(1, -1)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(dim, grid):
    """The fixed (grid*grid, dim) position table: half the channels encode the column, half the row."""
    coords = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    return torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=1).float()


class TimestepEmbedder(nn.Module):
    """Scalar timesteps -> (B, D): 256 sinusoidal frequencies ([cos, sin]) through Linear, SiLU, Linear."""

    def __init__(self, hidden, freq_dim=256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t):
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


# ---------------------------------------------------------------------------------------------------------
# Attention: softmax (DiT) and simplified linear (LiT)
# ---------------------------------------------------------------------------------------------------------


class SoftmaxAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x, grid):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if hasattr(F, "scaled_dot_product_attention"):
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            o = torch.softmax((q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1), dim=-1) @ v
        return self.proj(o.transpose(1, 2).reshape(b, n, d))


class LinearAttention(nn.Module):
    """Per head, with phi(x) = relu(x) + 1e-6 on q and k:
    z = 1 / (q . mean_tokens(k) + 1e-6), kv = (k^T N^-1/2)(v N^-1/2), o = (q kv) z;
    plus a 5x5 depthwise convolution of v (shared by the heads) added before proj."""

    def __init__(self, hidden, heads, kernel=5):
        super().__init__()
        self.heads = heads
        head_dim = hidden // heads
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.dwc = nn.Conv2d(head_dim, head_dim, kernel, padding=kernel // 2, groups=head_dim)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x, grid):
        b, n, d = x.shape
        h, hd = self.heads, d // self.heads
        q = self.q(x).reshape(b, n, h, hd).transpose(1, 2)  # (B, h, N, d)
        k, v = self.kv(x).reshape(b, n, 2, h, hd).permute(2, 0, 3, 1, 4)  # each (B, h, N, d)
        q = F.relu(q) + 1e-6
        k = F.relu(k) + 1e-6
        z = 1.0 / ((q * k.mean(dim=2, keepdim=True)).sum(dim=-1, keepdim=True) + 1e-6)  # (B, h, N, 1)
        scale = n**-0.5
        kv = (k.transpose(-2, -1) * scale) @ (v * scale)  # (B, h, d, d)
        o = (q @ kv) * z
        o = o.transpose(1, 2).reshape(b, n, d)  # channel head*d + j
        v_img = v.reshape(b * h, n, hd).transpose(1, 2).reshape(b * h, hd, grid, grid)
        o = o + self.dwc(v_img).reshape(b, d, n).transpose(1, 2)
        return self.proj(o)


# ---------------------------------------------------------------------------------------------------------
# Blocks and the backbone
# ---------------------------------------------------------------------------------------------------------


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Block(nn.Module):
    """adaLN-Zero block: c -> shift/scale/gate for the attention, then for the MLP."""

    def __init__(self, hidden, attention):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = attention
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(approximate="tanh"), nn.Linear(4 * hidden, hidden))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x, c, grid):
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_a, scale_a), grid)
        return x + gate_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_m, scale_m))


class Backbone(nn.Module):
    """DiT (linear=False) or LiT (linear=True) on (B, C, S, S) latents; returns (B, 2C, S, S) (learned sigma)."""

    def __init__(self, input_size, linear, heads, patch=2, channels=4, hidden=1152, depth=28, classes=1000):
        super().__init__()
        self.patch, self.out_channels, self.grid = patch, 2 * channels, input_size // patch
        self.x_embedder = nn.Conv2d(channels, hidden, patch, stride=patch)
        self.register_buffer("pos_embed", sincos_2d(hidden, self.grid).unsqueeze(0))
        self.t_embedder = TimestepEmbedder(hidden)
        self.y_embedder = nn.Embedding(classes + 1, hidden)  # the last row: the null class of guidance
        make_attention = (lambda: LinearAttention(hidden, heads)) if linear else (lambda: SoftmaxAttention(hidden, heads))
        self.blocks = nn.ModuleList([Block(hidden, make_attention()) for _ in range(depth)])
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.final_adaLN = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.final_linear = nn.Linear(hidden, patch * patch * self.out_channels)

    def forward(self, x, t, y):
        x = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, T, D)
        c = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            x = block(x, c, self.grid)
        shift, scale = self.final_adaLN(c).chunk(2, dim=1)
        x = self.final_linear(modulate(self.norm_final(x), shift, scale))  # (B, T, p*p*C_out)
        b, g, p, co = x.shape[0], self.grid, self.patch, self.out_channels
        x = x.reshape(b, g, g, p, p, co).permute(0, 5, 1, 3, 2, 4)  # (B, C_out, g, p, g, p)
        return x.reshape(b, co, g * p, g * p)


# ---------------------------------------------------------------------------------------------------------
# FLOPs, floor, timing (the same definitions as `lit bench forward`)
# ---------------------------------------------------------------------------------------------------------


def forward_flops(tokens, linear, heads, patch=2, channels=4, hidden=1152, depth=28, kernel=5):
    """Multiply-adds of one image's forward, 2 FLOPs each (linear layers and attention)."""
    n, d, mlp = float(tokens), float(hidden), 4.0 * hidden
    block = 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * d * mlp + 2 * d * 6 * d
    if linear:
        block += 2 * 2 * n * d * (d / heads) + 2 * n * d * kernel * kernel
    else:
        block += 2 * 2 * n * n * d
    embed = 2 * n * d * channels * patch * patch
    final = 2 * n * d * patch * patch * 2 * channels + 2 * d * 2 * d
    return depth * block + embed + final


def median_ms(fn, device, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]  # the upper median, as lit bench forward


def matmul_side(device):
    return 8192 if device.type == "cuda" else 1024


def matmul_rate(device, dtype):
    """TFLOP/s of a square matrix product in this dtype, median of 5: the floor a transformer forward approaches."""
    m = matmul_side(device)
    a, b = torch.randn(m, m, device=device, dtype=dtype), torch.randn(m, m, device=device, dtype=dtype)
    return 2.0 * m**3 / median_ms(lambda: a @ b, device, 1, 5) / 1e9


# ---------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="image sizes in px (latents are /8); default 256 512 1024")
    parser.add_argument("--batches", type=int, nargs="+", help="one batch size per size, or one for all; default 32/16/4")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs (median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--heads-lit", type=int, default=4, help="LiT's linear-attention heads")
    parser.add_argument("--heads-dit", type=int, default=16, help="DiT's softmax-attention heads")
    parser.add_argument("--depth", type=int, default=28, help="blocks (fewer for a smoke test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES), help="weights and inputs")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile of each model (rows 'compile ...', after the eager rows); the "
                             "compilation happens in the warm-up runs, which are not timed")
    parser.add_argument("--compile-mode", default="default",
                        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                        help="torch.compile's mode")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if device.type == "cpu" and args.sizes is None:
        parser.error("the defaults (XL models at up to 1024 px) are sized for a GPU: on the CPU give --sizes, "
                     "--batches and --depth, e.g. --sizes 256 --batches 1 --depth 2")
    sizes = args.sizes or [256, 512, 1024]
    batches = args.batches or [32 if s <= 256 else 16 if s <= 512 else 4 for s in sizes]
    if len(batches) == 1:
        batches = batches * len(sizes)
    if len(batches) != len(sizes):
        parser.error(f"--batches: give one value, or one per size ({len(sizes)}), got {len(batches)}")
    if min(batches) < 1 or args.repeats < 1 or args.warmup < 0 or args.depth < 1:
        parser.error("batch sizes, --repeats and --depth must be at least 1, --warmup at least 0")
    dtype = DTYPES[args.dtype]
    if device.type == "cuda":
        torch.cuda.set_device(device)
    models = [("eager DiT-XL/2", False, args.heads_dit, False), ("eager LiT-XL/2", True, args.heads_lit, False)]
    if args.compile:
        if not hasattr(torch, "compile"):
            parser.error(f"--compile needs torch >= 2.0 (this is {torch.__version__})")
        models += [("compile DiT-XL/2", False, args.heads_dit, True), ("compile LiT-XL/2", True, args.heads_lit, True)]

    floor = matmul_rate(device, dtype)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    print(f"bench_eager.py: one backbone forward per batch (random weights, eval, no grad), {args.dtype} on {device}; "
          f"torch {torch.__version__}, {gpu}; depth {args.depth}; median of {args.repeats} runs after {args.warmup} "
          f"warm-up" + (f"; torch.compile mode {args.compile_mode}, compiled in the warm-up" if args.compile else ""))
    print(f"floor: {args.dtype} {matmul_side(device)}^3 matrix multiply measured here, {floor:.2f} TFLOP/s; "
          f"of_floor = TFLOP/s over it (forward FLOPs x batch / time, 2 FLOPs per multiply-add); vs_first = the "
          f"first preset's time at the same size over this row's")
    print(f"{'preset':<16} {'px':>5} {'tokens':>7} {'batch':>6} {'ms/batch':>11} {'ms/image':>10} {'TFLOP/s':>9} "
          f"{'of_floor':>9} {'vs_first':>9} {'peak_MiB':>9}")
    for px, batch in zip(sizes, batches):
        latent = px // 8
        tokens = (latent // 2) ** 2
        first_ms = None
        for k, (name, linear, heads, compiled) in enumerate(models):
            print(f"{name:<16} {px:>5} {tokens:>7} {batch:>6} ", end="", flush=True)
            try:
                with torch.no_grad():
                    model = Backbone(latent, linear, heads, depth=args.depth).to(device=device, dtype=dtype).eval()
                    if compiled:
                        torch._dynamo.reset()  # a fresh compilation per model and size, no recompile limit reached
                        model = torch.compile(model, mode=args.compile_mode)
                    x = torch.randn(batch, 4, latent, latent, device=device, dtype=dtype)
                    t = torch.randint(0, 1000, (batch,), device=device)
                    y = torch.randint(0, 1000, (batch,), device=device)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                        torch.cuda.reset_peak_memory_stats(device)
                    warmup = max(args.warmup, 3) if compiled else args.warmup  # compiles in the first calls
                    ms = median_ms(lambda: model(x, t, y), device, warmup, args.repeats)
                    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
            except Exception as e:  # out of memory, or a compiler error (torch._dynamo / inductor)
                model = x = t = y = None
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                print("error: " + str(e).split("\n")[0])
                continue
            model = x = t = y = None
            if k == 0:
                first_ms = ms
            flops = forward_flops(tokens, linear, heads, depth=args.depth) * batch
            tflops = flops / (ms * 1e-3) / 1e12
            vs_first = f"{first_ms / ms:8.2f}x" if first_ms else f"{'-':>9}"
            peak_text = f"{peak:9.0f}" if peak is not None else f"{'-':>9}"
            print(f"{ms:11.2f} {ms / batch:10.3f} {tflops:9.2f} {100 * tflops / floor:8.1f}% {vs_first} {peak_text}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
