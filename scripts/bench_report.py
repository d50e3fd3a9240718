#!/usr/bin/python3
"""Turns the benchmarks' JSON output into the README's tables and a PNG plot.

    /usr/bin/python3 scripts/bench_report.py build-bench/bench.json [--torch2 T.json] [--plot P.png]
    /usr/bin/python3 scripts/bench_report.py --rows distill build-bench/distill.json [--torch2 T.json]
    /usr/bin/python3 scripts/bench_report.py --rows divergence build-bench/divergence.json [--torch2 T.json]

Prints markdown: throughput (elements/s, median over the repetitions) of each
implementation at a few sizes, and the ratios the speed targets are stated in. The
first form reads xloss_bench's output, the others those of xloss_bench_distill and
xloss_bench_divergence. --torch2 adds the libtorch rows of a second libtorch (the
Debian 13 chroot of `make bench`); the ratios are then taken against the faster
libtorch of each row and size.
"""
import argparse
import json
import re
import sys
from collections import defaultdict


def load(path, args=1):
    """{(implementation, size): elements per second}, medians when repetitions were run; size is
    the last `args` benchmark arguments (an int, or a tuple of them)."""
    with open(path) as f:
        doc = json.load(f)
    rate = {}
    for b in doc["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = re.sub(r"_median$", "", b.get("run_name", b["name"]))
        impl, *size = name.rsplit("/", args)
        size = tuple(int(v) for v in size)
        rate[(impl, size[0] if args == 1 else size)] = b["items_per_second"]
    return doc.get("context", {}), rate


def add_torch2(rate, path, args=1):
    """Adds a second libtorch's rows, their names' `torch` made `torch2`; returns its version."""
    context, rate2 = load(path, args)
    for (impl, size), v in rate2.items():
        if "torch" in impl:  # only libtorch rows: never another build's xloss rows
            rate[(re.sub(r"torch", "torch2", impl, count=1), size)] = v
    return context.get("libtorch", "2.x")


def faster_torch(rate, impl, size):
    """The rate of the faster libtorch for a torch row (`torch` in its name), None if neither ran."""
    rates = [r for r in (rate.get((impl, size)), rate.get((re.sub(r"torch", "torch2", impl, count=1), size)))
             if r is not None]
    return max(rates) if rates else None


def fmt_rate(v):
    return "-" if v is None else (f"{v / 1e9:.2f} G" if v >= 1e9 else f"{v / 1e6:.0f} M")


def fmt_ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.1f}x"


def fmt_pct(a, b):
    return "-" if a is None or b is None else f"{100 * a / b:.0f}%"


