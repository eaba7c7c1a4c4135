r"""Calibration metrics (Chapter 6 of the book; its losses land with the chapter).

:func:`expected_calibration_error` is the one ECE of the package: the
chapters that measure calibration before Chapter 6 (proper losses,
classification) call it, so a number quoted in one chapter means the same
in every other.
"""

from __future__ import annotations

import torch

from lossbook import validation as V

__all__ = ["expected_calibration_error"]

NORMS = ("l1", "l2", "max")


def _confidences(probs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence, hit) per example: the positive-class probability and the label for binary input,
    the top-label probability and whether the top label is right for ``(N, C)`` input."""
    V.check_tensor(probs, "probs")
    V.check_tensor(target, "target")
    V.check_floating(probs, "probs")
    V.check_same_device(probs=probs, target=target)
    if probs.dim() == 1:
        V.check_binary_target(probs, target, names=("probs", "target"))
        V.check_in_range(probs, "probs", 0.0, 1.0, low_closed=True, high_closed=True)
        return probs.double(), target.double()
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (N,) (binary) or (N, C), got shape {tuple(probs.shape)}")
    if target.shape != probs.shape[:1]:
        raise ValueError(f"target must have shape (N,) = {tuple(probs.shape[:1])} for probs of shape "
                         f"{tuple(probs.shape)}, got {tuple(target.shape)}")
    V.check_class_target(target, probs.shape[1])
    V.check_simplex(probs, "probs")
    conf, pred = probs.double().max(1)
    return conf, (pred == target).double()


def expected_calibration_error(probs: torch.Tensor, target: torch.Tensor, *, n_bins: int = 15,
                               norm: str = "l1") -> torch.Tensor:
    r"""Expected calibration error with equal-width confidence bins.

    .. math::

        \mathrm{ECE} = \sum_{b=1}^{B} \frac{|B_b|}{n}\,
        \bigl|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\bigr|,
        \qquad B_b = \{i : \lfloor B\,c_i \rfloor = b - 1\},

    where :math:`c_i` is the confidence of example :math:`i` and a confidence
    of exactly 1 falls into the last bin. ``norm="l2"`` gives the root of the
    :math:`|B_b|/n`-weighted mean squared gap, ``norm="max"`` the largest gap
    over non-empty bins (the MCE).

    Shapes:
        * ``probs (N,)``, ``target (N,)`` in {0, 1}: binary; the confidence is
          the predicted probability of class 1 and the "accuracy" of a bin is
          its frequency of class 1 (the reliability of :math:`P(y = 1)`).
        * ``probs (N, C)`` on the simplex, ``target (N,)`` int64 class
          indices: top-label ECE; the confidence is :math:`\max_k p_k`.

    Returns a 0-dim float64 tensor. It is a metric, not a loss: the bin
    assignment is piecewise constant, so it carries no gradient.

    Agrees with ``torchmetrics`` (``binary_calibration_error`` and
    ``multiclass_calibration_error``) except for confidences of exactly 1,
    which torchmetrics puts in a bin of their own.

    Reference: Naeini, Cooper & Hauskrecht (2015), *Obtaining well calibrated
    probabilities using Bayesian binning*; Guo et al. (2017), *On calibration
    of modern neural networks*.

    Example:
        >>> expected_calibration_error(torch.tensor([0.9, 0.9, 0.2, 0.2]), torch.tensor([1.0, 0.0, 0.0, 0.0]))
        tensor(0.3000, dtype=torch.float64)
    """
    V.check_positive_int(n_bins, "n_bins")
    V.check_choice(norm, "norm", NORMS)
    conf, hit = _confidences(probs, target)
    if conf.numel() == 0:
        raise ValueError("expected_calibration_error needs at least one example, got N = 0")
    conf, hit = conf.detach(), hit.detach()
    index = (conf * n_bins).long().clamp(0, n_bins - 1)
    count = torch.zeros(n_bins, dtype=torch.float64, device=conf.device).index_add_(0, index, torch.ones_like(conf))
    conf_sum = torch.zeros_like(count).index_add_(0, index, conf)
    hit_sum = torch.zeros_like(count).index_add_(0, index, hit)
    filled = count > 0
    gap = (hit_sum[filled] - conf_sum[filled]).abs() / count[filled]
    share = count[filled] / conf.numel()
    if norm == "l1":
        return (share * gap).sum()
    if norm == "l2":
        return (share * gap.square()).sum().sqrt()
    return gap.max()
