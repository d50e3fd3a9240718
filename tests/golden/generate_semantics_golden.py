#!/usr/bin/python3
"""Golden values for xloss's framework semantics, computed with PyTorch (Debian's python3-torch, 1.13).

Run from anywhere:  /usr/bin/python3 tests/golden/generate_semantics_golden.py
It rewrites semantics_golden.txt beside this script (fixed seeds: deterministic).

Each family computes the other framework's published formula in torch and takes
the gradients from torch's autograd:
  zero       Paddle / OneFlow / PyTorch <= 1.12: t > 0 ? t (log t - x) : 0
  gluon      MXNet Gluon KLDivLoss: optional log_softmax(pred, axis), then
             label * (log(label + 1e-12) - pred), times sample_weight, times
             weight, mean over every axis but batch_axis (gluon/loss.py)
  axes       F.kl_div(reduction='none') summed or averaged over chosen axes
  legacy     F.kl_div(size_average=..., reduce=...): PyTorch's own mapping (called as legacy
             code calls it, without reduction: given reduction='batchmean' as well,
             PyTorch 1.13 also divides the legacy result by the batch size)
  logits     knowledge distillation: T*T * F.kl_div(log_softmax(s/T), log_softmax(t/T),
             reduction, log_target=True), where a class masked in the teacher (-inf)
             contributes 0 to the loss and the gradients (PyTorch gives 0 * -inf = NaN
             there); computed in float64 from the stored (float or double) logits
Records use the format of generate_kl_div_golden.py, plus a line
  options key=value ...
"""

import math
import os
import sys
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate_kl_div_golden import DTYPES, REDUCTIONS, log_probs, probs, reduce, tensor_line  # noqa: E402


def record(name, dtype_name, reduction, log_target, options, tensors):
    lines = [f"case {name}", f"dtype {dtype_name}", f"reduction {reduction}", f"log_target {int(log_target)}",
             "options " + " ".join(f"{k}={v}" for k, v in options.items())]
    lines += [tensor_line(k, v) for k, v in tensors.items()]
    lines.append("end")
    return "\n".join(lines)


def grad_output_like(gen, out, dtype):
    if out.dim() == 0:
        return torch.tensor(0.75, dtype=dtype)
    return (torch.rand(out.shape, generator=gen, dtype=torch.float64) * 2 - 0.5).to(dtype)


def differentiate(f, gen, dtype, *args):
    """out = f(*args) and the gradients of <out, grad_output> w.r.t. each argument."""
    leaves = [a.detach().clone().requires_grad_(True) for a in args]
    out = f(*leaves)
    gout = grad_output_like(gen, out, dtype)
    out.backward(gout.to(out.dtype))
    return out.detach(), gout, [leaf.grad.detach() for leaf in leaves]


def zero_policy(x, t, reduction, log_target):
    if log_target:
        pw = torch.exp(t) * (t - x)
    else:
        # The formula's gradients (Paddle writes them out: t > 0 ? -t g : 0); autograd through
        # where() would otherwise turn 0 * NaN (a NaN target) into NaN.
        positive = t > 0
        safe = torch.where(positive, t, torch.ones_like(t))
        kept = torch.where(positive, t, torch.zeros_like(t))
        pw = torch.where(positive, kept * (torch.log(safe) - x), torch.zeros_like(t))
    return reduce(pw, x, reduction)


def gluon(pred, label, sample_weight, from_logits, axis, weight, batch_axis):
    if not from_logits:
        pred = torch.log_softmax(pred, axis)
    loss = label * (torch.log(label + 1e-12) - pred)
    if sample_weight is not None:
        loss = loss * sample_weight
    if weight is not None:
        loss = loss * weight
    dims = [d for d in range(loss.dim()) if d != batch_axis % loss.dim()]
    return loss.mean(dim=dims) if dims else loss


