"""Size-aware input builders: a registered loss's sample, scaled up to a benchmark size.

The registry's ``sample(generator, dtype, device)`` gives a tiny valid call
(six rows, three or four columns). A builder keeps its *structure* (which
argument is a class index, which one is positive or on the simplex, which
hyperparameters are tensors) and scales its *shape*:

* the batch dimension (dim 0 of every tensor whose dim 0 equals the sample's
  batch) becomes ``rows``;
* for kinds whose last dimension is free (classes, features, time), the last
  dimension of every tensor that has the sample's width becomes ``cols`` —
  including 1-D per-class hyperparameters such as a class prior;
* every other dimension (quantile levels, path length, histogram bins) is kept.

Values are drawn from the sample's own values: entries are resampled with a
multiplicative jitter and clamped to the sample's ``[min, max]`` (so positive
stays positive, ``> -1`` stays ``> -1``); tensors with at most four distinct
values (binary targets) are resampled exactly; rows on the simplex are
renormalised; class indices are redrawn uniformly from the new class count.
A tensor whose shape does not change is kept as it is.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from lossbook.registry import LossSpec, Sample

# (rows, cols) per size; "rows" layouts keep the other dims and scale rows to the same element count.
SIZES = {
    "small": (128, 32),
    "medium": (2048, 128),
    "large": (8192, 256),
}
# The linear-layer cross-entropy: (N, D, V).
HIDDEN_SIZES = {
    "small": (128, 32, 512),
    "medium": (1024, 64, 4096),
    "large": (2048, 128, 8192),
}
LINEAR_CE_CASE = (8192, 256, 32768)  # --linear-ce: the naive logits are 1 GiB in float32

# How each input kind scales is its record's ``bench_layout`` (lossbook.kinds): "rows-cols" scales rows and the
# free last dimension, "rows" keeps the other dims (quantile levels, path length, bins), "rows-exact" resamples
# whole rows without jitter (x1 < x2 must survive), "hidden" is the linear-layer cross-entropy.


class Unsupported(Exception):
    """This loss cannot be scaled by the builders (the message says why)."""


@dataclasses.dataclass
class Built:
    sample: Sample
    shape: str  # human-readable shape of the first argument


def _is_simplex(t: torch.Tensor) -> bool:
    if not t.is_floating_point() or t.numel() == 0 or bool((t < 0).any()):
        return False
    return bool(torch.allclose(t.sum(-1), torch.ones((), dtype=t.dtype), atol=1e-6))


def _resample(t: torch.Tensor, shape: tuple[int, ...], g: torch.Generator, *, classes: int | None,
              exact: bool) -> torch.Tensor:
    flat = t.reshape(-1)
    numel = math.prod(shape)
    if not t.is_floating_point():
        if classes is not None and t.numel() and int(t.min()) >= 0:
            return torch.randint(0, classes, shape, generator=g, dtype=t.dtype)
        idx = torch.randint(0, max(flat.numel(), 1), (numel,), generator=g)
        return flat[idx].reshape(shape).clone()
    src = flat.double()
    idx = torch.randint(0, max(flat.numel(), 1), (numel,), generator=g)
    out = src[idx]
    distinct = torch.unique(src).numel()
    if not exact and distinct > 4:
        out = out * torch.exp(0.3 * torch.randn(numel, generator=g, dtype=torch.float64))
        out = out.clamp(float(src.min()), float(src.max()))
    out = out.reshape(shape)
    if t.dim() >= 1 and _is_simplex(t.double()):
        out = out.clamp_min(1e-6)
        out = out / out.sum(-1, keepdim=True)
    return out.to(t.dtype)


def _resample_rows(t: torch.Tensor, rows: int, g: torch.Generator) -> torch.Tensor:
    idx = torch.randint(0, t.shape[0], (rows,), generator=g)
    return t[idx].clone()


def build(spec: LossSpec, size: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
          seed: int = 0) -> Built:
    """The registered sample of ``spec`` scaled to ``size``; raises :class:`Unsupported` for unknown kinds."""
    layout = spec.kind.bench_layout
    if layout is None:
        raise Unsupported(f"input kind {spec.input_kind!r} has no benchmark layout (lossbook.kinds: bench_layout)")
    g = torch.Generator().manual_seed(seed)
    base = spec.sample(torch.Generator().manual_seed(seed), torch.float64, torch.device("cpu"))
    if layout == "hidden":
        return _build_hidden(base, *HIDDEN_SIZES[size], g, dtype, device)
    rows, cols = SIZES[size]
    x0 = base.args[0]
    n0 = x0.shape[0] if x0.dim() else 1
    c0 = x0.shape[-1] if x0.dim() >= 2 else None
    if layout == "rows-cols":
        new_rows, new_cols = (rows, cols) if x0.dim() >= 2 else (rows * cols, None)
    else:
        other = math.prod(x0.shape[1:]) if x0.dim() >= 2 else 1
        new_rows, new_cols = max(1, rows * cols // other), None
    classes = new_cols if spec.kind.class_targets else None

    def scale(t):
        if not isinstance(t, torch.Tensor):
            return t
        shape = list(t.shape)
        if t.dim() >= 1 and shape[0] == n0:
            shape[0] = new_rows
        if new_cols is not None and c0 is not None:
            if t.dim() >= 2 and shape[-1] == c0:
                shape[-1] = new_cols
            elif t.dim() == 1 and shape[0] == c0 and t is not x0 and t.is_floating_point() and n0 != c0:
                shape[0] = new_cols  # a per-class hyperparameter (class prior, alpha)
        shape = tuple(shape)
        if shape == tuple(t.shape):
            return t.clone()
        if layout == "rows-exact":
            return _resample_rows(t, shape[0], g)
        cls = classes if (not t.is_floating_point() and t.dim() == 1 and shape[0] == new_rows) else None
        return _resample(t, shape, g, classes=cls, exact=False)

    args = tuple(scale(a) for a in base.args)
    kwargs = {k: scale(v) for k, v in base.kwargs.items()}
    out = Sample(_to(args, dtype, device), _to(kwargs, dtype, device), base.grad_args)
    return Built(out, "x".join(str(d) for d in out.args[0].shape))


def _build_hidden(base: Sample, n: int, d: int, v: int, g: torch.Generator, dtype, device) -> Built:
    h = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(v, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    y = torch.randint(0, v, (n,), generator=g)
    kwargs = dict(base.kwargs)
    kwargs.pop("chunk_size", None)  # the default chunking is what users get
    if isinstance(kwargs.get("bias"), torch.Tensor):
        kwargs["bias"] = torch.randn(v, generator=g, dtype=torch.float64) * 0.1
    out = Sample(_to((h, w, y), dtype, device), _to(kwargs, dtype, device), base.grad_args)
    return Built(out, f"N={n},D={d},V={v}")


def linear_ce_case(dtype=torch.float32, device="cpu", seed=0, case=LINEAR_CE_CASE):
    n, d, v = case
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype).to(device)
    w = (torch.randn(v, d, generator=g, dtype=dtype) / math.sqrt(d)).to(device)
    y = torch.randint(0, v, (n,), generator=g).to(device)
    return h, w, y


def _to(obj, dtype, device):
    def one(t):
        if not isinstance(t, torch.Tensor):
            return t
        t = t.to(dtype) if t.is_floating_point() else t
        return t.to(device)
    if isinstance(obj, dict):
        return {k: one(v) for k, v in obj.items()}
    return tuple(one(t) for t in obj)


def as_leaves(sample: Sample, dtype: torch.dtype | None = None) -> Sample:
    """Fresh leaf tensors (requires_grad on ``grad_args``), optionally cast."""
    def leaf(i, t):
        t = t.detach().clone()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        return t.requires_grad_(i in sample.grad_args and t.is_floating_point())
    kwargs = {k: (v.to(dtype) if dtype is not None and isinstance(v, torch.Tensor) and v.is_floating_point() else v)
              for k, v in sample.kwargs.items()}
    return Sample(tuple(leaf(i, t) for i, t in enumerate(sample.args)), kwargs, sample.grad_args)