def report(rate, dtype, sizes, versions):
    def g(impl, n):
        impl = impl.format(t=dtype)
        return faster_torch(rate, impl, n) if impl.startswith("torch") else rate.get((impl, n))

    raw = lambda impl, n: rate.get((impl.format(t=dtype), n))
    torch1, torch2 = versions
    # With two libtorch versions, ratios are against the faster one of each row and size.
    vs = f"libtorch {torch1}" if torch2 is None else "faster libtorch"
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
        ("xloss allocating `kl_div` on (n/1024, 1024), sum", "xloss_options/{t}/plain"),
        ("... with `.weight(0.5)`", "xloss_options/{t}/weight"),
        ("... with a sample weight of shape (n/1024, 1)", "xloss_options/{t}/sample_weight"),
        ("... `mean` with `.per_sample()`", "xloss_options/{t}/per_sample"),
        ("... `batchmean` with `.input_logits(true)`", "xloss_options/{t}/logits"),
        ("xloss forward, sum, 2 threads", "xloss_forward/{t}/sum_2threads"),
        ("xloss forward + gradient, sum, 2 threads", "xloss_forward_backward/{t}/sum_2threads"),
        ("naive xtensor `xt::sum(t * (xt::log(t) - x))`", "naive_xtensor/{t}/sum"),
        ("naive xtensor, loss then gradient", "naive_xtensor_forward_backward/{t}/sum"),
        ("plain scalar loop", "scalar_loop/{t}/sum"),
        (f"libtorch {torch1} `kl_div`, 1 thread", "torch_forward/{t}/sum_1thread"),
        (f"libtorch {torch1} `kl_div`, log_target, 1 thread", "torch_forward/{t}/sum_log_target_1thread"),
        (f"libtorch {torch1} `kl_div`, default threads", "torch_forward/{t}/sum_default_threads"),
        (f"libtorch {torch1} forward + autograd backward, 1 thread", "torch_forward_backward/{t}/sum_1thread"),
        (f"libtorch {torch2} `kl_div`, 1 thread", "torch2_forward/{t}/sum_1thread"),
        (f"libtorch {torch2} `kl_div`, log_target, 1 thread", "torch2_forward/{t}/sum_log_target_1thread"),
        (f"libtorch {torch2} `kl_div`, default threads", "torch2_forward/{t}/sum_default_threads"),
        (f"libtorch {torch2} forward + autograd backward, 1 thread", "torch2_forward_backward/{t}/sum_1thread"),
        ("bare `xsimd::log` loop (one array)", "xsimd_log/{t}"),
        ("bare `xsimd::exp` loop (one array)", "xsimd_exp/{t}"),
        ("bound: read two arrays", "bound_read2/{t}"),
        ("bound: read two arrays, 2 threads", "bound_read2/{t}/2threads"),
        ("bound: read two, write one", "bound_read2_write1/{t}"),
    ]
    out.append(f"| {dtype}: elements/s | " + " | ".join(f"2^{n.bit_length() - 1}" for n in sizes) + " |")
    out.append("|---|" + "---|" * len(sizes))
    for label, impl in rows:
        if any(raw(impl, n) is not None for n in sizes):
            out.append(f"| {label} | " + " | ".join(fmt_rate(raw(impl, n)) for n in sizes) + " |")
    out.append("")
    fwd, fb = "xloss_forward/{t}/sum", "xloss_forward_backward/{t}/sum"
    ratios = [
        (f"forward, sum / {vs}, 1 thread", lambda n: fmt_ratio(g(fwd, n), g("torch_forward/{t}/sum_1thread", n))),
        (f"forward + gradient / {vs}, 1 thread",
         lambda n: fmt_ratio(g(fb, n), g("torch_forward_backward/{t}/sum_1thread", n))),
        (f"allocating forward, sum / {vs}, 1 thread",
         lambda n: fmt_ratio(g("xloss_alloc_forward/{t}/sum", n), g("torch_forward/{t}/sum_1thread", n))),
        (f"allocating forward + gradient / {vs}, 1 thread",
         lambda n: fmt_ratio(g("xloss_alloc_forward_backward/{t}/sum", n), g("torch_forward_backward/{t}/sum_1thread", n))),
        (f"log_target forward / {vs} log_target, 1 thread",
         lambda n: fmt_ratio(g("xloss_forward/{t}/sum_log_target", n), g("torch_forward/{t}/sum_log_target_1thread", n))),
        ("log_target forward / plain forward",
         lambda n: fmt_ratio(g("xloss_forward/{t}/sum_log_target", n), g(fwd, n))),
        ("allocating gradient / `_out` gradient (time ratio)",
         lambda n: fmt_ratio(g("xloss_backward/{t}/sum", n), g("xloss_alloc_backward/{t}/sum", n))),
        ("allocating forward + gradient / `_out` (time ratio)",
         lambda n: fmt_ratio(g(fb, n), g("xloss_alloc_forward_backward/{t}/sum", n))),
        *[(f"options path, {kind} / plain, allocating (n/1024, 1024)",
           lambda n, kind=kind: fmt_ratio(g(f"xloss_options/{{t}}/{kind}", n), g("xloss_options/{t}/plain", n)))
          for kind in ("weight", "sample_weight", "per_sample", "logits")],
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
    if torch2 is not None:
        for label, impl in (("`kl_div`", "forward/{t}/sum_1thread"), ("forward + backward", "forward_backward/{t}/sum_1thread")):
            ratios.append((f"libtorch {torch2} / {torch1}, {label}, 1 thread",
                           lambda n, impl=impl: fmt_ratio(raw("torch2_" + impl, n), raw("torch_" + impl, n))))
    if dtype != "float":
        ratios.append((f"forward, sum: {dtype} / float elements per second",
                       lambda n: fmt_ratio(g(fwd, n), rate.get(("xloss_forward/float/sum", n)))))
    out.append(f"| {dtype}: ratio | " + " | ".join(f"2^{n.bit_length() - 1}" for n in sizes) + " |")
    out.append("|---|" + "---|" * len(sizes))
    for label, f in ratios:
        out.append(f"| {label} | " + " | ".join(f(n) for n in sizes) + " |")
    return "\n".join(out)


ROW_TABLES = {
    # xloss_bench_distill: kl_div_with_logits beside the libtorch composition and the stored softmax.
    "distill": {
        "shapes": [(256, 10), (128, 1000), (8, 32000), (64, 32000), (4, 128256)],
        "rows": [
            ("xloss `kl_div_with_logits`", "fused_forward"),
            ("xloss `kl_div_with_logits_forward_backward` (loss + student gradient)", "fused_forward_backward"),
            ("libtorch {v} composition, forward", "torch_forward"),
            ("libtorch {v} composition, forward + autograd backward", "torch_forward_backward"),
            ("libtorch {v2} composition, forward", "torch2_forward"),
            ("libtorch {v2} composition, forward + autograd backward", "torch2_forward_backward"),
            ("xloss `kl_div` after a stored log-softmax (xtensor reducers), forward", "kl_div_after_softmax_forward"),
            ("the same, forward + backward through the log-softmax", "kl_div_after_softmax_forward_backward"),
        ],
        "ratios": [
            ("**fused forward / {vs}**", "fused_forward", "torch_forward"),
            ("**fused forward + backward / {vs}**", "fused_forward_backward", "torch_forward_backward"),
            ("fused forward + backward / `kl_div` after a stored softmax", "fused_forward_backward",
             "kl_div_after_softmax_forward_backward"),
        ],
    },
    # xloss_bench_divergence: each loss, forward and forward + student gradient, against its composition.
    "divergence": {
        "shapes": [(128, 1000), (8, 32000), (64, 32000), (4, 128256)],
        "pairs": [
            ("forward KL, forward", "forward_kl"),
            ("forward KL, forward + student gradient", "forward_kl_fb"),
            ("reverse KL, forward", "reverse_kl"),
            ("reverse KL, forward + student gradient", "reverse_kl_fb"),
            ("generalized JSD (beta 0.5), forward", "jsd"),
            ("generalized JSD (beta 0.5), forward + student gradient", "jsd_fb"),
        ],
        # (label, numerator, denominator, "ratio" or "share"); a torch denominator is the faster libtorch.
        "extras": [
            ("forward KL + student gradient, share of its row bound", "forward_kl_fb/xloss", "forward_kl_fb/bound",
             "share"),
            ("reverse KL + student gradient, share of the forward KL's row bound", "reverse_kl_fb/xloss",
             "forward_kl_fb/bound", "share"),
            ("generalized JSD + student gradient, share of the forward KL's row bound", "jsd_fb/xloss",
             "forward_kl_fb/bound", "share"),
            ("forward KL + gradient with the hard loss mixed in, time / the soft loss alone (T = 1)",
             "forward_kl_fb_t1/xloss", "forward_kl_fb_t1/xloss_mixed", "ratio"),
            ("the same at T = 2", "forward_kl_fb_t2/xloss", "forward_kl_fb_t2/xloss_mixed", "ratio"),
            ("top-k (k = 64) forward KL + gradient / libtorch gather form", "top_k_fb/xloss", "top_k_fb/torch_gather",
             "ratio"),
            ("top-k forward KL + gradient / libtorch dense scatter form", "top_k_fb/xloss", "top_k_fb/torch_dense",
             "ratio"),
            ("top-k forward KL + gradient, time / the student-only bound", "student_fb/bound", "top_k_fb/xloss",
             "ratio"),
        ],
    },
    # xloss_bench_cross_entropy: cross_entropy against F.cross_entropy and its row bound.
    "cross_entropy": {
        "shapes": [(128, 1000), (8, 32000), (4, 128256), (512, 151936)],
        "pairs": [
            ("cross-entropy, forward", "cross_entropy"),
            ("cross-entropy, forward + gradient", "cross_entropy_fb"),
        ],
        "extras": [
            ("forward + gradient into the caller's arrays (`_out`) / libtorch", "cross_entropy_fb/xloss_out",
             "cross_entropy_fb/torch", "ratio"),
            ("forward + gradient, share of its row bound", "cross_entropy_fb/xloss", "cross_entropy_fb/bound",
             "share"),
            ("`_out`, share of the row bound", "cross_entropy_fb/xloss_out", "cross_entropy_fb/bound", "share"),
        ],
    },
}


def rows_report(kind, rate, versions):
    """The distillation or divergence table: logits per second and ratios per (rows, classes)."""
    torch1, torch2 = versions
    vs = f"libtorch {torch1}" if torch2 is None else "faster libtorch"
    table = ROW_TABLES[kind]
    shapes = table["shapes"]
    out = [f"| (rows, classes) | " + " | ".join(f"({r}, {c})" for r, c in shapes) + " |",
           "|---|" + "---|" * len(shapes)]
    if kind == "distill":
        for label, impl in table["rows"]:
            if any(rate.get((impl, n)) is not None for n in shapes):
                label = label.format(v=torch1, v2=torch2)
                out.append(f"| {label} | " + " | ".join(fmt_rate(rate.get((impl, n))) for n in shapes) + " |")
        for label, num, den in table["ratios"]:
            value = lambda n: fmt_ratio(rate.get((num, n)),
                                        faster_torch(rate, den, n) if den.startswith("torch") else rate.get((den, n)))
            out.append(f"| {label.format(vs=vs)} | " + " | ".join(value(n) for n in shapes) + " |")
        return "\n".join(out)
    # One cell per shape: xloss / the faster libtorch = ratio (and which libtorch it was).
    for label, loss in table["pairs"]:
        cells = []
        for n in shapes:
            x, t1, t2 = rate.get((f"{loss}/xloss", n)), rate.get((f"{loss}/torch", n)), rate.get((f"{loss}/torch2", n))
            best = max((r for r in (t1, t2) if r is not None), default=None)
            which = "" if t2 is None or best is None else f" ({torch2 if best == t2 else torch1})"
            cells.append(f"{fmt_rate(x)} / {fmt_rate(best)}{which} = **{fmt_ratio(x, best)}**")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    # Rates: a ratio of rates is the speed-up; a share is the bound's time over the loss's.
    for label, num, den, kind_ in table.get("extras", []):
        cells = []
        for n in shapes:
            a = rate.get((num, n))
            b = faster_torch(rate, den, n) if "torch" in den else rate.get((den, n))
            cells.append(fmt_pct(a, b) if kind_ == "share" else fmt_ratio(a, b))
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(rate, path, versions):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        ("xloss forward", "xloss_forward/float/sum"),
        ("xloss forward + gradient", "xloss_forward_backward/float/sum"),
        ("xloss forward, 2 threads", "xloss_forward/float/sum_2threads"),
        (f"libtorch {versions[0]} kl_div (1 thread)", "torch_forward/float/sum_1thread"),
        (f"libtorch {versions[0]} forward + backward", "torch_forward_backward/float/sum_1thread"),
        (f"libtorch {versions[1]} kl_div (1 thread)", "torch2_forward/float/sum_1thread"),
        (f"libtorch {versions[1]} forward + backward", "torch2_forward_backward/float/sum_1thread"),
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
    p.add_argument("--rows", choices=sorted(ROW_TABLES), help="the JSON is of a row benchmark")
    p.add_argument("--torch2", help="JSON of the same benchmark's libtorch rows under a second libtorch")
    p.add_argument("--plot")
    args = p.parse_args()
    nargs = 2 if args.rows else 1
    context, rate = load(args.json, nargs)
    torch2 = add_torch2(rate, args.torch2, nargs) if args.torch2 else None
    versions = (context.get("libtorch", "1.x"), torch2)
    print(f"Machine: {context.get('num_cpus')} CPUs at {context.get('mhz_per_cpu')} MHz; "
          f"run {context.get('date')}\n")
    if args.rows:
        print(rows_report(args.rows, rate, versions))
        return
    sizes = [1 << 16, 1 << 20, 1 << 24]
    for dtype in ("float", "double"):
        print(report(rate, dtype, sizes, versions))
        print()
    if args.plot:
        plot(rate, args.plot, versions)
        print(f"plot: {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