def distill(s, t, temperature, reduction, axis):
    # A masked (-inf) logit becomes -1e30: the same softmax (exp underflows to exactly 0), but
    # a masked teacher class then contributes 0 * finite = 0 to the loss and its gradients,
    # where PyTorch's composition gives 0 * -inf = NaN (and NaN gradients for the whole row).
    s = torch.where(s == -math.inf, torch.full_like(s, -1e30), s)
    t = torch.where(t == -math.inf, torch.full_like(t, -1e30), t)
    ls = torch.log_softmax(s / temperature, axis)
    lt = torch.log_softmax(t / temperature, axis)
    pw = F.kl_div(ls, lt, reduction="none", log_target=True)
    return temperature * temperature * reduce(pw, s, reduction)


def main():
    gen = torch.Generator().manual_seed(20261122)
    records = []

    # target_policy::zero: negative, zero and NaN targets contribute 0.
    for dtype_name, dtype in DTYPES.items():
        for log_target in (False, True):
            for reduction in REDUCTIONS:
                for shape in [(7,), (4, 9), (2, 3, 5)]:
                    x = log_probs(gen, shape, torch.float64)
                    if log_target:
                        t = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
                    else:
                        t = torch.rand(shape, generator=gen, dtype=torch.float64) * 1.5 - 0.4
                        t.view(-1)[0] = 0.0
                        t.view(-1)[-1] = math.nan
                    x, t = x.to(dtype), t.to(dtype)
                    out, gout, (gx, gt) = differentiate(
                        lambda a, b: zero_policy(a, b, reduction, log_target), gen, dtype, x, t)
                    records.append(record(f"zero_{dtype_name}_{int(log_target)}_{reduction}_{len(shape)}d",
                                          dtype_name, reduction, log_target, {"policy": "zero"},
                                          {"input": x, "target": t, "grad_output": gout, "output": out,
                                           "grad_input": gx, "grad_target": gt}))

    # MXNet Gluon.
    gluon_cases = [
        # shape, from_logits, axis, weight, batch_axis, sample_weight shape
        ((4, 6), True, -1, None, 0, None),
        ((4, 6), False, -1, None, 0, None),
        ((4, 6), False, -1, 0.5, 0, (4, 1)),
        ((3, 5, 4), False, 1, None, 0, None),
        ((3, 5, 4), False, -1, 2.0, 1, (5, 1)),
        ((3, 5, 4), True, -1, None, 2, (3, 5, 4)),
        ((6,), False, -1, None, 0, None),
    ]
    for dtype_name, dtype in DTYPES.items():
        for i, (shape, from_logits, axis, weight, batch_axis, sw_shape) in enumerate(gluon_cases):
            pred = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
            if from_logits:
                pred = torch.log_softmax(pred, axis)
            label = torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64), axis)
            label = torch.where(torch.rand(shape, generator=gen, dtype=torch.float64) < 0.2,
                                torch.zeros_like(label), label)
            pred, label = pred.to(dtype), label.to(dtype)
            tensors = {"input": pred, "target": label}
            args = [pred, label]
            if sw_shape is not None:
                sw = (torch.rand(sw_shape, generator=gen, dtype=torch.float64) * 2).to(dtype)
                tensors["sample_weight"] = sw
                f = lambda p, l: gluon(p, l, sw, from_logits, axis, weight, batch_axis)  # noqa: E731
            else:
                f = lambda p, l: gluon(p, l, None, from_logits, axis, weight, batch_axis)  # noqa: E731
            out, gout, (gp, gl) = differentiate(f, gen, dtype, *args)
            tensors.update({"grad_output": gout, "output": out, "grad_input": gp, "grad_target": gl})
            options = {"gluon": 1, "from_logits": int(from_logits), "axis": axis,
                       "weight": weight if weight is not None else 1.0, "batch_axis": batch_axis}
            records.append(record(f"gluon_{dtype_name}_{i}", dtype_name, "mean", False, options, tensors))

    # Reductions over chosen axes.
    axes_cases = [((4, 5), (1,)), ((4, 5), (-1,)), ((4, 5), (0,)), ((2, 3, 4), (1, 2)), ((2, 3, 4), (0, -1)),
                  ((2, 3, 4), (0, 1, 2))]
    for dtype_name, dtype in DTYPES.items():
        for log_target in (False, True):
            for reduction in ("sum", "mean"):
                for shape, axes in axes_cases:
                    x = log_probs(gen, shape, torch.float64).to(dtype)
                    t = (log_probs(gen, shape, torch.float64) if log_target else probs(gen, shape, torch.float64))
                    t = t.to(dtype)

                    def f(a, b):
                        pw = F.kl_div(a, b, reduction="none", log_target=log_target)
                        return pw.sum(dim=axes) if reduction == "sum" else pw.mean(dim=axes)

                    out, gout, (gx, gt) = differentiate(f, gen, dtype, x, t)
                    records.append(record(
                        f"axes_{dtype_name}_{int(log_target)}_{reduction}_{'x'.join(map(str, shape))}_"
                        f"{'_'.join(map(str, axes))}", dtype_name, reduction, log_target,
                        {"axes": ",".join(map(str, axes))},
                        {"input": x, "target": t, "grad_output": gout, "output": out, "grad_input": gx,
                         "grad_target": gt}))

    # PyTorch's legacy size_average / reduce, through F.kl_div itself.
    for size_average in (None, True, False):
        for reduce_flag in (None, True, False):
            x = log_probs(gen, (3, 4), torch.float64).to(torch.float32)
            t = probs(gen, (3, 4), torch.float64).to(torch.float32)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                legacy = torch.nn._reduction.legacy_get_string(size_average, reduce_flag, emit_warning=False)
                out, gout, (gx, gt) = differentiate(
                    lambda a, b: F.kl_div(a, b, size_average=size_average, reduce=reduce_flag),
                    gen, torch.float32, x, t)
            records.append(record(f"legacy_{size_average}_{reduce_flag}", "float", legacy, False,
                                  {"size_average": size_average, "reduce": reduce_flag},
                                  {"input": x, "target": t, "grad_output": gout, "output": out, "grad_input": gx,
                                   "grad_target": gt}))

    # Knowledge distillation from logits.
    logits_cases = [((4, 10), -1, 1.0, 2.0), ((3, 37), -1, 2.0, 3.0), ((2, 3, 17), -1, 4.5, 1.0),
                    ((2, 5, 3), 1, 2.0, 2.0), ((5, 4), 0, 1.5, 2.0), ((9,), -1, 3.0, 2.0),
                    ((3, 8), -1, 1.0, 1e4), ((3, 8), -1, 0.5, 50.0)]
    for dtype_name, dtype in DTYPES.items():
        for reduction in REDUCTIONS:
            for i, (shape, axis, temperature, scale) in enumerate(logits_cases):
                s = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
                t = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
                if i == 1:
                    # Masked classes: in the teacher only, and in both.
                    t[0, 3] = -math.inf
                    t[1, 0] = -math.inf
                    s[1, 0] = -math.inf
                    t[2, 5] = -math.inf
                out, gout, (gs, gt) = differentiate(
                    lambda a, b: distill(a, b, temperature, reduction, axis), gen, dtype,
                    s.to(torch.float64), t.to(torch.float64))
                records.append(record(f"logits_{dtype_name}_{reduction}_{i}", dtype_name, reduction, True,
                                      {"temperature": temperature, "axis": axis},
                                      {"input": s, "target": t, "grad_output": gout, "output": out,
                                       "grad_input": gs, "grad_target": gt}))

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "semantics_golden.txt")
    with open(path, "w") as f:
        f.write(f"# generated by generate_semantics_golden.py with torch {torch.__version__}\n")
        f.write("\n".join(records) + "\n")
    print(f"wrote {len(records)} cases to {path}")


if __name__ == "__main__":
    main()
