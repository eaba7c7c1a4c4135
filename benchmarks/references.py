"""What each lossbook loss is timed against.

A loss's registry record carries its ``equivalent`` (:class:`lossbook.registry.Equivalent`): the same
quantity computed elsewhere, which the cross-check tests compare with and these benchmarks time:

* ``builtin`` — an exact torch built-in (or a one-line composition of them). Target: lossbook within 1.1x.
* ``peer`` — a peer library's implementation (kornia, entmax, torchmetrics). Target: lossbook at most
  1.0x and no less accurate (float32 error against the float64 oracle).
* ``naive`` — the materialised version of a memory-efficient loss (linear cross-entropy). Target: time
  within 1.5x; at the ``--linear-ce`` size, peak memory at most 1/4.

A loss with no equivalent gets a ``baseline``: ``F.cross_entropy`` on the same logits (class-index
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

from lossbook.registry import LossSpec, Sample


@dataclasses.dataclass
class Reference:
    category: str  # builtin | peer | naive | baseline
    label: str
    fn: Callable[[Sample, str], torch.Tensor | None]


# Elementwise / row-wise kinds get the 3x cost-multiple target against their baseline.
ELEMENTWISE_KINDS = {"regression", "returns", "distribution", "quantiles", "logits", "logits-only", "binary-logits",
                     "probabilities", "margins", "dense"}
TARGETS = {"builtin": 1.1, "peer": 1.0, "naive": 1.5, "baseline": 3.0}


def baseline(kind: str, sample: Sample) -> Reference:
    """F.cross_entropy on the same logits for class-index kinds, else F.mse_loss on the same input."""
    x = sample.args[0]
    if kind in {"logits", "probabilities", "logits-only"} and x.dim() == 2:
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


def reference_for(spec: LossSpec, sample: Sample) -> Reference:
    """The record's equivalent if it can compute this sample (and its library imports), else the baseline."""
    eq = spec.equivalent
    if eq is not None:
        ref = Reference(eq.category, eq.label, eq.fn)
        try:
            if ref.fn(sample, "mean") is not None:
                return ref
        except ImportError:
            pass
    return baseline(spec.input_kind, sample)


def target_for(ref: Reference, kind: str) -> float | None:
    if ref.category == "baseline" and kind not in ELEMENTWISE_KINDS:
        return None
    return TARGETS[ref.category]
