#!/usr/bin/python3
"""Golden values for xloss's kl_div, computed by PyTorch (Debian's python3-torch, 1.13).

Run from anywhere:  /usr/bin/python3 tests/golden/generate_kl_div_golden.py
It rewrites kl_div_golden.txt beside this script. The data is deterministic
(fixed seeds), so a rerun with the same PyTorch gives the same file.

Each case is computed by torch.nn.functional.kl_div with reduction='none' on
the broadcast input and target, then reduced and differentiated by torch's
autograd. xloss deliberately differs from PyTorch 1.13 in two places, and this
script applies exactly those two changes (and nothing else) to torch's values:
  1. a zero target (-inf with log_target) contributes 0 to the loss where the
     input is not NaN, also where the input is -inf (PyTorch: NaN);
  2. at such a target both gradients are 0 (PyTorch: NaN for the target's).
Where neither applies, the script asserts that its values equal torch's own
F.kl_div(input, target, reduction) and autograd through it.

Format, one record per case:
  case <name>
  dtype <float|double>
  reduction <none|mean|sum|batchmean>
  log_target <0|1>
  <tensor> <ndim> <dims...> : <values as C99 hex floats, row-major>
     for tensor in input, target, grad_output, output, grad_input, grad_target
  end
"""

import math
import os

import torch
import torch.nn.functional as F

REDUCTIONS = ["none", "mean", "sum", "batchmean"]
DTYPES = {"float": torch.float32, "double": torch.float64}


def fmt(t):
    t = t.detach().to(torch.float64).reshape(-1)
    return " ".join(float(v).hex() for v in t.tolist())


def tensor_line(name, t):
    dims = [str(len(t.shape))] + [str(d) for d in t.shape]
    return f"{name} {' '.join(dims)} : {fmt(t)}".rstrip()


def reduce(pw, x, reduction):
    if reduction == "none":
        return pw
    s = pw.sum()
    if reduction == "mean":
        return s / pw.numel()
    if reduction == "batchmean":
        return s / x.shape[0] if x.dim() > 0 else s
    return s


def compute(x, t, reduction, log_target, gout):
    shape = torch.broadcast_shapes(x.shape, t.shape)
    xe = x.expand(shape).clone().requires_grad_(True)
    te = t.expand(shape).clone().requires_grad_(True)
    pw = F.kl_div(xe, te, reduction="none", log_target=log_target)
    zero = (te == -math.inf if log_target else te == 0) & ~torch.isnan(xe)
    fixed = torch.where(zero, torch.zeros_like(pw), pw)
    out = reduce(fixed, x, reduction)
    out.backward(gout)
    gx = torch.where(zero, torch.zeros_like(xe.grad), xe.grad).sum_to_size(x.shape)
    gt = torch.where(zero, torch.zeros_like(te.grad), te.grad).sum_to_size(t.shape)
    improved = bool(zero.any()) and (bool(torch.isnan(pw[zero]).any()) or bool(torch.isnan(te.grad[zero]).any()))
    if not improved and x.shape == t.shape:
        # Without the two improvements these are torch's own numbers.
        xr = x.clone().requires_grad_(True)
        tr = t.clone().requires_grad_(True)
        ref = F.kl_div(xr, tr, reduction=reduction, log_target=log_target)
        ref.backward(gout)
        for a, b in ((ref, out), (xr.grad, gx), (tr.grad, gt)):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True), (a, b)
    return out.detach(), gx.detach(), gt.detach()


def probs(gen, shape, dtype, zeros=0.0):
    t = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.05
    if len(shape) > 0 and shape[-1] > 0:
        t = t / t.sum(-1, keepdim=True)
    if zeros > 0:
        t = torch.where(torch.rand(shape, generator=gen, dtype=torch.float64) < zeros, torch.zeros_like(t), t)
    return t.to(dtype)


def log_probs(gen, shape, dtype):
    z = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    if len(shape) > 0 and shape[-1] > 0:
        z = torch.log_softmax(z, -1)
    else:
        z = -torch.rand(shape, generator=gen, dtype=torch.float64) * 3
    return z.to(dtype)


