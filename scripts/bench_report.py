#!/usr/bin/python3
"""Turns xloss_bench's JSON output into the README's tables and a PNG plot.

    /usr/bin/python3 scripts/bench_report.py build-bench/bench.json [--plot docs/throughput.png]

Prints markdown: throughput (elements/s, median over the repetitions) of each
implementation at a few sizes, and the ratios the speed targets are stated in,
every ratio taken between benchmarks of the same run.
"""
import argparse
import json
import re
import sys
from collections import defaultdict


def load(path):
    """{(implementation, size): elements per second}, medians when repetitions were run."""
    with open(path) as f:
        doc = json.load(f)
    rate = {}
    for b in doc["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = re.sub(r"_median$", "", b.get("run_name", b["name"]))
        impl, size = name.rsplit("/", 1)
        rate[(impl, int(size))] = b["items_per_second"]
    return doc.get("context", {}), rate


def fmt_rate(v):
    return "-" if v is None else (f"{v / 1e9:.2f} G" if v >= 1e9 else f"{v / 1e6:.0f} M")


def fmt_ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.1f}x"


def fmt_pct(a, b):
    return "-" if a is None or b is None else f"{100 * a / b:.0f}%"


def report(rate, dtype, sizes):
    g = lambda impl, n: rate.get((impl.format(t=dtype), n))
    out = []
    rows = [
        ("xloss forward, sum", "xloss_forward/{t}/sum"),
        ("xloss forward, sum, log_target", "xloss_forward/{t}/sum_log_target"),
        ("xloss forward, none", "xloss_forward/{t}/none"),
        ("xloss forward + input gradient (fused), sum", "xloss_forward_backward/{t}/sum"),
        ("xloss allocating `kl_div`, sum", "xloss_alloc_forward/{t}/sum"),
        ("xloss allocating `kl_div`, sum, log_target", "xloss_alloc_forward/{t}/sum_log_target"),
        ("xloss allocating `kl_div`, none", "xloss_alloc_forward/{t}/none"),
        ("xloss allocating `kl_div_backward`", "xloss_alloc_backward/{t}/sum"),
        ("xloss allocating `kl_div_forward_backward`", "xloss_alloc_forward_backward/{t}/sum"),
        ("xloss `kl_div_backward_out`", "xloss_backward/{t}/sum"),
        ("xloss forward, sum, 2 threads", "xloss_forward/{t}/sum_2threads"),
        ("xloss forward + gradient, sum, 2 threads", "xloss_forward_backward/{t}/sum_2threads"),
        ("naive xtensor `xt::sum(t * (xt::log(t) - x))`", "naive_xtensor/{t}/sum"),
        ("naive xtensor, loss then gradient", "naive_xtensor_forward_backward/{t}/sum"),
        ("plain scalar loop", "scalar_loop/{t}/sum"),
        ("libtorch `kl_div`, 1 thread", "torch_forward/{t}/sum_1thread"),
        ("libtorch `kl_div`, log_target, 1 thread", "torch_forward/{t}/sum_log_target_1thread"),
        ("libtorch `kl_div`, default threads", "torch_forward/{t}/sum_default_threads"),
        ("libtorch forward + autograd backward, 1 thread", "torch_forward_backward/{t}/sum_1thread"),
        ("bare `xsimd::log` loop (one array)", "xsimd_log/{t}"),
        ("bare `xsimd::exp` loop (one array)", "xsimd_exp/{t}"),
        ("bound: read two arrays", "bound_read2/{t}"),
        ("bound: read two arrays, 2 threads", "bound_read2/{t}/2threads"),
        ("bound: read two, write one", "bound_read2_write1/{t}"),
    ]
    out.append(f"| {dtype}: elements/s | " + " | ".join(f"2^{n.bit_length() - 1}" for n in sizes) + " |")
    out.append("|---|" + "---|" * len(sizes))
    for label, impl in rows:
        if any(g(impl, n) is not None for n in sizes):
            out.append(f"| {label} | " + " | ".join(fmt_rate(g(impl, n)) for n in sizes) + " |")
    out.append("")
    fwd, fb = "xloss_forward/{t}/sum", "xloss_forward_backward/{t}/sum"
    ratios = [
        ("forward, sum / libtorch 1 thread", lambda n: fmt_ratio(g(fwd, n), g("torch_forward/{t}/sum_1thread", n))),
        ("forward + gradient / libtorch 1 thread",
         lambda n: fmt_ratio(g(fb, n), g("torch_forward_backward/{t}/sum_1thread", n))),
        ("allocating forward, sum / libtorch 1 thread",
         lambda n: fmt_ratio(g("xloss_alloc_forward/{t}/sum", n), g("torch_forward/{t}/sum_1thread", n))),
        ("allocating forward + gradient / libtorch 1 thread",
         lambda n: fmt_ratio(g("xloss_alloc_forward_backward/{t}/sum", n), g("torch_forward_backward/{t}/sum_1thread", n))),
        ("log_target forward / libtorch log_target 1 thread",
         lambda n: fmt_ratio(g("xloss_forward/{t}/sum_log_target", n), g("torch_forward/{t}/sum_log_target_1thread", n))),
        ("log_target forward / plain forward",
         lambda n: fmt_ratio(g("xloss_forward/{t}/sum_log_target", n), g(fwd, n))),
        ("allocating gradient / `_out` gradient (time ratio)",
         lambda n: fmt_ratio(g("xloss_backward/{t}/sum", n), g("xloss_alloc_backward/{t}/sum", n))),
        ("allocating forward + gradient / `_out` (time ratio)",
         lambda n: fmt_ratio(g(fb, n), g("xloss_alloc_forward_backward/{t}/sum", n))),
        ("forward, sum / naive xtensor", lambda n: fmt_ratio(g(fwd, n), g("naive_xtensor/{t}/sum", n))),
        ("forward + gradient / naive xtensor",
         lambda n: fmt_ratio(g(fb, n), g("naive_xtensor_forward_backward/{t}/sum", n))),
        ("forward, sum / bare xsimd::log", lambda n: fmt_ratio(g(fwd, n), g("xsimd_log/{t}", n))),
        ("forward, sum: share of the read bound", lambda n: fmt_pct(g(fwd, n), g("bound_read2/{t}", n))),
        ("forward, none: share of the read-2/write-1 bound",
         lambda n: fmt_pct(g("xloss_forward/{t}/none", n), g("bound_read2_write1/{t}", n))),
        ("input gradient: share of the read-2/write-1 bound",
         lambda n: fmt_pct(g("xloss_backward/{t}/sum", n), g("bound_read2_write1/{t}", n))),
        ("forward, sum: 2 threads / 1 thread",
         lambda n: fmt_ratio(g("xloss_forward/{t}/sum_2threads", n), g(fwd, n))),
        ("forward, sum, 2 threads: share of the 2-thread read bound",
         lambda n: fmt_pct(g("xloss_forward/{t}/sum_2threads", n), g("bound_read2/{t}/2threads", n))),
    ]
    if dtype != "float":
        ratios.append((f"forward, sum: {dtype} / float elements per second",
                       lambda n: fmt_ratio(g(fwd, n), rate.get(("xloss_forward/float/sum", n)))))
    out.append(f"| {dtype}: ratio | " + " | ".join(f"2^{n.bit_length() - 1}" for n in sizes) + " |")
    out.append("|---|" + "---|" * len(sizes))
    for label, f in ratios:
        out.append(f"| {label} | " + " | ".join(f(n) for n in sizes) + " |")
    return "\n".join(out)


