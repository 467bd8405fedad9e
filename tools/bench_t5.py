#!/usr/bin/env python3
"""transformers' T5EncoderModel timed like `lit bench text-encoder`: a T5-v1.1-XXL-shaped encoder (random
initialisation from a T5Config, bf16), one forward per batch of prompts of 300 token positions, the median of
repeated runs timed with CUDA events, and the peak CUDA memory allocated (weights included), for the
attention implementations asked for (eager: the reference the fixtures use; sdpa: transformers' default).

  python3 tools/bench_t5.py                                  # CUDA, bf16, batch 16, 300 tokens, eager + sdpa
  python3 tools/bench_t5.py --device cpu --dtype fp32 --preset small --batch-size 2 --repeats 2   # smoke test

Columns match `lit bench text-encoder`: impl, batch, tokens (real tokens per prompt), computed (positions run),
ms/batch, ms/prompt, TFLOP/s (2 x multiply-adds: projections, attention products, feed-forward), peak_MiB.
"""

import argparse
import statistics
import time

import torch
from transformers import T5Config, T5EncoderModel

PRESETS = {  # T5-v1.1 encoders
    "xxl": dict(d_model=4096, num_heads=64, d_kv=64, d_ff=10240, num_layers=24),
    "xl": dict(d_model=2048, num_heads=32, d_kv=64, d_ff=5120, num_layers=24),
    "base": dict(d_model=768, num_heads=12, d_kv=64, d_ff=2048, num_layers=12),
    "small": dict(d_model=512, num_heads=6, d_kv=64, d_ff=1024, num_layers=8),
}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def encoder_flops(c, L):
    inner = c.num_heads * c.d_kv
    per_layer = L * (4 * c.d_model * inner + 3 * c.d_ff * c.d_model) + 2 * L * L * inner
    return 2.0 * per_layer * c.num_layers


def build(config, impl, dtype, device):
    kwargs = dict(attn_implementation=impl)
    with torch.device(device):
        try:
            model = T5EncoderModel._from_config(config, dtype=dtype, **kwargs)  # transformers 5.x
        except TypeError:
            model = T5EncoderModel._from_config(config, torch_dtype=dtype, **kwargs)  # 4.x
    return model.to(device=device, dtype=dtype).eval()


def time_ms(fn, device, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="xxl", choices=sorted(PRESETS))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=300)
    ap.add_argument("--tokens", type=int, default=300, help="real tokens per prompt (the rest padding)")
    ap.add_argument("--impl", action="append", help="attention implementation (eager, sdpa); default both")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    device, dtype = torch.device(a.device), DTYPES[a.dtype]
    config = T5Config(vocab_size=32128, feed_forward_proj="gated-gelu", **PRESETS[a.preset])
    n_params = None
    print(f"bench_t5.py: transformers T5EncoderModel ({a.preset}: d_model {config.d_model}, {config.num_layers} layers, "
          f"{config.num_heads} heads x {config.d_kv}, d_ff {config.d_ff}, gated-gelu), random weights, {a.dtype} on "
          f"{device}; torch {torch.__version__}; median of {a.repeats} runs after {a.warmup} warm-up")
    print(f"{'impl':<8} {'batch':>6} {'tokens':>8} {'computed':>9} {'ms/batch':>11} {'ms/prompt':>11} {'TFLOP/s':>9} "
          f"{'peak_MiB':>10}")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 32000, (a.batch_size, a.max_length), generator=g).to(device)
    mask = torch.zeros(a.batch_size, a.max_length, dtype=torch.long)
    mask[:, : a.tokens] = 1
    mask = mask.to(device)
    for impl in a.impl or ["eager", "sdpa"]:
        try:
            model = build(config, impl, dtype, device)
            n_params = sum(p.numel() for p in model.parameters())
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            with torch.inference_mode():
                ms = time_ms(lambda: model(input_ids=ids, attention_mask=mask).last_hidden_state, device, a.warmup,
                             a.repeats)
            peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f}" if device.type == "cuda" else "-"
            tflops = encoder_flops(config, a.max_length) * a.batch_size / (ms * 1e-3) / 1e12
            print(f"{'hf-' + impl:<8} {a.batch_size:>6} {a.tokens:>8} {a.max_length:>9} {ms:>11.2f} "
                  f"{ms / a.batch_size:>11.3f} {tflops:>9.2f} {peak:>10}", flush=True)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        except Exception as e:  # one row failing (e.g. an implementation missing) does not stop the others
            print(f"{'hf-' + impl:<8} failed: {type(e).__name__}: {str(e).splitlines()[0]}", flush=True)
    if n_params:
        print(f"parameters: {n_params / 1e9:.2f} B")


if __name__ == "__main__":
    main()
