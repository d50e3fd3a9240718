#!/usr/bin/python3
"""Golden values of the fused linear losses, from PyTorch: F.cross_entropy(F.linear(h, W, b), y), and the
divergences of generate_divergence_golden.py (per_row, reduce) between a teacher's logits and F.linear(h, W, b).

Each case stores hidden states h (tokens..., H), an output weight W (V, H), a bias b (V) or none,
int64 labels (some -100, ignored, so that the kept rows are not consecutive), and PyTorch's loss and
autograd gradients of h, W and b for grad_output 1 (reduced) or ones (none: the rows' sum), computed
in float64 from the stored values. The cross-entropy's options (label smoothing, class weights,
z_loss, softcap) are applied to the logits as in generate_cross_entropy_golden.py, whose composition
this reuses; the class axis is the logits' last.

The divergence cases (`div_*`) have a student layer (h (2, 3, 5), W (11, 5), b) and a teacher of 13
classes, of which the first 11 count: its own layer (hidden size 3, with a bias) or its logits; the
forward KL, reverse KL, generalized JSD (beta 0.5) and symmetric KL (ratio 0.3) at T = 1 and 2 (T^2),
reductions none, mean and batchmean, one label in three ignored; and at T = 1 mixed with the hard
cross-entropy (weight_hard 0.3, weight_soft 0.7). Gradients of h, W and b for grad_output 1.
"""

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate_cross_entropy_golden import IGNORE, cross_entropy, record  # noqa: E402
from generate_divergence_golden import per_row, reduce  # noqa: E402
from generate_kl_div_golden import DTYPES  # noqa: E402

CLASSES = 11
HIDDEN = 5
LAYOUTS = {
    # name: the hidden states' shape
    "2d": (7, HIDDEN),
    "3d": (2, 3, HIDDEN),
}

VARIANTS = {
    # name: (ignore some rows, bias, label_smoothing, weighted, z_loss, softcap)
    "plain": (False, False, 0.0, False, 0.0, 0.0),
    "bias": (False, True, 0.0, False, 0.0, 0.0),
    "ignore": (True, True, 0.0, False, 0.0, 0.0),
    "smooth_weight": (True, False, 0.2, True, 0.0, 0.0),
    "z_loss": (True, True, 0.0, False, 1e-3, 0.0),
    "softcap": (True, False, 0.1, False, 0.0, 2.5),
    "all_ignored": (None, True, 0.0, False, 0.0, 0.0),
}


def divergence_records():
    gen = torch.Generator().manual_seed(25)
    records = []
    losses = [("forward_kl", 0.0), ("reverse_kl", 0.0), ("generalized_jsd", 0.5), ("symmetric_kl", 0.3)]
    for dtype_name, dtype in DTYPES.items():
        for loss, param in losses:
            for teacher in ("layer", "logits"):
                for temperature, wh in ((1.0, 0.0), (2.0, 0.0), (1.0, 0.3)):
                    if wh and teacher == "logits":
                        continue
                    for reduction in ("none", "mean", "batchmean"):
                        def rnd(*shape, scale=1.0):
                            return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
                        h, w, b = rnd(2, 3, HIDDEN), rnd(CLASSES, HIDDEN, scale=0.7), rnd(CLASSES, scale=0.5)
                        th, tw, tb = rnd(2, 3, 3), rnd(CLASSES + 2, 3, scale=1.2), rnd(CLASSES + 2, scale=0.5)
                        tl = rnd(2, 3, CLASSES + 2, scale=2.0)
                        labels = torch.randint(0, CLASSES, (2, 3), generator=gen)
                        labels.view(-1)[1::3] = IGNORE
                        keep = labels != IGNORE
                        inputs = [h.double().requires_grad_(True), w.double().requires_grad_(True),
                                  b.double().requires_grad_(True)]
                        s = F.linear(*inputs)
                        full = F.linear(th.double(), tw.double(), tb.double()) if teacher == "layer" else tl.double()
                        t = full[..., :CLASSES]
                        rows = per_row(loss, s, t, temperature, -1, param)
                        if wh:
                            rows = (1 - wh) * rows + wh * F.cross_entropy(s.movedim(-1, 1), labels,
                                                                          ignore_index=IGNORE, reduction="none")
                        out = reduce(rows, keep, reduction)
                        grads = torch.autograd.grad(out.sum(), inputs)
                        tensors = {"hidden": h.double(), "weight": w.double(), "bias": b.double()}
                        if teacher == "layer":
                            tensors.update({"teacher_hidden": th.double(), "teacher_weight": tw.double(),
                                            "teacher_bias": tb.double()})
                        else:
                            tensors["teacher_logits"] = tl.double()
                        tensors["labels"] = labels.double()
                        tensors["loss"] = out.detach()
                        for name, g in zip(("grad_hidden", "grad_weight", "grad_bias"), grads):
                            tensors[name] = g
                        options = {"loss": loss, "param": param, "temperature": temperature, "teacher": teacher,
                                   "weight_hard": wh, "weight_soft": 1 - wh}
                        name = f"div_{loss}_{teacher}_T{temperature}_wh{wh}_{dtype_name}_{reduction}"
                        records.append(record(name, dtype_name, reduction, options, tensors))
    return records


def main():
    torch.manual_seed(24)
    out = [f"# generated by generate_fused_linear_golden.py with torch {torch.__version__}"]
    for dtype_name, dtype in DTYPES.items():
        for layout, shape in LAYOUTS.items():
            row_shape = list(shape[:-1])
            for variant, (ignore, with_bias, smoothing, weighted, z_loss, cap) in VARIANTS.items():
                h = torch.randn(shape).to(dtype)
                w = (torch.randn(CLASSES, HIDDEN) * 0.7).to(dtype)
                b = (torch.randn(CLASSES) * 0.5).to(dtype) if with_bias else None
                labels = torch.randint(0, CLASSES, row_shape)
                if ignore is None:
                    labels[...] = IGNORE
                elif ignore:
                    labels.view(-1)[1::3] = IGNORE
                weight = (torch.rand(CLASSES) + 0.25).to(dtype) if weighted else None
                for reduction in ("none", "mean", "sum"):
                    if variant == "all_ignored" and reduction != "mean":
                        continue
                    inputs = [h.double().requires_grad_(True), w.double().requires_grad_(True)]
                    if with_bias:
                        inputs.append(b.double().requires_grad_(True))
                    logits = F.linear(*inputs)
                    wd = weight.double() if weighted else None
                    loss = cross_entropy(logits, labels, -1, reduction, smoothing, wd, z_loss, cap)
                    tensors = {"hidden": h.double(), "weight": w.double()}
                    if with_bias:
                        tensors["bias"] = b.double()
                    tensors["labels"] = labels.double()
                    if weighted:
                        tensors["class_weight"] = wd
                    tensors["loss"] = loss.detach()
                    if variant != "all_ignored":
                        grads = torch.autograd.grad(loss.sum(), inputs)
                        for name, g in zip(("grad_hidden", "grad_weight", "grad_bias"), grads):
                            tensors[name] = g
                    options = {"smoothing": smoothing, "z_loss": z_loss, "softcap": cap}
                    name = f"{layout}_{variant}_{dtype_name}_{reduction}"
                    out.append(record(name, dtype_name, reduction, options, tensors))
    out += divergence_records()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fused_linear_golden.txt")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"{len(out) - 1} cases -> {path}")


if __name__ == "__main__":
    main()
