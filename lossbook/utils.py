"""Shared plumbing for every loss: reductions, dtype handling, seeding.

Every loss in lossbook ends with :func:`reduce_loss`, so the meaning of
``reduction`` (and of a per-sample ``weight``) is the same everywhere.
"""

from __future__ import annotations

import os
import random
from typing import Sequence

import numpy as np
import torch

from lossbook.validation import check_weight

REDUCTIONS = ("none", "mean", "sum")
HALF_DTYPES = (torch.float16, torch.bfloat16)


def check_reduction(reduction: str, allowed: Sequence[str] = REDUCTIONS) -> None:
    """Raise ``ValueError`` naming the valid choices when ``reduction`` is not one of them."""
    if reduction not in allowed:
        choices = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"reduction must be one of {choices}, got {reduction!r}")


def reduce_loss(
    loss: torch.Tensor,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce per-element losses.

    ``"none"`` returns ``loss`` (times ``weight`` if given), ``"sum"`` returns
    ``Σ w·ℓ`` and ``"mean"`` the weighted mean ``Σ w·ℓ / Σ w``.

    An empty batch gives ``0`` for ``"mean"`` and ``"sum"`` (no samples, no loss,
    zero gradient) instead of torch's ``nan``: a filtered batch that happens to
    be empty should not poison a training run.
    """
    check_reduction(reduction)
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if weight is None:
        return total / max(loss.numel(), 1)
    denom = torch.broadcast_to(weight, loss.shape).sum()
    return total / torch.where(denom == 0, torch.ones_like(denom), denom)


def finish(
    loss: torch.Tensor,
    reduction: str,
    *,
    like: torch.Tensor,
    weight: torch.Tensor | None = None,
    shape: Sequence[int] | None = None,
) -> torch.Tensor:
    """The last step of every loss: check the weight, reshape, reduce, return in ``like``'s dtype.

    ``loss`` holds the per-element losses (computed in the compute dtype);
    ``shape``, if given, is the per-element output shape it is reshaped to
    first. ``weight`` must broadcast *to* that shape (a ``(N, 1)`` weight on a
    ``(N,)`` loss is an error, not a silent ``(N, N)``).
    """
    if shape is not None:
        loss = loss.reshape(tuple(shape))
    check_weight(weight, loss.shape, like)
    return reduce_loss(loss, reduction, weight).to(like.dtype)


def to_compute_dtype(x: torch.Tensor) -> torch.Tensor:
    """Half and bfloat16 inputs are computed in float32 (exp/log lose too much in 8-bit mantissas)."""
    return x.float() if x.dtype in HALF_DTYPES else x


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed python, numpy and torch; return a ``torch.Generator`` seeded the same way.

    With ``deterministic=True`` torch is asked for deterministic algorithms
    (``warn_only`` so that ops without a deterministic kernel still run).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
