#!/usr/bin/env python3
"""Turns one `make bench` run's raw results into the tables of BENCHMARKS.md.

    python3 scripts/bench-report.py            prints target/bench/REPORT.md and writes it

Reads target/criterion/<workload>/<bench>/new/sample.json (criterion's raw samples: per sample, the
iteration count and the total time), target/bench/transform-sizes.json, coldstart.json, memory.json
e2e.json and cluster-cost.json, whichever exist. Every figure is a median with its min-max; ratios are taken within one
run only. Missing parts are reported as missing, never invented.
"""

import importlib.util
import json
import math
import os
import statistics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "bench")
CRITERION = os.path.join(ROOT, "target", "criterion")
WORKLOADS = ["realistic", "small", "large"]
TRANSFORMS = ["transform-signals-off", "transform-signals-on", "transform-signals-on-gzip"]

# Lambda prices, arm64, us-east-1 (https://aws.amazon.com/lambda/pricing/).
PRICE_GB_S = 0.0000133334
PRICE_MS_128 = 0.0000000017  # 128 MB: 0.125 GB x $0.0000133334 per GB-s / 1000, rounded as AWS lists it
PRICE_REQUEST = 0.20 / 1_000_000
# Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB.
FULL_VCPU_MB = 1769
MEMORY_MB = 128