def plot(rate, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        ("xloss forward", "xloss_forward/float/sum"),
        ("xloss forward + gradient", "xloss_forward_backward/float/sum"),
        ("xloss forward, 2 threads", "xloss_forward/float/sum_2threads"),
        ("libtorch kl_div (1 thread)", "torch_forward/float/sum_1thread"),
        ("libtorch forward + backward", "torch_forward_backward/float/sum_1thread"),
        ("naive xtensor", "naive_xtensor/float/sum"),
        ("scalar loop", "scalar_loop/float/sum"),
        ("bare xsimd::log", "xsimd_log/float"),
        ("bound: read 2 arrays", "bound_read2/float"),
    ]
    fig, ax = plt.subplots(figsize=(10, 5))
    for label, impl in lines:
        pts = sorted((n, v) for (i, n), v in rate.items() if i == impl and n & (n - 1) == 0)
        if pts:
            style = "--" if impl.startswith(("bound", "xsimd")) else "-"
            ax.plot([p[0] for p in pts], [p[1] / 1e9 for p in pts], style, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("elements")
    ax.set_ylabel("G elements / s")
    ax.set_title("KL divergence, float32, reduction=sum (one thread unless said)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("json")
    p.add_argument("--plot")
    args = p.parse_args()
    context, rate = load(args.json)
    sizes = [1 << 16, 1 << 20, 1 << 24]
    print(f"Machine: {context.get('num_cpus')} CPUs at {context.get('mhz_per_cpu')} MHz; "
          f"run {context.get('date')}\n")
    for dtype in ("float", "double"):
        print(report(rate, dtype, sizes))
        print()
    if args.plot:
        plot(rate, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
