#!/usr/bin/python3
"""Golden values of the divergences from logits (forward_kl, reverse_kl, generalized_jsd, symmetric_kl),
computed with PyTorch in float64 from the stored (float or double) logits, by the published
formulas of their anchors:

  forward_kl   torchtune's ForwardKLLoss: per token  sum_v p_v (log p_v - log q_v)
  reverse_kl   torchtune's ReverseKLLoss: per token  sum_v q_v (log q_v - log p_v), over the
               classes whose teacher logit is finite (torchtune masks the infinite ones)
  generalized_jsd  TRL's generalized_jsd_loss: log m = logsumexp(log p + log beta,
               log q + log(1 - beta)), beta KL(P || M) + (1 - beta) KL(Q || M); beta = 0 is the
               forward and beta = 1 the reverse KL
  symmetric_kl torchtune's SymmetricKLLoss: ratio forward_kl + (1 - ratio) reverse_kl, each as
               above; ratio = 1 is the forward and ratio = 0 the reverse KL

with P = softmax(t / T), Q = softmax(s / T) along `axis`, every divergence times T^2, rows
whose label is -100 left out, and the reductions none (per row), sum, mean (over kept rows, 0
when none is kept) and batchmean (over the rows' first axis). Gradients of both logits come
from autograd, for a grad_output of 0.75 (reduced) or one per row (none).

A masked (-inf) logit becomes -1e30 for autograd: the same softmax (its exp is exactly 0), with
finite arithmetic; the terms of masked classes are then selected out as the formulas say.
Records use the format of generate_kl_div_golden.py, with an `options` line.
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate_kl_div_golden import DTYPES, tensor_line  # noqa: E402

IGNORE = -100


def per_row(loss, s, t, temperature, axis, param):
    masked_t = t == -math.inf
    s = torch.where(s == -math.inf, torch.full_like(s, -1e30), s)
    t = torch.where(masked_t, torch.full_like(t, -1e30), t)
    lq = torch.log_softmax(s / temperature, axis)
    lp = torch.log_softmax(t / temperature, axis)
    p, q = lp.exp(), lq.exp()
    zero = torch.zeros_like(p)
    forward = torch.where(p > 0, p * (lp - lq), zero)
    reverse = torch.where(masked_t | (q == 0), zero, q * (lq - lp))
    if loss == "forward_kl" or (loss == "generalized_jsd" and param == 0.0) or (loss == "symmetric_kl" and param == 1.0):
        terms = forward
    elif loss == "reverse_kl" or (loss == "generalized_jsd" and param == 1.0) or (loss == "symmetric_kl" and param == 0.0):
        terms = reverse
    elif loss == "symmetric_kl":
        terms = param * forward + (1 - param) * reverse
    else:
        beta = param
        lm = torch.logsumexp(torch.stack([lp + math.log(beta), lq + math.log1p(-beta)]), 0)
        terms = beta * torch.where(p > 0, p * (lp - lm), zero) + (1 - beta) * torch.where(q > 0, q * (lq - lm), zero)
    return temperature * temperature * terms.sum(axis)


def reduce(rows, keep, reduction):
    rows = torch.where(keep, rows, torch.zeros_like(rows))
    if reduction == "none":
        return rows
    total = rows.sum()
    if reduction == "mean":
        kept = int(keep.sum())
        return total / (kept if kept > 0 else 1)
    if reduction == "batchmean":
        return total / (rows.shape[0] if rows.dim() > 0 else 1)
    return total


def record(name, dtype_name, reduction, options, tensors):
    lines = [f"case {name}", f"dtype {dtype_name}", f"reduction {reduction}", "log_target 0",
             "options " + " ".join(f"{k}={v}" for k, v in options.items())]
    lines += [tensor_line(k, v) for k, v in tensors.items()]
    lines.append("end")
    return "\n".join(lines)


def mixed_records():
    """Liger-Kernel's hard and soft mix: weight_hard * CE(s, labels) + weight_soft * soft per kept row, CE
    from F.cross_entropy on the student's logits at T = 1, the soft part with T^2 (scale=squared) or
    without (scale=none, TRL's and Liger's convention); the parts reduced as the loss."""
    gen = torch.Generator().manual_seed(20261207)
    records = []
    layouts = [((5, 7), -1), ((4, 3, 2), 1)]
    losses = [("forward_kl", 0.5), ("reverse_kl", 0.5), ("generalized_jsd", 0.5), ("symmetric_kl", 0.3)]
    n = 0
    for dtype_name, dtype in DTYPES.items():
        for loss, param in losses:
            for shape, axis in layouts:
                for temperature, scale in ((1.0, "squared"), (2.0, "squared"), (2.0, "none")):
                    for reduction in ("none", "sum", "mean"):
                        n += 1
                        s = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype).to(torch.float64)
                        t = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype).to(torch.float64)
                        ax = axis % len(shape)
                        row_shape = [d for i, d in enumerate(shape) if i != ax]
                        labels = torch.randint(0, shape[ax], row_shape, generator=gen)
                        labels.view(-1)[n % labels.numel()] = IGNORE
                        keep = labels != IGNORE
                        sv = s.clone().requires_grad_(True)
                        tv = t.clone().requires_grad_(True)
                        soft = per_row(loss, sv, tv, temperature, ax, param)
                        if scale == "none":
                            soft = soft / (temperature * temperature)
                        hard = F.cross_entropy(sv.movedim(ax, 1) if ax != 1 else sv, labels, ignore_index=IGNORE,
                                               reduction="none")
                        wh, ws = 0.3, 0.7
                        out = reduce(ws * soft + wh * hard, keep, reduction)
                        if reduction == "none":
                            g = (torch.rand(out.shape, generator=gen, dtype=torch.float64) * 2 - 0.5).to(dtype).to(
                                torch.float64)
                        else:
                            g = torch.tensor(0.75, dtype=torch.float64)
                        gs, gt = torch.autograd.grad((out * g).sum(), [sv, tv])
                        options = {"loss": loss, "ratio" if loss == "symmetric_kl" else "beta": param,
                                   "temperature": temperature, "axis": axis, "weight_hard": wh, "weight_soft": ws,
                                   "scale": scale}
                        tensors = {"student": s, "teacher": t, "labels": labels.to(torch.float64), "grad_output": g,
                                   "output": out.detach(), "grad_student": gs, "grad_teacher": gt,
                                   "soft": reduce(soft, keep, reduction).detach(),
                                   "hard": reduce(hard, keep, reduction).detach()}
                        records.append(record(f"mixed_{loss}_{param}_{dtype_name}_{n}_{reduction}", dtype_name,
                                              reduction, options, tensors))
    return records


def main():
    gen = torch.Generator().manual_seed(20261123)
    records = []
    layouts = [((5, 7), -1), ((2, 3, 6), -1), ((4, 3, 2), 1), ((9,), 0)]
    losses = [("forward_kl", 0.5), ("reverse_kl", 0.5), ("generalized_jsd", 0.5), ("generalized_jsd", 0.1),
              ("generalized_jsd", 0.9), ("generalized_jsd", 0.0), ("generalized_jsd", 1.0), ("symmetric_kl", 0.5),
              ("symmetric_kl", 0.3), ("symmetric_kl", 0.0), ("symmetric_kl", 1.0)]
    n = 0
    for dtype_name, dtype in DTYPES.items():
        for loss, param in losses:
            for shape, axis in layouts:
                for reduction in ("none", "sum", "mean", "batchmean"):
                    n += 1
                    temperature = (1.0, 2.0, 0.5)[n % 3]
                    s = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype).to(torch.float64)
                    t = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype).to(torch.float64)
                    ax = axis % len(shape)
                    row_shape = [d for i, d in enumerate(shape) if i != ax]
                    labels = torch.randint(0, 50, row_shape, generator=gen) if row_shape else torch.tensor(3)
                    if n % 2 == 0 and labels.numel() > 1:
                        labels.view(-1)[0] = IGNORE
                        labels.view(-1)[-1] = IGNORE
                        # A padded row may hold anything: -inf everywhere in the teacher.
                        sel = [slice(None)] * len(shape)
                        first = [0] * len(row_shape)
                        idx = 0
                        for i in range(len(shape)):
                            if i == ax:
                                sel[i] = slice(None)
                            else:
                                sel[i] = first[idx]
                                idx += 1
                        t[tuple(sel)] = -math.inf
                    if n % 5 == 0:
                        # A class the teacher masks, in every row (a kept row keeps finite others).
                        sel = [slice(None)] * len(shape)
                        sel[ax] = 1
                        t[tuple(sel)] = -math.inf
                    if n % 11 == 0 and labels.numel() > 1:
                        labels.fill_(IGNORE)  # every row ignored: 0 and zero gradients
                    keep = labels != IGNORE
                    sv = s.clone().requires_grad_(True)
                    tv = t.clone().requires_grad_(True)
                    rows = per_row(loss, sv, tv, temperature, ax, param)
                    out = reduce(rows, keep, reduction)
                    if reduction == "none":
                        g = (torch.rand(out.shape, generator=gen, dtype=torch.float64) * 2 - 0.5).to(dtype).to(
                            torch.float64)
                    else:
                        g = torch.tensor(0.75, dtype=torch.float64)
                    gs, gt = torch.autograd.grad((out * g).sum(), [sv, tv])
                    gt = torch.where(torch.isfinite(t), gt, torch.zeros_like(gt))
                    options = {"loss": loss, "ratio" if loss == "symmetric_kl" else "beta": param,
                               "temperature": temperature, "axis": axis}
                    tensors = {"student": s, "teacher": t, "labels": labels.to(torch.float64), "grad_output": g,
                               "output": out.detach(), "grad_student": gs, "grad_teacher": gt}
                    records.append(record(f"{loss}_{param}_{dtype_name}_{n}_{reduction}", dtype_name, reduction,
                                          options, tensors))
    records += mixed_records()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "divergence_golden.txt")
    with open(path, "w") as f:
        f.write(f"# generated by generate_divergence_golden.py with torch {torch.__version__}\n")
        f.write("\n".join(records) + "\n")
    print(f"{len(records)} records written to {path}")


if __name__ == "__main__":
    main()