def load(name):
    path = os.path.join(BENCH, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def samples(workload, bench):
    """Per-iteration times in ns of one criterion benchmark, or None."""
    path = os.path.join(CRITERION, workload, bench, "new", "sample.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        s = json.load(f)
    return [t / n for t, n in zip(s["times"], s["iters"])]


def mmm(xs, scale=1.0, fmt="{:.2f}"):
    """'median (min-max)' of xs * scale."""
    v = sorted(x * scale for x in xs)
    return f"{fmt.format(statistics.median(v))} ({fmt.format(v[0])}–{fmt.format(v[-1])})"


def met(ok):
    return "**met**" if ok else "**missed**"


def transform_section(out):
    sizes = load("transform-sizes.json")
    if not sizes:
        out.append("Transform: not run (scripts/bench-transform.sh).\n")
        return None
    out.append("### Transform throughput, one core (criterion, benches/transform.rs)\n")
    out.append("Per 1 MB CloudWatch batch; time per batch in ms, median (min–max) of the criterion samples; "
               "events/s and MB/s of decompressed envelope from the median. Ratio = median / median of the floor.\n")
    out.append("| workload | events | decompressed | bench | ms per batch | events/s | MB/s | × floor |")
    out.append("|---|---|---|---|---|---|---|---|")
    ratios = {}
    for w in WORKLOADS:
        z = sizes.get(w)
        floor = samples(w, "floor")
        if not z or not floor:
            continue
        fm = statistics.median(floor)
        for b in ["floor", "gunzip"] + TRANSFORMS:
            s = samples(w, b)
            if not s:
                continue
            m = statistics.median(s)
            ratios[(w, b)] = (m / fm, min(s) / fm, max(s) / fm)
            out.append(f"| {w} | {z['events']} | {z['decompressed_bytes'] / 1e6:.2f} MB | {b} | {mmm(s, 1e-6)} | "
                       f"{z['events'] / m * 1e9:,.0f} | {z['decompressed_bytes'] / m * 1e3:,.1f} | {m / fm:.2f} |")
    out.append("")
    out.append("Targets (full transform without body compression ≤ 1.5× floor); min–max = sample min and max "
               "over the floor's median:\n")
    out.append("| workload | signals off | signals on (as deployed) | body gzip cost (on-gzip − on) | body bytes → gzip bytes |")
    out.append("|---|---|---|---|---|")
    for w in WORKLOADS:
        z = sizes.get(w)
        off, on, gz = (ratios.get((w, b)) for b in TRANSFORMS)
        if not (z and off and on and gz):
            continue
        on_s, gz_s = samples(w, "transform-signals-on"), samples(w, "transform-signals-on-gzip")
        cost = (statistics.median(gz_s) - statistics.median(on_s)) / 1e6
        out.append(f"| {w} | {off[0]:.2f}× ({off[1]:.2f}–{off[2]:.2f}) {met(off[0] <= 1.5)} | "
                   f"{on[0]:.2f}× ({on[1]:.2f}–{on[2]:.2f}) {met(on[0] <= 1.5)} | "
                   f"+{cost:.2f} ms ({gz[0] - on[0]:+.2f}× floor) | "
                   f"{z['body_bytes']:,} → {z['gzip_body_bytes']:,} ({z['body_bytes'] / z['gzip_body_bytes']:.1f}×, "
                   f"saves {1 - z['gzip_body_bytes'] / z['body_bytes']:.0%}) |")
    out.append("")
    return sizes


def instructions_section(out):
    ins = load("instructions.json")
    if not ins:
        out.append("Instruction counts: not run (scripts/bench-instructions.sh needs valgrind).\n")
        return
    out.append("### Instructions per batch (callgrind, scripts/bench-instructions.sh)\n")
    out.append("Noise-free counterpart of the timings: instructions retired per batch and the ratio to the floor. "
               "Instructions are not time (SIMD string scans do much per instruction), but they do not move with load.\n")
    out.append("| workload | floor | signals off | signals on | signals on + gzip |")
    out.append("|---|---|---|---|---|")
    for w in WORKLOADS:
        f = ins.get(f"{w}/floor")
        if not f:
            continue
        cells = [f"{ins[f'{w}/{b}'] / 1e6:.1f} M ({ins[f'{w}/{b}'] / f:.2f}×)" for b in TRANSFORMS if f"{w}/{b}" in ins]
        out.append(f"| {w} | {f / 1e6:.1f} M | " + " | ".join(cells) + " |")
    out.append("")


def node_section(out):
    n = load("node-console.json")
    if not n:
        out.append("Console Node.js function's transform: not run (needs node).\n")
        return None
    out.append("### The console's Node.js function, same payloads (scripts/bench-node-console.js)\n")
    out.append("Its transform re-implemented from the documented behaviour (no enrichment, no body compression), "
               "run right after the criterion benches; ms per batch.\n")
    out.append("| workload | node | first call (cold JIT) | warm median (min–max) | cwl-indexer signals on, gzip: median | Node / cwl-indexer |")
    out.append("|---|---|---|---|---|---|")
    for w in WORKLOADS:
        d, ours = n.get(w), samples(w, "transform-signals-on-gzip")
        if not d or not ours:
            continue
        m = statistics.median(ours) / 1e6
        out.append(f"| {w} | {d['node']} | {d['first_ms']:.1f} | {d['median_ms']:.1f} ({d['min_ms']:.1f}–{d['max_ms']:.1f}) | "
                   f"{m:.2f} | {d['median_ms'] / m:.1f}× |")
    out.append("")
    return n


def coldstart_section(out):
    c = load("coldstart.json")
    if not c:
        out.append("Cold start: not run (scripts/bench-coldstart.sh).\n")
        return
    out.append("### Cold start (scripts/bench-coldstart.sh)\n")
    out.append(f"exec → first `next`, {len(c['minimal']['runs'])} runs each, ms; target ≤ 30 ms median.\n")
    out.append("| configuration | median (min–max) ms | target |")
    out.append("|---|---|---|")
    for k in ("minimal", "deployed"):
        out.append(f"| {k} | {mmm(c[k]['runs'], fmt='{:.1f}')} | {met(c[k]['median_ms'] <= 30)} |")
    zipped = f", zipped (level 9) {c['zip_bytes']:,} bytes" if "zip_bytes" in c else ""
    out.append(f"\nRelease binary target/release/bootstrap (this machine's x86_64): {c['binary_bytes']:,} bytes{zipped}.\n")


def memory_section(out):
    m = load("memory.json")
    if not m:
        out.append("Memory: not run (scripts/bench-memory.sh).\n")
        return
    out.append("### Peak memory (scripts/bench-memory.sh)\n")
    out.append("VmHWM of the whole bootstrap process; target ≤ 64 MiB.\n")
    out.append("| case | decompressed | events | chunks | peak RSS after init | peak RSS | target |")
    out.append("|---|---|---|---|---|---|---|")
    for name, d in m.items():
        r = d["responses"][-1]
        out.append(f"| {name} | {r['payload_bytes'] / 1e6:.2f} MB | {r['events_in']} | {r['chunks']} | "
                   f"{d['vm_hwm_after_init_kib'] / 1024:.1f} MiB | {d['vm_hwm_kib'] / 1024:.1f} MiB | "
                   f"{met(d['vm_hwm_kib'] <= 64 * 1024)} |")
    out.append("")


def e2e_section(out):
    e = load("e2e.json")
    if not e:
        out.append("End to end: not run (scripts/bench-e2e.sh).\n")
        return None
    out.append("### End to end (scripts/bench-e2e.sh)\n")
    out.append(f"{e['events']:,} events per round, replay vs curl posting the same bodies, "
               f"{len(e['rounds']) // 2} rounds; target ≥ 90% of the ceiling.\n")
    out.append("| bodies | replay events/s | curl ceiling events/s | replay / ceiling | bytes on the wire | target |")
    out.append("|---|---|---|---|---|---|")
    per = {}
    for comp in ("gzip", "none"):
        rs = [r for r in e["rounds"] if r["compression"] == comp]
        if not rs:
            continue
        rep = [r["events"] / r["replay_ns"] * 1e9 for r in rs]
        cur = [r["events"] / r["curl_ns"] * 1e9 for r in rs]
        ratio = [r["curl_ns"] / r["replay_ns"] for r in rs]
        per[comp] = (statistics.median(r["replay_ns"] for r in rs), statistics.median(r["curl_ns"] for r in rs))
        wire = rs[0]["replay_wire_bytes"]
        out.append(f"| {comp} | {mmm(rep, fmt='{:,.0f}')} | {mmm(cur, fmt='{:,.0f}')} | {mmm(ratio, 100, '{:.0f}%')} | "
                   f"{wire:,} | {met(statistics.median(ratio) >= 0.9)} |")
    out.append(f"\nBulk bodies: {e['body_bytes']:,} bytes uncompressed, {e['gzip_body_bytes']:,} gzipped (level 1).\n")
    return e, per


def cost_section(out, sizes, e2e, node):
    out.append("### Cost per million CloudTrail events (128 MB, arm64)\n")
    if not sizes or not samples("realistic", "transform-signals-on-gzip"):
        out.append("Needs the transform bench.\n")
        return
    z = sizes["realistic"]
    cpu_ms = statistics.median(samples("realistic", "transform-signals-on-gzip")) / 1e6
    slow = FULL_VCPU_MB / MEMORY_MB
    wait_ms = 0.0
    if e2e:
        e, per = e2e
        batches = len(os.listdir(os.path.join(BENCH, "payloads", "e2e")))
        if "gzip" in per:
            wait_ms = per["gzip"][1] / 1e6 / batches  # the cluster's own time per batch (the curl ceiling)
    ms = math.ceil(cpu_ms * slow + wait_ms)
    inv = 1e6 / z["events"]
    duration = inv * ms * PRICE_MS_128
    requests = inv * PRICE_REQUEST
    out.append(f"- One invocation per 1 MB batch of the realistic mix: {z['events']} events, so "
               f"{inv:,.0f} invocations per million events.")
    out.append(f"- CPU per batch measured on one core here: {cpu_ms:.2f} ms (transform, signals on, gzip body). "
               f"At 128 MB Lambda gives {MEMORY_MB}/{FULL_VCPU_MB} of a vCPU, so ×{slow:.1f}: {cpu_ms * slow:.1f} ms.")
    out.append(f"- Waiting on the cluster per batch (the curl ceiling's time per batch on the local node): "
               f"{wait_ms:.1f} ms; a managed domain's time differs.")
    out.append(f"- Billed duration per invocation (rounded up to 1 ms): {ms} ms × ${PRICE_MS_128:.10f}/ms = "
               f"${ms * PRICE_MS_128:.10f}.")
    out.append(f"- Per million events: duration {inv:,.0f} × ${ms * PRICE_MS_128:.10f} = **${duration:.4f}**, "
               f"requests {inv:,.0f} × $0.0000002 = **${requests:.4f}**, total **${duration + requests:.4f}**.\n")
    if node and "realistic" in node:
        d = node["realistic"]
        for label, t in (("warm", d["median_ms"]), ("cold JIT", d["first_ms"])):
            nms = math.ceil(t * slow + wait_ms)
            nd = inv * nms * PRICE_MS_128
            out.append(f"- The console's Node.js function, same batches, {label} transform {t:.1f} ms here → "
                       f"{t * slow + wait_ms:.1f} ms billed {nms} ms: duration **${nd:.4f}**, total **${nd + requests:.4f}** "
                       f"per million events ({(nd + requests) / (duration + requests):.1f}× cwl-indexer).")
        out.append("- Both make one invocation per batch (the same request charge); the Node function builds a new HTTPS "
                   "connection per invocation (no keep-alive agent), a TLS handshake per batch not counted above.\n")


def cluster_cost_section(out):
    c = load("cluster-cost.json")
    if not c:
        out.append("Cluster cost: not run (scripts/bench-cluster-cost.sh).\n")
        return
    spec = importlib.util.spec_from_file_location("bench_cluster_cost", os.path.join(ROOT, "scripts", "bench-cluster-cost.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out.append("### Cluster cost (scripts/bench-cluster-cost.sh)\n")
    out.append(module.table(c))


GZIP_BACKENDS = ["shipped", "miniz_oxide-1", "zlib-rs-1", "libdeflate-1", "libdeflate-2"]


def gzip_section(out):
    sizes = load("gzip-sizes.json")
    if not sizes:
        out.append("Body gzip backends: not run (scripts/bench-gzip.sh).\n")
        return
    out.append("### Body gzip, backend against backend (criterion, benches/gzip.rs)\n")
    out.append("The as-deployed transform's `_bulk` bodies per workload; `shipped` is `deliver::gzip` "
               "(flate2 on zlib-rs, level 1). Time per workload's bodies in ms, median (min–max); "
               "bytes on the wire and the ratio to the body.\n")
    out.append("| workload | backend | time ms | vs shipped | wire bytes | compression |")
    out.append("|---|---|---|---|---|---|")
    for w in WORKLOADS:
        base = samples(f"gzip-{w}", "shipped")
        for b in GZIP_BACKENDS:
            t, z = samples(f"gzip-{w}", b), sizes.get(f"{w}/{b}")
            if not t or not z:
                continue
            ratio = f"{statistics.median(t) / statistics.median(base):.2f}×" if base else "-"
            out.append(f"| {w} | {b} | {mmm(t, 1e-6)} | {ratio} | {z['wire_bytes']:,} | "
                       f"{z['body_bytes'] / z['wire_bytes']:.2f}× |")
    out.append("")


def main():
    out = ["## Results of this run\n"]
    sizes = transform_section(out)
    gzip_section(out)
    instructions_section(out)
    node = node_section(out)
    coldstart_section(out)
    memory_section(out)
    e2e = e2e_section(out)
    cost_section(out, sizes, e2e, node)
    cluster_cost_section(out)
    text = "\n".join(out) + "\n"
    os.makedirs(BENCH, exist_ok=True)
    with open(os.path.join(BENCH, "REPORT.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
