#!/usr/bin/env python3
"""Tables a Chrome trace of `lit train --profile FILE` (PyTorch's Kineto format), with the standard library only.

    tools/trace_summary.py TRACE.json [--top N]

Prints the window's wall time, how much of it the GPU was busy (the union of kernel and copy intervals), the
kernels and copies by total GPU time, and the CPU operators by total time (top-level ones, which contain
their children's time, so the column does not sum to the wall time). A GPU busy for a small fraction of the
window is bound by the host: kernel launches, synchronisations, the data loader.
"""
import argparse
import collections
import json
import sys


def union_length(intervals):
    total, end = 0.0, None
    for s, e in sorted(intervals):
        if end is None or s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def totals(events):
    """(name, count, total duration) of events grouped by name, longest total first."""
    by = collections.defaultdict(lambda: [0, 0.0])
    for e in events:
        by[e["name"]][0] += 1
        by[e["name"]][1] += e["dur"]
    return sorted(((name, n, t) for name, (n, t) in by.items()), key=lambda row: -row[2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    try:
        with open(a.trace) as f:
            events = json.load(f)["traceEvents"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"trace_summary: {a.trace}: not a Chrome trace ({e})")
    timed = [e for e in events if e.get("ph") == "X" and "dur" in e]
    if not timed:
        sys.exit(f"trace_summary: {a.trace}: no timed events")
    start = min(e["ts"] for e in timed)
    end = max(e["ts"] + e["dur"] for e in timed)
    wall = end - start
    gpu = [e for e in timed if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    print(f"window  {wall / 1000:.2f} ms wall, {len(timed)} timed events")
    if gpu:
        busy = union_length([(e["ts"], e["ts"] + e["dur"]) for e in gpu])
        print(f"gpu     busy {busy / 1000:.2f} ms = {100 * busy / wall:.1f} % of the window; "
              f"{sum(1 for e in gpu if e.get('cat') == 'kernel')} kernels")
        print(f"\n{'GPU time ms':>11} {'%':>5} {'count':>6}  kernel / copy")
        for name, n, t in totals(gpu)[: a.top]:
            print(f"{t / 1000:11.3f} {100 * t / busy:5.1f} {n:6d}  {name[:110]}")
    cpu = [e for e in timed if e.get("cat") == "cpu_op"]
    if cpu:
        print(f"\n{'CPU time ms':>11} {'count':>6}  operator ({len(cpu)} calls in all)")
        for name, n, t in totals(cpu)[: a.top]:
            print(f"{t / 1000:11.3f} {n:6d}  {name[:110]}")


if __name__ == "__main__":
    main()
