"""What each lossbook loss is timed against.

``REFERENCES`` maps a loss name to ``Reference(category, label, fn)``:

* ``builtin`` — an exact torch built-in (or a one-line composition of them) computing the same
  quantity. Target: lossbook within 1.1x.
* ``peer`` — a peer library's implementation of the same loss (kornia, entmax, torchmetrics).
  Target: lossbook at most 1.0x and no less accurate (float32 error against the float64 oracle).
* ``naive`` — the materialised version of a memory-efficient loss (linear cross-entropy).
  Target: time within 1.5x; at the ``--linear-ce`` size, peak memory at most 1/4.

A loss with no entry gets a ``baseline``: ``F.cross_entropy`` on the same logits (class-index
kinds) or ``F.mse_loss`` on the same input (everything else), reported as a *cost multiple*.
Target for elementwise/row-wise kinds: at most 3x; structural kinds (series metrics, soft
histograms, search paths) are reported without a target.

``fn(sample, reduction)`` returns the reference loss for a :class:`lossbook.registry.Sample`
(``reduction`` is ``"mean"`` or ``"none"``), or ``None`` when it cannot give that reduction.
Peer libraries are imported lazily; a missing one turns the entry into a baseline at run time.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F

from lossbook.registry import Sample


@dataclasses.dataclass
class Reference:
    category: str  # builtin | peer | naive | baseline
    label: str
    fn: Callable[[Sample, str], torch.Tensor | None]


# Elementwise / row-wise kinds get the 3x cost-multiple target against their baseline.
ELEMENTWISE_KINDS = {"regression", "returns", "distribution", "quantiles", "logits", "probabilities", "margins"}
TARGETS = {"builtin": 1.1, "peer": 1.0, "naive": 1.5, "baseline": 3.0}


def _mean_only(fn):
    def ref(s: Sample, reduction: str):
        return fn(s) if reduction == "mean" else None
    return ref


def _one_hot(y, z):
    return F.one_hot(y, z.shape[-1]).to(z.dtype)


def _rowsum(per_elem, reduction):
    rows = per_elem.sum(-1)
    return rows if reduction == "none" else rows.mean()


# ----------------------------------------------------------------------------- peers


def _kornia_focal(s, reduction):
    from kornia.losses import focal_loss
    z, y = s.args
    return focal_loss(z, y, alpha=s.kwargs.get("alpha"), gamma=s.kwargs.get("gamma", 2.0), reduction=reduction)


def _kornia_binary_focal(s, reduction):
    from kornia.losses import binary_focal_loss_with_logits
    z, t = s.args
    return binary_focal_loss_with_logits(z, t, alpha=s.kwargs.get("alpha", 0.25), gamma=s.kwargs.get("gamma", 2.0),
                                         reduction=reduction)


def _entmax_sparsemax(s, reduction):
    from entmax import sparsemax_loss
    out = sparsemax_loss(*s.args[:2])
    return out if reduction == "none" else out.mean()


def _entmax_bisect(s, reduction):
    if s.kwargs.get("regularizer") != "tsallis":
        return None
    from entmax import entmax_bisect_loss
    out = entmax_bisect_loss(*s.args[:2], alpha=s.kwargs.get("alpha", 1.5), n_iter=50)
    return out if reduction == "none" else out.mean()


def _torchmetrics(name):
    def ref(s):
        import torchmetrics.functional as TF
        out = getattr(TF, name)(s.args[0], s.args[1])
        return out.mean()  # multi-output metrics (log_cosh_error on (N, D)) return one value per column
    return _mean_only(ref)


# ----------------------------------------------------------------------------- built-ins


def _laplace(s, reduction):
    mu, y, b = s.args
    out = -torch.distributions.Laplace(mu, b, validate_args=False).log_prob(y)
    if not s.kwargs.get("full", False):
        out = out - torch.log(torch.tensor(2.0, dtype=out.dtype))
    return out if reduction == "none" else out.mean()


def _margin(s, reduction):
    if s.kwargs.get("kind", "logistic") != "logistic":
        return None
    z = s.args[0]
    return F.soft_margin_loss(z, torch.ones_like(z), reduction=reduction)


def _logit_adjusted(s, reduction):
    z, y = s.args
    adj = s.kwargs.get("tau", 1.0) * torch.log(s.kwargs["class_prior"].to(z.dtype))
    return F.cross_entropy(z + adj, y, reduction=reduction)


def _weston_watkins(s, reduction):
    z, y = s.args
    out = F.multi_margin_loss(z, y, p=1, margin=s.kwargs.get("margin", 1.0), reduction=reduction)
    return out * z.shape[-1]  # torch divides the sum over classes by C


def _linear_naive(s, reduction):
    h, w, y = s.args
    z = h @ w.T
    if s.kwargs.get("bias") is not None:
        z = z + s.kwargs["bias"]
    return F.cross_entropy(z, y, ignore_index=s.kwargs.get("ignore_index", -100),
                           label_smoothing=s.kwargs.get("label_smoothing", 0.0), reduction=reduction)


REFERENCES: dict[str, Reference] = {
    # regression
    "mse_loss": Reference("builtin", "F.mse_loss", lambda s, r: F.mse_loss(*s.args, reduction=r)),
    "mae_loss": Reference("builtin", "F.l1_loss", lambda s, r: F.l1_loss(*s.args, reduction=r)),
    "huber_loss": Reference("builtin", "F.huber_loss",
                            lambda s, r: F.huber_loss(*s.args, delta=s.kwargs.get("delta", 1.0), reduction=r)),
    "gaussian_nll_loss": Reference("builtin", "F.gaussian_nll_loss", lambda s, r: F.gaussian_nll_loss(
        *s.args, full=s.kwargs.get("full", False), eps=s.kwargs.get("eps", 1e-6), reduction=r)),
    "laplace_nll_loss": Reference("builtin", "-torch.distributions.Laplace.log_prob", _laplace),
    "msle_loss": Reference("peer", "torchmetrics mean_squared_log_error", _torchmetrics("mean_squared_log_error")),
    "mape": Reference("peer", "torchmetrics mean_absolute_percentage_error",
                      _torchmetrics("mean_absolute_percentage_error")),
    "smape": Reference("peer", "torchmetrics symmetric_mean_absolute_percentage_error",
                       _torchmetrics("symmetric_mean_absolute_percentage_error")),
    "log_cosh_loss": Reference("peer", "torchmetrics log_cosh_error", _torchmetrics("log_cosh_error")),
    # classification
    "cross_entropy": Reference("builtin", "F.cross_entropy", lambda s, r: F.cross_entropy(
        *s.args, label_smoothing=s.kwargs.get("label_smoothing", 0.0), reduction=r)),
    "logit_adjusted_cross_entropy": Reference("builtin", "F.cross_entropy(z + τ log π)", _logit_adjusted),
    "weston_watkins_loss": Reference("builtin", "C·F.multi_margin_loss(p=1)", _weston_watkins),
    "focal_loss": Reference("peer", "kornia.losses.focal_loss", _kornia_focal),
    "sigmoid_focal_loss": Reference("peer", "kornia.losses.binary_focal_loss_with_logits", _kornia_binary_focal),
    "ovr_loss": Reference("builtin", "Σ_k F.binary_cross_entropy_with_logits(z, onehot)", lambda s, r: _rowsum(
        F.binary_cross_entropy_with_logits(s.args[0], _one_hot(s.args[1], s.args[0]), reduction="none"), r)),
    "linear_cross_entropy": Reference("naive", "F.cross_entropy(h @ W.T + b) (materialised)", _linear_naive),
    # surrogates
    "margin_loss": Reference("builtin", "F.soft_margin_loss(z, 1)", _margin),
    # proper scoring rules
    "log_score": Reference("builtin", "F.nll_loss(log q)",
                           lambda s, r: F.nll_loss(torch.log(s.args[0]), s.args[1], reduction=r)),
    "brier_score": Reference("builtin", "Σ_k F.mse_loss(q, onehot)", lambda s, r: _rowsum(
        F.mse_loss(s.args[0], _one_hot(s.args[1], s.args[0]), reduction="none"), r)),
    "sparsemax_loss": Reference("peer", "entmax.sparsemax_loss", _entmax_sparsemax),
    "fenchel_young_loss": Reference("peer", "entmax.entmax_bisect_loss", _entmax_bisect),
}


def baseline(kind: str, sample: Sample) -> Reference:
    """F.cross_entropy on the same logits for class-index kinds, else F.mse_loss on the same input."""
    x = sample.args[0]
    if kind in {"logits", "probabilities"} and x.dim() == 2:
        y = sample.args[1] if len(sample.args) > 1 and not sample.args[1].is_floating_point() else None
        if y is None:
            y = torch.randint(0, x.shape[-1], x.shape[:1], generator=torch.Generator().manual_seed(0)).to(x.device)
        return Reference("baseline", "F.cross_entropy (same logits)",
                         lambda s, r: F.cross_entropy(s.args[0], y, reduction=r))
    other = sample.args[1] if len(sample.args) > 1 else None
    if other is not None and other.is_floating_point() and other.shape == x.shape:
        return Reference("baseline", "F.mse_loss (same input)", lambda s, r: F.mse_loss(s.args[0], s.args[1], reduction=r))
    zero = torch.zeros_like(x)
    return Reference("baseline", "F.mse_loss (same input)", lambda s, r: F.mse_loss(s.args[0], zero, reduction=r))


def reference_for(name: str, kind: str, sample: Sample) -> Reference:
    ref = REFERENCES.get(name)
    if ref is not None:
        try:
            if ref.fn(sample, "mean") is not None:
                return ref
        except ImportError:
            pass
    return baseline(kind, sample)


def target_for(ref: Reference, kind: str) -> float | None:
    if ref.category == "baseline" and kind not in ELEMENTWISE_KINDS:
        return None
    return TARGETS[ref.category]