def main():
    gen = torch.Generator().manual_seed(20261121)
    records = []

    def add(name, x, t, reduction, log_target, dtype_name):
        dtype = DTYPES[dtype_name]
        x = x.to(dtype)
        t = t.to(dtype)
        shape = torch.broadcast_shapes(x.shape, t.shape)
        if reduction == "none":
            gout = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 0.5).to(dtype)
        else:
            gout = torch.tensor(0.75, dtype=dtype)
        out, gx, gt = compute(x, t, reduction, log_target, gout)
        records.append("\n".join([
            f"case {name}",
            f"dtype {dtype_name}",
            f"reduction {reduction}",
            f"log_target {int(log_target)}",
            tensor_line("input", x),
            tensor_line("target", t),
            tensor_line("grad_output", gout),
            tensor_line("output", out),
            tensor_line("grad_input", gx),
            tensor_line("grad_target", gt),
            "end",
        ]))

    same_shapes = [(), (1,), (7,), (37,), (3, 5), (4, 17), (2, 3, 4), (2, 3, 4, 5), (3, 1, 65)]
    broadcasts = [((4, 5), (5,)), ((5,), (3, 5)), ((3, 1), (1, 4)), ((2, 1, 4), (3, 1)), ((6, 7), ())]
    for dtype_name in DTYPES:
        for log_target in (False, True):
            for reduction in REDUCTIONS:
                tag = f"{dtype_name}_{'log' if log_target else 'prob'}_{reduction}"
                for shape in same_shapes:
                    x = log_probs(gen, shape, torch.float64)
                    t = log_probs(gen, shape, torch.float64) if log_target else probs(gen, shape, torch.float64)
                    add(f"{tag}_shape{'x'.join(map(str, shape)) or '0d'}", x, t, reduction, log_target, dtype_name)
                for xs, ts in broadcasts:
                    x = log_probs(gen, xs, torch.float64)
                    t = log_probs(gen, ts, torch.float64) if log_target else probs(gen, ts, torch.float64)
                    add(f"{tag}_bcast{'x'.join(map(str, xs))}_{'x'.join(map(str, ts)) or '0d'}", x, t, reduction,
                        log_target, dtype_name)
                # Zero targets (exact 0, or -inf in log space), some against masked inputs (-inf).
                x = log_probs(gen, (4, 9), torch.float64)
                x[0, 0] = -math.inf
                x[2, 5] = -math.inf
                t = probs(gen, (4, 9), torch.float64, zeros=0.3)
                t[0, 0] = 0.0
                t[2, 5] = 0.0
                t[1, 1] = 0.0
                if log_target:
                    t = torch.log(t)
                add(f"{tag}_zero_targets", x, t, reduction, log_target, dtype_name)
                # Empty tensors.
                for shape in [(0,), (0, 3)]:
                    add(f"{tag}_empty{'x'.join(map(str, shape))}", log_probs(gen, shape, torch.float64),
                        probs(gen, shape, torch.float64), reduction, log_target, dtype_name)
                if not log_target:
                    # Negative targets: NaN terms, as in PyTorch 1.13.
                    x = log_probs(gen, (3, 4), torch.float64)
                    t = probs(gen, (3, 4), torch.float64)
                    t[1, 2] = -0.25
                    add(f"{tag}_negative_target", x, t, reduction, log_target, dtype_name)

    # OneFlow's documented example (its target has a negative entry: NaN in PyTorch 1.13).
    x = torch.tensor([-0.9021705, 0.08798598, 1.04686249], dtype=torch.float64)
    t = torch.tensor([1.22386942, -0.89729659, 0.01615712], dtype=torch.float64)
    for reduction in REDUCTIONS:
        add(f"oneflow_example_{reduction}", x, t, reduction, False, "float")
        add(f"oneflow_example_log_{reduction}", x, t, reduction, True, "float")

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kl_div_golden.txt")
    with open(path, "w") as f:
        f.write(f"# generated by generate_kl_div_golden.py with torch {torch.__version__}\n")
        f.write("\n".join(records) + "\n")
    print(f"wrote {len(records)} cases to {path}")


if __name__ == "__main__":
    main()
