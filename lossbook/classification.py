r"""Classification losses: the softmax cross-entropy family (Chapter 4 of the book).

Cross-entropy with label smoothing and class weights, focal loss (softmax and
sigmoid), the PolyLoss family (Poly-1, Poly-N, Poly-1 focal), squentropy and
the rescaled square loss, the label-distributionally-robust LDR-KL family with
its two limits (Crammer–Singer hinge and the mean margin), the Weston–Watkins
hinge, and logit adjustment for long-tailed data (training-time and post-hoc).

Conventions: ``input`` holds unnormalised class scores (logits) of shape
``(N, C)`` or, for dense prediction, ``(N, C, d1, ...)``; ``target`` holds
int64 class indices of shape ``(N,)`` / ``(N, d1, ...)``. Losses that say so
also accept float class probabilities of the shape of ``input`` (soft labels),
told apart by dtype. ``reduction="none"`` returns one value per sample (per
pixel for dense inputs). Every loss works in log space (``log_softmax``,
``logsumexp``), so logits of :math:`\pm 10^4` give finite values and
gradients, in float32 and (computed in float32) in bfloat16.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from lossbook import validation as V
from lossbook.registry import Equivalent, ErrorCase, Sample, module_twin, register
from lossbook.registry import as_numpy as _np
from lossbook.registry import with_kwargs as _bad_kwarg
from lossbook.registry import extreme_logits as _extreme_logits
from lossbook.registry import label_out_of_range as _bad_label
from lossbook.registry import logits_sample as _logits_sample
from lossbook.utils import HALF_DTYPES, check_reduction, finish, to_compute_dtype

__all__ = [
    "cross_entropy", "focal_loss", "sigmoid_focal_loss", "poly1_loss", "poly_loss", "poly1_focal_loss",
    "squentropy_loss", "rescaled_square_loss", "ldr_kl_loss", "crammer_singer_loss", "weston_watkins_loss",
    "logit_adjusted_cross_entropy", "posthoc_logit_adjust", "log1m_softmax", "log1m_softmax_at",
    "CrossEntropyLoss", "FocalLoss", "SigmoidFocalLoss", "Poly1Loss", "PolyLoss", "Poly1FocalLoss",
    "SquentropyLoss", "RescaledSquareLoss", "LDRKLLoss", "CrammerSingerLoss", "WestonWatkinsLoss",
    "LogitAdjustedCrossEntropyLoss",
    "linear_cross_entropy", "LinearCrossEntropyLoss", "default_chunk_size",
]


# --------------------------------------------------------------------------- shared plumbing


def _check_logits(input: torch.Tensor, target: torch.Tensor, *, soft: bool,
                  ignore_index: int | None = None) -> bool:
    """Validate ``(N, C, *)`` logits (``C >= 1``) and their target; True for a probability target.

    A probability target must hold probability vectors along the class dimension.
    For a loss that takes class indices only (``soft=False``), a float target of
    the index shape is a ``TypeError`` (convert it with ``.long()``) and one of
    any other shape a ``ValueError`` naming the expected shape.
    """
    if (not soft and isinstance(input, torch.Tensor) and input.dim() >= 2 and isinstance(target, torch.Tensor)
            and target.is_floating_point()):
        V.check_floating(input, "input")
        V.check_same_device(input=input, target=target)
        want = (input.shape[0],) + tuple(input.shape[2:])
        if tuple(target.shape) != want:
            raise ValueError(
                f"this loss takes class-index targets (torch.int64) of shape {want} for input of shape "
                f"{tuple(input.shape)}, got a {target.dtype} target of shape {tuple(target.shape)}"
            )
        raise TypeError(f"this loss takes class-index targets (torch.int64), got dtype {target.dtype}; "
                        "use target.long()")
    if isinstance(input, torch.Tensor) and input.dim() >= 2:
        if input.shape[1] == 0:
            raise ValueError(f"input must have at least one class (C >= 1), got shape {tuple(input.shape)}")
        index_shape = (input.shape[0],) + tuple(input.shape[2:])
        if (isinstance(target, torch.Tensor) and target.is_floating_point() and tuple(target.shape) == index_shape
                and target.shape != input.shape):
            V.check_floating(input, "input")
            raise TypeError(f"target of shape {index_shape} is a class-index target but has dtype {target.dtype}: "
                            f"use target.long() (a probability target has the shape of input {tuple(input.shape)})")
    is_soft = V.check_logits_target(input, target, soft=soft, spatial=True, ignore_index=ignore_index)
    if is_soft:
        V.check_simplex(target, "target", dim=1)
    return is_soft


def _prepare(input: torch.Tensor, target: torch.Tensor, *, soft: bool = False,
             ignore_index: int | None = None) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Validate, then flatten ``(N, C, *)`` logits to ``(M, C)`` in the compute dtype.

    Returns the logits, the target as ``(M,)`` indices or ``(M, C)``
    probabilities, and the per-sample output shape ``(N, *)``.
    """
    is_soft = _check_logits(input, target, soft=soft, ignore_index=ignore_index)
    num_classes = input.shape[1]
    shape = (input.shape[0],) + tuple(input.shape[2:])
    z = to_compute_dtype(input).movedim(1, -1).reshape(-1, num_classes)
    if is_soft:
        return z, target.movedim(1, -1).reshape(-1, num_classes).to(z.dtype), shape
    return z, target.reshape(-1), shape


def _expect(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_k q_k v_k` where classes of zero mass contribute exactly 0 (no :math:`0\cdot\infty`).

    A masked class (logit ``-inf``, so :math:`\log p_k = -\infty`) with :math:`q_k = 0`
    adds nothing to the value or to the gradient.
    """
    return (q * torch.where(q != 0, values, torch.zeros_like(values))).sum(-1)


def _pick(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``values[i, target[i]]`` for index targets, ``Σ_k target[i, k] values[i, k]`` for probabilities."""
    if target.is_floating_point():
        return _expect(values, target)
    return values.gather(-1, target[:, None]).squeeze(-1)


def _pow_from_log(log_x: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
    r""":math:`x^\gamma = e^{\gamma\log x}`, with :math:`0^0 = 1`, :math:`0^\gamma = 0`, finite gradients at :math:`x = 0`.

    ``log_x = -inf`` (``x = 0``) would give :math:`0\cdot(-\infty)` = NaN for
    :math:`\gamma = 0` and a NaN gradient with respect to :math:`\gamma`; there the
    value is taken from the limit and nothing is differentiated.
    """
    zero = log_x == -math.inf
    safe = torch.where(zero, torch.zeros_like(log_x), log_x)
    edge = ((torch.zeros_like(log_x) + gamma) == 0).to(log_x.dtype)
    return torch.where(zero, edge, torch.exp(gamma * safe))


def _logsumexp_rest(z: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    r""":math:`\operatorname{logsumexp}_{k \notin \text{drop}} z_k` (keepdim), ``-inf`` when nothing is left.

    The dropped entries are set to the most negative finite float rather than
    ``-inf``: a row with every other class masked (or ``C = 1``) then has a finite
    log-sum-exp, whose gradient is not the NaN of ``exp(-inf - (-inf))``; its
    value is replaced by ``-inf`` afterwards (with no gradient).
    """
    low = torch.finfo(z.dtype).min
    rest = torch.logsumexp(z.masked_fill(drop, low), -1, keepdim=True)
    return torch.where(rest <= low, torch.full_like(rest, -math.inf), rest)


def log1m_softmax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r""":math:`\log(1 - \mathrm{softmax}(z)_k)` for every class, accurate and with finite gradients.

    For the largest logit :math:`z_m`, with :math:`R = \operatorname{logsumexp}_{j\ne m}(z_j - z_m)`,
    :math:`\log(1-p_m) = \log\sigma(R)`, which stays finite (about :math:`-2\cdot10^4` for logits
    :math:`\pm10^4`) where ``log1p(-p)`` would give ``-inf`` and a NaN gradient, and is exact for
    ties of huge logits (:math:`10^{30}`), where :math:`\operatorname{logsumexp}_j z_j` rounds to
    :math:`z_m`. Every other class has :math:`p_k \le \tfrac12`, where ``log1p(-p_k)`` of the
    accurate ``log_softmax`` is accurate. Cost :math:`O(C)`.
    Masked classes (logit ``-inf``) give 0; a class with :math:`p_k = 1` exactly (every
    other class masked, or :math:`C = 1`) gives ``-inf``, with finite (zero) gradients.

    Example:
        >>> log1m_softmax(torch.tensor([1e4, 0.0]))  # log(1 - p) for p ≈ 1 and p ≈ e^-1e4
        tensor([-10000.,     -0.])
    """
    z = z.movedim(dim, -1)
    logp = F.log_softmax(z, -1)
    top = z.argmax(-1, keepdim=True)
    is_top = torch.zeros_like(z, dtype=torch.bool).scatter(-1, top, True)
    rest = _logsumexp_rest(z - z.gather(-1, top), is_top)
    # The where-NaN trap: the unused branch must have a finite gradient too.
    safe = torch.where(is_top, torch.full_like(logp, -1.0), logp)
    out = torch.where(is_top, F.logsigmoid(rest), torch.log1p(-torch.exp(safe)))
    return out.movedim(-1, dim)


def log1m_softmax_at(z: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`\log p_t` and :math:`\log(1 - p_t)` of the target class only, for ``(M, C)`` logits.

    With :math:`R = \operatorname{logsumexp}_{k\ne t}(z_k - z_t)` (the log-odds against the
    target), :math:`\log p_t = \log\sigma(-R)` and :math:`\log(1-p_t) = \log\sigma(R)`: both
    exact for every :math:`p_t`, as :math:`p_t \to 1` and :math:`p_t \to 0`, and for ties of huge
    logits (:math:`10^{30}`, where :math:`\operatorname{logsumexp}_k z_k` would round to the
    largest logit). One log-sum-exp over the logits: focal and Poly-1 focal with index targets,
    which need :math:`(1-p_t)^\gamma` for possibly fractional :math:`\gamma`, skip the per-class
    work of :func:`log1m_softmax`. (Losses with integer powers of :math:`1-p_t`, such as
    Poly-:math:`N`, MAE and RCE, only need ``-expm1(log p_t)``.) Where :math:`p_t = 1` exactly
    (every other class masked with ``-inf``, or :math:`C = 1`) :math:`\log(1-p_t)` is ``-inf``
    and the gradients stay finite.

    Example:
        >>> log_pt, log_1m_pt = log1m_softmax_at(torch.tensor([[1e4, 0.0]]), torch.tensor([0]))
        >>> log_1m_pt
        tensor([-10000.])
    """
    idx = target[:, None]
    d = z - z.gather(-1, idx)
    is_t = torch.zeros_like(z, dtype=torch.bool).scatter(-1, idx, True)
    rest = _logsumexp_rest(d, is_t).squeeze(-1)
    return F.logsigmoid(-rest), F.logsigmoid(rest)


def _refuse_infinite_logits(value: torch.Tensor, z: torch.Tensor, loss: str, why: str) -> None:
    """Value check (eager only): a non-finite ``value`` of a loss that squares logits, caused by a non-finite logit.

    Only the per-sample values are scanned on the way (``(M,)``, not the ``(M, C)`` logits).
    """
    if V.skip_value_checks(z) or value.numel() == 0 or bool(torch.isfinite(value).all()):
        return
    if not bool(torch.isfinite(z).all()):
        raise ValueError(f"input holds a non-finite logit (-inf for a masked class, +inf or NaN); {loss} {why}, "
                         "so its value would be infinite: mask with a large finite negative value instead")


def _check_ignore_index(ignore_index: object) -> None:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")


# --------------------------------------------------------------------------- cross-entropy and focal


def _smoothed_index_ce(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor | None, ignore_index: int,
                       eps: torch.Tensor, reduction: str) -> torch.Tensor:
    """Label-smoothed cross-entropy of index targets with a tensor ``eps``: torch's formula, term by term."""
    logp = F.log_softmax(x, 1)
    nll = F.nll_loss(logp, t, weight=w, ignore_index=ignore_index, reduction=reduction)
    valid = t != ignore_index
    wb = None if w is None else w.reshape((1, -1) + (1,) * (x.dim() - 2))
    smooth = -(logp if wb is None else logp * wb).sum(1)
    smooth = torch.where(valid, smooth, torch.zeros_like(smooth))
    if reduction == "sum":
        smooth = smooth.sum()
    elif reduction == "mean":
        if w is None:
            denom = valid.sum()
        else:
            denom = torch.where(valid, w[torch.where(valid, t, torch.zeros_like(t))], torch.zeros_like(smooth)).sum()
        smooth = smooth.sum() / denom
    return (1.0 - eps) * nll + smooth * (eps / x.shape[1])


def _refuse_smoothed_masked_logits(loss: torch.Tensor, x: torch.Tensor, label_smoothing: float | torch.Tensor) -> None:
    """Value check (eager only): label smoothing puts mass on every class, so a ``-inf`` logit makes the loss inf.

    Looked for only when the loss came out non-finite (a check of the loss, not of the logits).
    """
    if isinstance(label_smoothing, (int, float)) and label_smoothing == 0:
        return
    if V.skip_value_checks(x, label_smoothing) or loss.numel() == 0 or bool(torch.isfinite(loss).all()):
        return
    if bool(label_smoothing != 0) and bool(torch.isneginf(x).any()):
        raise ValueError("input holds a -inf (masked) logit, but label_smoothing > 0 gives every class the mass "
                         "label_smoothing / C, so the loss would be infinite; use label_smoothing=0 with masked "
                         "logits, or mask with a large finite negative value")


def cross_entropy(input: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                  ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    r"""Softmax cross-entropy, optionally with class weights and label smoothing.

    .. math::
        \ell(z, y) = -\sum_k q_k \log \mathrm{softmax}(z)_k, \qquad
        q = (1-\epsilon)\,e_y + \epsilon/C

    for an index target :math:`y` (a probability target is smoothed the same
    way). With class weights :math:`w`, the per-sample loss is weighted and the
    mean is :math:`\sum_i w_{y_i}\ell_i / \sum_i w_{y_i}`, as in torch.

    Index targets delegate to :func:`torch.nn.functional.cross_entropy` (same
    semantics for ``weight``, ``ignore_index``, ``label_smoothing``); half-precision
    inputs are computed in float32. An empty batch, or one whose targets all equal
    ``ignore_index``, gives 0 for ``"mean"`` with a zero gradient (torch gives
    ``nan``). A masked class (logit ``-inf``) gives a finite loss when it is not the
    target and has no target mass; with ``label_smoothing > 0`` every class has
    mass, so ``-inf`` logits are refused.

    Args:
        input: logits ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices ``(N,)`` / ``(N, d1, ...)`` or probabilities of the shape of ``input``.
        weight: optional class weights ``(C,)``, non-negative.
        ignore_index: index targets equal to it contribute nothing.
        label_smoothing: :math:`\epsilon \in [0, 1]` (a number or a 0-d tensor).

    Reference: the maximum-likelihood loss of multinomial logistic regression;
    label smoothing: Szegedy et al. (2016), *Rethinking the Inception Architecture*.

    Example:
        >>> cross_entropy(torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0]))
        tensor(0.2395)
    """
    _check_ignore_index(ignore_index)
    soft = _check_logits(input, target, soft=True, ignore_index=ignore_index)
    check_reduction(reduction)
    V.check_in_range(label_smoothing, "label_smoothing", 0.0, 1.0, low_closed=True, high_closed=True)
    num_classes = input.shape[1]
    if weight is not None:
        V.check_floating(weight, "weight")
        V.check_same_device(input=input, weight=weight)
        if tuple(weight.shape) != (num_classes,):
            raise ValueError(f"weight must have shape (C,) = ({num_classes},), got {tuple(weight.shape)}")
        V.check_nonnegative(weight, "weight")
    x = to_compute_dtype(input)
    w = None if weight is None else weight.to(x.dtype)
    if soft:
        z, q, shape = x.movedim(1, -1).reshape(-1, num_classes), target, (input.shape[0],) + tuple(input.shape[2:])
        q = q.movedim(1, -1).reshape(-1, num_classes).to(z.dtype)
        q = (1.0 - label_smoothing) * q + label_smoothing / num_classes
        logp = F.log_softmax(z, -1)
        loss = -_expect(logp if w is None else logp * w, q)
        _refuse_smoothed_masked_logits(loss, x, label_smoothing)
        return finish(loss, reduction, like=input, shape=shape)
    if isinstance(label_smoothing, torch.Tensor):
        out = _smoothed_index_ce(x, target, w, ignore_index, label_smoothing.to(x.dtype), reduction)
    else:
        out = F.cross_entropy(x, target, weight=w, ignore_index=ignore_index, label_smoothing=label_smoothing,
                              reduction=reduction)
    _refuse_smoothed_masked_logits(out, x, label_smoothing)
    if reduction == "mean":
        # Nothing to average (empty batch, every target ignored, zero weight on every target): 0, not 0/0.
        valid = target != ignore_index
        if w is None:
            present = valid.any()
        else:
            safe = torch.where(valid, target, torch.zeros_like(target))
            present = (torch.where(valid, w[safe], torch.zeros_like(w[safe])) > 0).any()
        out = torch.where(present, out, torch.zeros_like(out))
    return out.to(input.dtype)


def _alpha_factor(alpha: float | torch.Tensor | None, z: torch.Tensor) -> torch.Tensor | float:
    """``alpha`` checked: None (1), a number or 0-d tensor ``>= 0``, or one weight ``>= 0`` per class."""
    if alpha is None:
        return 1.0
    if isinstance(alpha, torch.Tensor):
        V.check_floating(alpha, "alpha")
        if alpha.dim() != 0:
            V.check_same_device(input=z, alpha=alpha)
            if tuple(alpha.shape) != (z.shape[-1],):
                raise ValueError(f"alpha must be a number, a 0-d tensor or a tensor of one weight per class, "
                                 f"shape (C,) = ({z.shape[-1]},), got shape {tuple(alpha.shape)}")
        V.check_nonnegative(alpha, "alpha")
        return alpha.to(z.dtype)
    V.check_nonnegative(alpha, "alpha")
    return alpha


def _focal_terms(z: torch.Tensor, gamma: float | torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""Per-class focal terms :math:`-(1-p_k)^\gamma \log p_k`, with :math:`(1-p)^\gamma = e^{\gamma\log(1-p)}`.

    Classes with no target mass (:math:`q_k = 0`) get :math:`\log p_k` replaced by 0 before the
    product, so a masked class (:math:`\log p_k = -\infty`) gives neither a NaN value nor a NaN gradient.
    """
    logp = F.log_softmax(z, -1)
    logp = torch.where(q != 0, logp, torch.zeros_like(logp))
    return -_pow_from_log(log1m_softmax(z), gamma) * logp


def focal_loss(input: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0,
               alpha: float | torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Softmax focal loss :math:`-\alpha_y (1-p_y)^\gamma \log p_y`.

    The modulating factor is computed as :math:`\exp(\gamma\log(1-p_y))` with
    :math:`\log(1-p_y)` from :func:`log1m_softmax_at` (:func:`log1m_softmax` for probability
    targets; a log-sum-exp over the other classes where :math:`p > \tfrac12`), so the loss and
    its gradient are finite for every
    :math:`\gamma \ge 0` — including :math:`\gamma < 1`, where
    :math:`(1-p)^\gamma` has an infinite slope at :math:`p = 1` — even for
    saturated or masked (``-inf``, non-target) logits. :math:`\gamma = 0` is cross-entropy.

    Args:
        gamma: focusing parameter :math:`\gamma \ge 0` (a number or a 0-d tensor).
        alpha: ``None`` (no weighting), a number :math:`\ge 0` (or 0-d tensor) multiplying every
            class (the ``alpha`` of many implementations), or a tensor ``(C,)`` of class
            weights :math:`\ge 0`. NaN, infinite or negative values are refused.
        target: class indices, or probabilities :math:`q` (then
            :math:`-\sum_k q_k\alpha_k(1-p_k)^\gamma\log p_k`).

    Reference: Lin et al. (2017), *Focal Loss for Dense Object Detection*.

    Example:
        >>> focal_loss(torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0]), gamma=0.0)
        tensor(0.2395)
    """
    z, t, shape = _prepare(input, target, soft=True)
    V.check_nonnegative(gamma, "gamma")
    check_reduction(reduction)
    a = _alpha_factor(alpha, z)
    if t.is_floating_point():
        return finish(_expect(_focal_terms(z, gamma, t) * a, t), reduction, like=input, shape=shape)
    log_pt, log_1m_pt = log1m_softmax_at(z, t)
    return finish(_focal_at_target(log_pt, log_1m_pt, t, gamma, a), reduction, like=input, shape=shape)


def _focal_at_target(log_pt: torch.Tensor, log_1m_pt: torch.Tensor, t: torch.Tensor, gamma: float | torch.Tensor,
                     a: torch.Tensor | float) -> torch.Tensor:
    """The focal term of the target class only (index targets), times its class weight."""
    loss = -_pow_from_log(log_1m_pt, gamma) * log_pt
    return loss * (a[t] if isinstance(a, torch.Tensor) and a.dim() == 1 else a)


def _sigmoid_log1m_pt(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(1-p_t) = \log\big(t\,\sigma(-x) + (1-t)\,\sigma(x)\big)`, accurate and twice differentiable.

    With :math:`u = e^{-|x|} \le 1` and :math:`c` the label weight of the larger of
    :math:`\sigma(\pm x)` (:math:`c = 1-t` for :math:`x > 0`, :math:`t` otherwise),
    :math:`1-p_t = \sigma(|x|)\,\big(c + (1-c)\,u\big)`, so
    :math:`\log(1-p_t) = \log\big(c + (1-c)u\big) - \log(1+u)`: no overflow, no cancellation, and
    :math:`-|x| - \log(1+u)` exactly where :math:`c = 0` (there :math:`u` may underflow). Each
    side of :math:`x = 0` is an exact identity, so first and second derivatives are exact
    (also at :math:`x = 0`) and no ``log 0`` enters the graph.
    """
    pos = x > 0
    xn = torch.where(pos, -x, x)  # -|x|, with the slope of the side it is on
    c = torch.where(pos, 1.0 - t, t)
    u = torch.exp(xn)
    none = c == 0
    cs = torch.where(none, torch.ones_like(c), c)
    rest = torch.where(none, xn, torch.log(cs + (1.0 - cs) * u))
    return rest - torch.log1p(u)


def sigmoid_focal_loss(input: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0,
                       alpha: float | None = 0.25, reduction: str = "mean") -> torch.Tensor:
    r"""Binary (sigmoid) focal loss per logit, as in RetinaNet and ``torchvision.ops``.

    .. math::
        \ell(x, t) = \alpha_t\,(1-p_t)^\gamma\,\mathrm{BCE}(x, t),\quad
        p = \sigma(x),\ p_t = p\,t + (1-p)(1-t),\ \alpha_t = \alpha t + (1-\alpha)(1-t)

    :math:`\log(1-p_t) = \log\big(t\,\sigma(-x) + (1-t)\,\sigma(x)\big)` is
    computed as :math:`\log\big(c + (1-c)e^{-|x|}\big) - \log(1+e^{-|x|})` (:math:`c` the label
    weight of the larger of :math:`\sigma(\pm x)`), so saturated logits give finite gradients
    for every :math:`\gamma \ge 0`, and second derivatives (Hessians, gradient penalties) are
    finite and exact, for hard and soft labels.

    Args:
        input: logits of any shape; target: same shape, in :math:`[0, 1]`.
        gamma: :math:`\gamma \ge 0` (a number or a 0-d tensor).
        alpha: weight of the positives in :math:`[0, 1]` (a number or a 0-d tensor);
            ``None`` disables the weighting.

    Reference: Lin et al. (2017); ``torchvision.ops.sigmoid_focal_loss``.

    Example:
        >>> sigmoid_focal_loss(torch.tensor([0.0]), torch.tensor([1.0]), gamma=0.0, alpha=None)
        tensor(0.6931)
    """
    V.check_binary_target(input, target)
    V.check_nonnegative(gamma, "gamma")
    check_reduction(reduction)
    if alpha is not None:
        if isinstance(alpha, torch.Tensor) and alpha.dim() != 0:
            raise ValueError(f"alpha must be a number or a 0-d tensor in [0, 1], or None; "
                             f"got a tensor of shape {tuple(alpha.shape)}")
        V.check_in_range(alpha, "alpha", 0.0, 1.0, low_closed=True, high_closed=True)
    x = to_compute_dtype(input)
    t = target.to(x.dtype)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    loss = _pow_from_log(_sigmoid_log1m_pt(x, t), gamma) * ce
    if alpha is not None:
        loss = (alpha * t + (1.0 - alpha) * (1.0 - t)) * loss
    return finish(loss, reduction, like=input)


# --------------------------------------------------------------------------- PolyLoss


def poly1_loss(input: torch.Tensor, target: torch.Tensor, *, epsilon: float = 1.0,
               reduction: str = "mean") -> torch.Tensor:
    r"""Poly-1 loss :math:`-\log p_t + \epsilon\,(1 - p_t)`.

    Cross-entropy is :math:`\sum_{j\ge1}\frac1j(1-p_t)^j`; Poly-1 perturbs the
    coefficient of the first polynomial term from 1 to :math:`1+\epsilon`.
    With probability targets :math:`q` (e.g. smoothed labels),
    :math:`p_t = \sum_k q_k p_k` and the first term is the soft cross-entropy, as in the paper's code.

    Args:
        epsilon: the perturbation :math:`\epsilon` (any finite real, or a 0-d tensor;
            :math:`\epsilon \ge -1` keeps it a sensible loss).

    Reference: Leng et al. (2022), *PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions*.

    Example:
        >>> poly1_loss(torch.zeros(1, 2), torch.tensor([0]), epsilon=1.0)
        tensor(1.1931)
    """
    V.check_finite(epsilon, "epsilon")
    return poly_loss(input, target, epsilons=(epsilon,), reduction=reduction)


def _check_epsilons(epsilons: object) -> list:
    if isinstance(epsilons, torch.Tensor):
        if epsilons.dim() != 1:
            raise ValueError(f"epsilons must be a sequence of numbers or a 1-D tensor, got a tensor of shape "
                             f"{tuple(epsilons.shape)}")
        eps = list(epsilons.unbind(0))
    elif isinstance(epsilons, (list, tuple)):
        eps = list(epsilons)
    else:
        raise TypeError(f"epsilons must be a sequence of numbers (ε_1, ..., ε_N), got {type(epsilons).__name__}")
    for j, e in enumerate(eps):
        V.check_finite(e, f"epsilons[{j}]")
    return eps


def poly_loss(input: torch.Tensor, target: torch.Tensor, *, epsilons: Sequence[float],
              reduction: str = "mean") -> torch.Tensor:
    r"""Poly-N loss :math:`-\log p_t + \sum_{j=1}^{N}\epsilon_j (1-p_t)^j`.

    With :math:`\epsilon_j = -1/j` for :math:`j \le N` it is cross-entropy
    without its first :math:`N` Taylor terms, :math:`\sum_{j>N}\frac1j(1-p_t)^j`.
    For index targets every term is a function of :math:`-\log p_t`, taken from the fused
    cross-entropy kernel, with :math:`1-p_t` = ``-expm1(log p_t)``; the integer powers
    :math:`j \ge 1` keep the derivative finite where :math:`p_t` rounds to 1.

    Args:
        epsilons: the coefficients :math:`\epsilon_1, \dots, \epsilon_N` (finite numbers,
            0-d tensors, or a 1-D tensor).
        target: class indices, or probabilities (then :math:`p_t = \sum_k q_k p_k`).

    Reference: Leng et al. (2022), PolyLoss, Eq. (2)–(3).

    Example:
        >>> poly_loss(torch.zeros(1, 2), torch.tensor([0]), epsilons=[-1.0])
        tensor(0.1931)
    """
    z, t, shape = _prepare(input, target, soft=True)
    eps = _check_epsilons(epsilons)
    check_reduction(reduction)
    if t.is_floating_point():
        logp = F.log_softmax(z, -1)
        ce = -_expect(logp, t)
        # p_t = Σ q_k p_k; clamped below 1 so that log1p keeps a finite gradient.
        log_1m_pt = torch.log1p(-_expect(logp.exp(), t).clamp(max=1.0 - torch.finfo(z.dtype).eps))
        loss = ce
        for j, e in enumerate(eps, start=1):
            if not (isinstance(e, (int, float)) and e == 0):
                loss = loss + e * torch.exp(j * log_1m_pt)
        return finish(loss, reduction, like=input, shape=shape)
    # Index targets: every term is a function of -log p_t, which the fused cross-entropy kernel
    # gives (and differentiates) at the cost of one pass; (1 - p_t)^j with integer j >= 1 has a
    # finite derivative even where p_t rounds to 1.
    ce = F.cross_entropy(z, t, reduction="none")
    one_m_pt = -torch.expm1(-ce)
    loss = ce
    for j, e in enumerate(eps, start=1):
        if not (isinstance(e, (int, float)) and e == 0):
            loss = loss + e * one_m_pt**j
    return finish(loss, reduction, like=input, shape=shape)


def poly1_focal_loss(input: torch.Tensor, target: torch.Tensor, *, epsilon: float = 1.0, gamma: float = 2.0,
                     alpha: float | torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Poly-1 focal loss :math:`-\alpha_t(1-p_t)^\gamma\log p_t + \epsilon\,(1-p_t)^{\gamma+1}`.

    Focal loss is :math:`\sum_{j\ge1}\frac1j(1-p_t)^{j+\gamma}`; its leading
    term is :math:`(1-p_t)^{\gamma+1}`, whose coefficient Poly-1 shifts by
    :math:`\epsilon`. As in the paper's code, ``alpha`` weights the focal term only
    (same contract as in :func:`focal_loss`). Class-index targets only.

    Reference: Leng et al. (2022), PolyLoss, Eq. (5).

    Example:
        >>> poly1_focal_loss(torch.zeros(1, 2), torch.tensor([0]), epsilon=0.0, gamma=0.0)
        tensor(0.6931)
    """
    z, t, shape = _prepare(input, target)
    V.check_nonnegative(gamma, "gamma")
    V.check_finite(epsilon, "epsilon")
    check_reduction(reduction)
    a = _alpha_factor(alpha, z)
    log_pt, log_1m_pt = log1m_softmax_at(z, t)
    loss = _focal_at_target(log_pt, log_1m_pt, t, gamma, a) + epsilon * _pow_from_log(log_1m_pt, gamma + 1.0)
    return finish(loss, reduction, like=input, shape=shape)


# --------------------------------------------------------------------------- square-type losses


def _off_target_square_sum(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_{k\ne y} z_k^2` (the target's logit zeroed, not subtracted: no cancellation)."""
    return z.scatter(-1, t[:, None], 0.0).square().sum(-1)


def squentropy_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""Squentropy: cross-entropy plus the average square of the off-target logits.

    .. math:: \ell(z, y) = -\log p_y + \frac{1}{C-1}\sum_{k\ne y} z_k^2

    It equals cross-entropy when the off-target logits are 0, and its gradient
    is :math:`\partial\ell/\partial z_k = p_k + 2z_k/(C-1)` for :math:`k \ne y`:
    the square term pulls wrong-class logits to 0 instead of to
    :math:`-\infty`, which keeps the logits bounded and the model calibrated.
    Needs :math:`C \ge 2`; non-finite logits (``-inf`` masks) are refused, since the
    square term would be infinite.

    Reference: Hui, Belkin & Wright (2023), *Cut your Losses with Squentropy*.

    Example:
        >>> squentropy_loss(torch.tensor([[0.0, 1.0, -1.0]]), torch.tensor([0]))
        tensor(2.4076)
    """
    z, t, shape = _prepare(input, target)
    check_reduction(reduction)
    num_classes = z.shape[-1]
    if num_classes < 2:
        raise ValueError(f"squentropy needs at least 2 classes, got C={num_classes}")
    ce = F.cross_entropy(z, t, reduction="none")
    sq = _off_target_square_sum(z, t) / (num_classes - 1)
    _refuse_infinite_logits(sq, z, "squentropy_loss", "squares the off-target logits")
    return finish(ce + sq, reduction, like=input, shape=shape)


def rescaled_square_loss(input: torch.Tensor, target: torch.Tensor, *, k: float = 1.0, M: float = 1.0,
                         reduction: str = "mean") -> torch.Tensor:
    r"""Rescaled square loss of Hui & Belkin: :math:`\frac1C\big[k(z_y-M)^2 + \sum_{k'\ne y} z_{k'}^2\big]`.

    Square loss on the logits against the target :math:`M e_y`, with the
    true-class term up-weighted by :math:`k` (the paper uses
    :math:`k = 1, M = 1` for few classes and larger values for many).
    Non-finite logits (``-inf`` masks) are refused: the square would be infinite.

    Reference: Hui & Belkin (2021), *Evaluation of Neural Architectures Trained
    with Square Loss vs Cross-Entropy in Classification Tasks*.

    Example:
        >>> rescaled_square_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
        tensor(0.)
    """
    z, t, shape = _prepare(input, target)
    V.check_positive(k, "k")
    V.check_positive(M, "M")
    check_reduction(reduction)
    zy = z.gather(-1, t[:, None]).squeeze(-1)
    loss = (k * (zy - M).square() + _off_target_square_sum(z, t)) / z.shape[-1]
    _refuse_infinite_logits(loss, z, "rescaled_square_loss", "squares the logits")
    return finish(loss, reduction, like=input, shape=shape)


# --------------------------------------------------------------------------- LDR family and hinges


def _margins(z: torch.Tensor, t: torch.Tensor, margin: float | torch.Tensor) -> torch.Tensor:
    r""":math:`\delta_{k,y} + z_k - z_y` with :math:`\delta_{k,y} = c\,\mathbb 1[k\ne y]`.

    The difference :math:`z_k - z_y` is taken first (exact for ties, even at
    :math:`10^{30}`), then :math:`c` added; the target's entry is set to exactly 0.
    """
    zy = z.gather(-1, t[:, None])
    return ((z - zy) + margin).scatter(-1, t[:, None], 0.0)


def _softplus_mean(z: torch.Tensor) -> torch.Tensor:
    r""":math:`s_k = \mathrm{softplus}(z_k)/\mathrm{mean}_j\,\mathrm{softplus}(z_j)`, finite for any logits.

    Computed as written wherever the row's mean softplus is a normal number (every
    row of a trained network); a row whose softplus values all underflow (logits
    below about -88 in float32) would give 0/0 there, so it is computed in log space,
    :math:`s_k = C\,e^{\log\mathrm{sp}_k - \operatorname{logsumexp}_j\log\mathrm{sp}_j}`
    with :math:`\log\mathrm{softplus}(z) = z` below :math:`z = -30` (relative error
    below :math:`10^{-13}`). Both branches have finite gradients.
    """
    sp = F.softplus(z)
    mean = sp.mean(-1, keepdim=True)
    normal = mean >= torch.finfo(z.dtype).tiny
    direct = sp / torch.where(normal, mean, torch.ones_like(mean))
    low = z < -30.0
    log_sp = torch.where(low, z, torch.log(F.softplus(torch.where(low, torch.zeros_like(z), z))))
    stable = z.shape[-1] * torch.exp(log_sp - torch.logsumexp(log_sp, -1, keepdim=True))
    return torch.where(normal, direct, stable)


def ldr_kl_loss(input: torch.Tensor, target: torch.Tensor, *, lam: float = 1.0, margin: float = 0.0,
                logit_transform: str | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Label-distributionally-robust loss with a KL regulariser (LDR-KL).

    .. math::
        \ell^{\mathrm{LDR}}_\lambda(z, y) = \max_{p\in\Delta}\sum_k p_k(\delta_{k,y} + z_k - z_y)
            - \lambda\,\mathrm{KL}(p\,\|\,u)
        = \lambda\log\frac1C\sum_k e^{(\delta_{k,y} + z_k - z_y)/\lambda}

    with :math:`\delta_{k,y} = c\,\mathbb 1[k\ne y]` (``margin``). Special
    cases: :math:`c = 0` gives :math:`\lambda\,(\mathrm{CE}(z/\lambda, y) - \log C)`
    (temperature-scaled cross-entropy); :math:`\lambda\to0` gives the
    Crammer–Singer hinge :math:`\max(0, \max_{k\ne y}(c + z_k - z_y))`;
    :math:`\lambda\to\infty` gives the mean :math:`\frac1C\sum_k(\delta_{k,y}+z_k-z_y)`.
    The value lies between the mean and the max of the margins, so it can be negative.

    Args:
        lam: the temperature :math:`\lambda > 0`.
        margin: :math:`c` (finite).
        logit_transform: ``None`` (the loss of the logits themselves) or
            ``"softplus_mean"``, which first maps the scores to
            :math:`s_k = \mathrm{softplus}(z_k)/\mathrm{mean}_j\,\mathrm{softplus}(z_j)`
            and evaluates the loss at :math:`s`, as the authors' reference code
            (``LDRLoss_V1``) does. The :math:`s_k` are positive with mean 1, so
            :math:`s_k - s_y \in (-C, C)`: for :math:`c \ge 0` the loss lies in
            :math:`(1 - C, c + C)` however large the logits grow. It is a
            transformation of the input only; ``lam`` and ``margin`` keep their meaning,
            but the loss is no longer convex in the logits (the registered ``convex``
            property is that of ``logit_transform=None``).

    Reference: Zhu, Ying & Yang (2023), *Label Distributionally Robust Losses for
    Multi-class Classification: Consistency, Robustness and Adaptivity* (formula
    and transform checked against the authors' code, ``LDRLoss_V1``).

    Example:
        >>> ldr_kl_loss(torch.zeros(1, 4), torch.tensor([0]), lam=1.0, margin=0.0)
        tensor(0.)
    """
    z, t, shape = _prepare(input, target)
    V.check_positive(lam, "lam")
    V.check_finite(margin, "margin")
    check_reduction(reduction)
    if logit_transform == "softplus_mean":
        z = _softplus_mean(z)
    elif logit_transform is not None:
        raise ValueError(f"logit_transform must be None or 'softplus_mean', got {logit_transform!r}")
    u = _margins(z, t, margin) / lam
    loss = lam * (torch.logsumexp(u, -1) - math.log(z.shape[-1]))
    return finish(loss, reduction, like=input, shape=shape)


def crammer_singer_loss(input: torch.Tensor, target: torch.Tensor, *, margin: float = 1.0,
                        reduction: str = "mean") -> torch.Tensor:
    r"""Crammer–Singer multiclass hinge :math:`\max\big(0, \max_{k\ne y}(c + z_k - z_y)\big)`.

    The :math:`\lambda\to0` limit of :func:`ldr_kl_loss`; with :math:`c = 1` it
    is scikit-learn's multiclass ``hinge_loss``.

    Reference: Crammer & Singer (2001), *On the Algorithmic Implementation of Multiclass Kernel-based Vector Machines*.

    Example:
        >>> crammer_singer_loss(torch.tensor([[1.0, 0.5, -1.0]]), torch.tensor([0]))
        tensor(0.5000)
    """
    z, t, shape = _prepare(input, target)
    V.check_finite(margin, "margin")
    check_reduction(reduction)
    # max_{k != y} (c + z_k - z_y): the target's logit masked out, one reduction over the row
    worst = z.scatter(-1, t[:, None], -math.inf).amax(-1)
    zy = z.gather(-1, t[:, None]).squeeze(-1)
    loss = ((worst - zy) + margin).clamp_min(0.0) if z.shape[-1] > 1 else z.sum(-1) * 0.0
    return finish(loss, reduction, like=input, shape=shape)


def weston_watkins_loss(input: torch.Tensor, target: torch.Tensor, *, margin: float = 1.0,
                        reduction: str = "mean") -> torch.Tensor:
    r"""Weston–Watkins multiclass hinge :math:`\sum_{k\ne y}\max(0, c + z_k - z_y)`.

    :func:`torch.nn.functional.multi_margin_loss` (``p=1``) is this divided by :math:`C`.

    Reference: Weston & Watkins (1999), *Support Vector Machines for Multi-Class Pattern Recognition*.

    Example:
        >>> weston_watkins_loss(torch.tensor([[1.0, 0.5, 0.5]]), torch.tensor([0]))
        tensor(1.)
    """
    z, t, shape = _prepare(input, target)
    V.check_finite(margin, "margin")
    check_reduction(reduction)
    loss = _margins(z, t, margin).clamp_min(0.0).sum(-1)  # the target's margin is exactly 0
    return finish(loss, reduction, like=input, shape=shape)


# --------------------------------------------------------------------------- logit adjustment


def _log_prior(class_prior: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    V.check_floating(class_prior, "class_prior")
    V.check_same_device(input=z, class_prior=class_prior)
    if tuple(class_prior.shape) != (z.shape[-1],):
        raise ValueError(f"class_prior must have shape (C,) = ({z.shape[-1]},), got {tuple(class_prior.shape)}")
    V.check_in_range(class_prior, "class_prior", 0.0, math.inf,
                     what="be positive and finite (class frequencies or counts)")
    return torch.log(class_prior.to(z.dtype))


def logit_adjusted_cross_entropy(input: torch.Tensor, target: torch.Tensor, *, class_prior: torch.Tensor,
                                 tau: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    r"""Logit-adjusted cross-entropy :math:`-\log\frac{e^{z_y + \tau\log\pi_y}}{\sum_k e^{z_k + \tau\log\pi_k}}`.

    Adding :math:`\tau\log\pi` during training makes the learnt logits
    estimate :math:`\log p(y\mid x) - \tau\log\pi_y` (up to a constant), so
    :math:`\arg\max_k z_k` is Fisher-consistent for the *balanced* error when
    :math:`\tau = 1`. ``class_prior`` may be unnormalised counts (a constant
    shift of all logits does not change the loss), positive and finite. :math:`\tau = 0` is cross-entropy.

    Reference: Menon et al. (2021), *Long-tail Learning via Logit Adjustment*.

    Example:
        >>> logit_adjusted_cross_entropy(torch.zeros(1, 2), torch.tensor([0]), class_prior=torch.tensor([0.5, 0.5]))
        tensor(0.6931)
    """
    z, t, shape = _prepare(input, target)
    V.check_finite(tau, "tau")
    check_reduction(reduction)
    log_prior = _log_prior(class_prior, z)
    # Shift by the target's logit first (the loss does not change): the logits that matter, those
    # near z_y, become exact small differences, so z + τ log π keeps the digits of τ log π next
    # to logits of 1e4 (or ties of 1e30) in float32.
    zy = z.detach().gather(-1, t[:, None])
    adj = (z - torch.where(torch.isfinite(zy), zy, torch.zeros_like(zy))).add_(tau * log_prior)
    loss = -F.log_softmax(adj, -1).gather(-1, t[:, None]).squeeze(-1)
    return finish(loss, reduction, like=input, shape=shape)


def posthoc_logit_adjust(input: torch.Tensor, class_prior: torch.Tensor, *, tau: float = 1.0) -> torch.Tensor:
    r"""Post-hoc logit adjustment: return :math:`z_k - \tau\log\pi_k` (take its argmax to predict).

    A model trained with plain cross-entropy estimates :math:`\log p(y\mid x)`
    up to a constant; subtracting :math:`\log\pi_y` turns its argmax into the
    Bayes classifier for the balanced error.

    Example:
        >>> posthoc_logit_adjust(torch.zeros(1, 2), torch.tensor([0.9, 0.1])).argmax(-1)
        tensor([1])
    """
    V.check_floating(input, "input")
    V.check_finite(tau, "tau")
    if input.dim() < 1:
        raise ValueError("input must have a class dimension")
    z = input.movedim(1, -1) if input.dim() > 1 else input
    out = z - tau * _log_prior(class_prior, z)
    return out.movedim(-1, 1) if input.dim() > 1 else out


# --------------------------------------------------------------------------- module twins

CrossEntropyLoss = module_twin(cross_entropy, "CrossEntropyLoss")
FocalLoss = module_twin(focal_loss, "FocalLoss")
SigmoidFocalLoss = module_twin(sigmoid_focal_loss, "SigmoidFocalLoss")
Poly1Loss = module_twin(poly1_loss, "Poly1Loss")
PolyLoss = module_twin(poly_loss, "PolyLoss")
Poly1FocalLoss = module_twin(poly1_focal_loss, "Poly1FocalLoss")
SquentropyLoss = module_twin(squentropy_loss, "SquentropyLoss")
RescaledSquareLoss = module_twin(rescaled_square_loss, "RescaledSquareLoss")
LDRKLLoss = module_twin(ldr_kl_loss, "LDRKLLoss")
CrammerSingerLoss = module_twin(crammer_singer_loss, "CrammerSingerLoss")
WestonWatkinsLoss = module_twin(weston_watkins_loss, "WestonWatkinsLoss")
LogitAdjustedCrossEntropyLoss = module_twin(logit_adjusted_cross_entropy, "LogitAdjustedCrossEntropyLoss")


# --------------------------------------------------------------------------- registry records
# References are float64 numpy/scipy oracles written from the formulas (or torch
# built-ins where they exist), imported lazily.

_POS = (0.0, math.inf)
_REAL = (-math.inf, math.inf)










_LABEL_ERR = ErrorCase("label out of range", _bad_label, ValueError, r"target class indices must lie in \[0, 3\]")
_DTYPE_ERR = ErrorCase("float target for an index-only loss",
                       lambda s: Sample((s.args[0], s.args[1].double(), *s.args[2:]), s.kwargs, s.grad_args),
                       TypeError, r"takes class-index targets")


def _np_log_softmax(z):
    from scipy.special import log_softmax
    return log_softmax(z, axis=1)


def _np_pick(v, y):
    import numpy as np
    return v[np.arange(len(y)), y]


def _ref_ce(input, target, label_smoothing=0.0, **_):
    import numpy as np
    z, lp = _np(input), _np_log_softmax(_np(input))
    c = z.shape[1]
    q = _np(target) if target.is_floating_point() else np.eye(c)[target.numpy()]
    q = (1 - label_smoothing) * q + label_smoothing / c
    return torch.from_numpy(-(q * lp).sum(1))


def _ref_focal(input, target, gamma=2.0, alpha=None):
    import numpy as np
    lp = _np_log_softmax(_np(input))
    p = np.exp(lp)
    a = 1.0 if alpha is None else (_np(alpha) if isinstance(alpha, torch.Tensor) else alpha)
    terms = -a * (1 - p) ** gamma * lp
    if target.is_floating_point():
        return torch.from_numpy((terms * _np(target)).sum(1))
    return torch.from_numpy(_np_pick(terms, target.numpy()))


def _ref_sigmoid_focal(input, target, gamma=2.0, alpha=0.25):
    import numpy as np
    x, t = _np(input), _np(target)
    p = 1 / (1 + np.exp(-x))
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    pt = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - pt) ** gamma
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return torch.from_numpy(loss)


def _ref_poly(input, target, epsilons=(), epsilon=None):
    import numpy as np
    eps = (epsilon,) if epsilon is not None else tuple(epsilons)
    lp = _np_log_softmax(_np(input))
    if target.is_floating_point():
        q = _np(target)
        ce, pt = -(q * lp).sum(1), (q * np.exp(lp)).sum(1)
    else:
        ce, pt = -_np_pick(lp, target.numpy()), np.exp(_np_pick(lp, target.numpy()))
    return torch.from_numpy(ce + sum(e * (1 - pt) ** j for j, e in enumerate(eps, start=1)))


def _ref_poly1_focal(input, target, epsilon=1.0, gamma=2.0, alpha=None):
    import numpy as np
    pt = np.exp(_np_pick(_np_log_softmax(_np(input)), target.numpy()))
    return _ref_focal(input, target, gamma=gamma, alpha=alpha) + torch.from_numpy(epsilon * (1 - pt) ** (gamma + 1))


def _ref_squentropy(input, target):
    import numpy as np
    z, y = _np(input), target.numpy()
    off = 1 - np.eye(z.shape[1])[y]
    return torch.from_numpy(-_np_pick(_np_log_softmax(z), y) + (off * z ** 2).sum(1) / (z.shape[1] - 1))


def _ref_rescaled_square(input, target, k=1.0, M=1.0):
    import numpy as np
    z, y = _np(input), target.numpy()
    off = 1 - np.eye(z.shape[1])[y]
    return torch.from_numpy((k * (_np_pick(z, y) - M) ** 2 + (off * z ** 2).sum(1)) / z.shape[1])


def _np_margins(z, y, c):
    import numpy as np
    off = 1 - np.eye(z.shape[1])[y]
    return (z - _np_pick(z, y)[:, None]) + c * off, off  # difference first: exact for ties


def _ref_ldr_kl(input, target, lam=1.0, margin=0.0, logit_transform=None):
    import numpy as np
    from scipy.special import logsumexp
    z = _np(input)
    if logit_transform == "softplus_mean":
        sp = np.logaddexp(0, z)
        z = sp / sp.mean(1, keepdims=True)
    m, _ = _np_margins(z, target.numpy(), margin)
    return torch.from_numpy(lam * (logsumexp(m / lam, axis=1) - np.log(z.shape[1])))


def _ref_crammer_singer(input, target, margin=1.0):
    import numpy as np
    m, off = _np_margins(_np(input), target.numpy(), margin)
    return torch.from_numpy(np.maximum(0, np.where(off > 0, m, -np.inf).max(1)))


def _ref_weston_watkins(input, target, margin=1.0):
    import numpy as np
    m, off = _np_margins(_np(input), target.numpy(), margin)
    return torch.from_numpy((off * np.maximum(0, m)).sum(1))


def _ref_la_ce(input, target, class_prior, tau=1.0):
    import numpy as np
    z = _np(input)
    z = (z - z.max(1, keepdims=True)) + tau * np.log(_np(class_prior))  # shifted first: exact for huge ties
    return torch.from_numpy(-_np_pick(_np_log_softmax(z), target.numpy()))


# --------------------------------------------------------------------------- equivalents
# The same quantity computed elsewhere (a torch built-in or a peer library): the cross-checks
# compare with it and the benchmarks time it. fn(sample, reduction) -> loss, or None.


def _rows(per_row, reduction):
    return per_row if reduction == "none" else per_row.mean()


def _eq_cross_entropy(s, reduction):
    z, y = s.args[:2]
    return F.cross_entropy(z, y, weight=s.kwargs.get("weight"), ignore_index=s.kwargs.get("ignore_index", -100),
                           label_smoothing=s.kwargs.get("label_smoothing", 0.0), reduction=reduction)


def _eq_logit_adjusted(s, reduction):
    z, y = s.args[:2]
    adj = s.kwargs.get("tau", 1.0) * torch.log(s.kwargs["class_prior"].to(z.dtype))
    return F.cross_entropy(z + adj, y, reduction=reduction)


def _eq_weston_watkins(s, reduction):
    z, y = s.args[:2]
    out = F.multi_margin_loss(z, y, p=1, margin=s.kwargs.get("margin", 1.0), reduction=reduction)
    return out * z.shape[-1]  # torch divides the sum over classes by C


def _eq_focal(s, reduction):
    from kornia.losses import focal_loss as kornia_focal_loss
    z, y = s.args[:2]
    if y.is_floating_point() or z.dim() != 2:
        return None
    alpha = s.kwargs.get("alpha")
    # kornia's scalar alpha weighs class 0 by 1 - alpha (a background convention): ours multiplies every
    # class, so a scalar is applied outside; a per-class tensor is kornia's ``weight``.
    per_class = alpha if isinstance(alpha, torch.Tensor) and alpha.dim() == 1 else None
    scale = 1.0 if alpha is None or per_class is not None else alpha
    out = kornia_focal_loss(z, y, alpha=None, gamma=s.kwargs.get("gamma", 2.0), reduction="none", weight=per_class)
    return _rows(out.sum(1) * scale, reduction)


def _eq_sigmoid_focal(s, reduction):
    from kornia.losses import binary_focal_loss_with_logits
    x, t = s.args[:2]
    if not bool(((t == 0) | (t == 1)).all()) or s.kwargs.get("alpha", 0.25) is None:
        return None  # kornia's formula agrees on hard labels with an alpha
    return binary_focal_loss_with_logits(x, t, alpha=s.kwargs.get("alpha", 0.25), gamma=s.kwargs.get("gamma", 2.0),
                                         reduction=reduction)


def _sigmoid_sample(gen, dtype, device):
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64) * 2
    t = (torch.rand(5, 3, generator=gen, dtype=torch.float64) > 0.5).to(torch.float64)
    return Sample((x.to(dtype=dtype, device=device), t.to(dtype=dtype, device=device)), {"gamma": 1.5, "alpha": 0.4})


def _sigmoid_extreme(gen, dtype, device):
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], dtype=dtype, device=device)
    t = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=dtype, device=device)
    return Sample((x, t), {"gamma": 0.5, "alpha": 0.25})


def _la_sample(**kwargs):
    def make(gen, dtype, device):
        s = _logits_sample(**kwargs)(gen, dtype, device)
        prior = torch.tensor([0.6, 0.25, 0.1, 0.05], dtype=dtype, device=device)
        return Sample(s.args, {**s.kwargs, "class_prior": prior})
    return make


def _la_extreme(gen, dtype, device):
    s = _extreme_logits()(gen, dtype, device)
    return Sample(s.args, {"class_prior": torch.tensor([0.7, 0.2, 0.1], dtype=dtype, device=device), "tau": 1.0})


_NEG_GAMMA = ErrorCase("negative gamma", _bad_kwarg(gamma=-1.0), ValueError, r"gamma must be a finite number >= 0")
_NEG_ALPHA = ErrorCase("negative per-class alpha", _bad_kwarg(alpha=torch.tensor([0.5, -0.1, 0.2, 0.3])), ValueError,
                       r"every entry of alpha must be a finite number >= 0")
_ALPHA_SHAPE = ErrorCase("per-class alpha of the wrong length", _bad_kwarg(alpha=torch.ones(3)), ValueError,
                         r"alpha must be a number, a 0-d tensor or a tensor of one weight per class")


def _with_inf_logit(s: Sample) -> Sample:
    z = s.args[0].clone()
    z[:, 0] = -math.inf
    return Sample((z, *s.args[1:]), s.kwargs, s.grad_args)


_INF_LOGIT = ErrorCase("masked (-inf) logit", _with_inf_logit, ValueError,
                       r"non-finite logit \(-inf for a masked class")

register(cross_entropy, module=CrossEntropyLoss, second_order=True,
         section="sec-classification-ce", input_kind="logits",
         output_range=_POS, properties={"convex", "classification-calibrated", "nonnegative"}, gradient="exact",
         reference=_ref_ce, reference_name="float64 scipy log_softmax, smoothed one-hot",
         sample=_logits_sample(label_smoothing=0.1), extreme=_extreme_logits(label_smoothing=0.1),
         errors=(_LABEL_ERR,
                 ErrorCase("smoothing outside [0, 1]", _bad_kwarg(label_smoothing=1.5), ValueError,
                           r"label_smoothing must lie in \[0, 1\]")),
         equivalent=Equivalent("builtin", "F.cross_entropy", _eq_cross_entropy),
         references=("szegedy2016rethinking", "muller2019when"),
         formula=r"-\sum_k q_k\log p_k,\ q=(1-\epsilon)e_y+\epsilon/C",
         summary="softmax cross-entropy with label smoothing and class weights")
register(focal_loss, module=FocalLoss, second_order=True,
         section="sec-classification-focal", input_kind="logits",
         output_range=_POS, properties={"classification-calibrated", "nonnegative"}, gradient="exact", reference=_ref_focal,
         reference_name="float64 numpy -(1-p)^γ log p", sample=_logits_sample(gamma=0.5, alpha=0.25),
         extreme=_extreme_logits(gamma=0.5), errors=(_LABEL_ERR, _NEG_GAMMA, _NEG_ALPHA, _ALPHA_SHAPE),
         equivalent=Equivalent("peer", "kornia.losses.focal_loss", _eq_focal, requires="kornia"),
         references=("lin2017focal",),
         formula=r"-\alpha_y(1-p_y)^\gamma\log p_y", summary="down-weights well-classified samples")
register(sigmoid_focal_loss, module=SigmoidFocalLoss, second_order=True,
         section="sec-classification-focal",
         input_kind="binary-logits", output_range=_POS, properties={"nonnegative"}, gradient="exact",
         reference=_ref_sigmoid_focal, reference_name="float64 numpy (torchvision formula)", sample=_sigmoid_sample,
         extreme=_sigmoid_extreme, errors=(_NEG_GAMMA,
                                           ErrorCase("alpha > 1", _bad_kwarg(alpha=2.0), ValueError,
                                                     r"alpha must lie in \[0, 1\]")),
         equivalent=Equivalent("peer", "kornia.losses.binary_focal_loss_with_logits", _eq_sigmoid_focal,
                               requires="kornia"),
         references=("lin2017focal",),
         formula=r"\alpha_t(1-p_t)^\gamma\,\mathrm{BCE}", summary="per-logit binary focal loss (RetinaNet)")
register(poly1_loss, module=Poly1Loss, second_order=True,
         section="sec-classification-poly", input_kind="logits",
         output_range=_POS, properties={"classification-calibrated", "nonnegative"}, gradient="exact", reference=_ref_poly,
         reference_name="float64 numpy CE + ε(1-p_t)", sample=_logits_sample(epsilon=2.0),
         extreme=_extreme_logits(epsilon=1.0), errors=(_LABEL_ERR,), references=("leng2022polyloss",),
         formula=r"-\log p_t+\epsilon(1-p_t)", summary="CE with a perturbed leading polynomial coefficient")
register(poly_loss, module=PolyLoss, second_order=True,
         section="sec-classification-poly", input_kind="logits",
         output_range=_POS, properties={"nonnegative"}, gradient="exact", reference=_ref_poly,
         reference_name="float64 numpy CE + Σ ε_j(1-p_t)^j", sample=_logits_sample(epsilons=(-1.0, -0.5, 0.3)),
         extreme=_extreme_logits(epsilons=(-1.0, -0.5)), errors=(_LABEL_ERR,), references=("leng2022polyloss",),
         formula=r"-\log p_t+\sum_{j\le N}\epsilon_j(1-p_t)^j", summary="Poly-N: perturb the first N Taylor coefficients of CE")
register(poly1_focal_loss, module=Poly1FocalLoss, second_order=True,
         section="sec-classification-poly", input_kind="logits",
         output_range=_POS, properties={"nonnegative"}, gradient="exact", reference=_ref_poly1_focal,
         reference_name="float64 numpy focal + ε(1-p_t)^(γ+1)", sample=_logits_sample(epsilon=1.5, gamma=0.5),
         extreme=_extreme_logits(epsilon=1.0, gamma=0.5), errors=(_LABEL_ERR, _NEG_GAMMA, _DTYPE_ERR, _NEG_ALPHA),
         references=("leng2022polyloss", "lin2017focal"),
         formula=r"-(1-p_t)^\gamma\log p_t+\epsilon(1-p_t)^{\gamma+1}", summary="Poly-1 applied to the focal series")
register(squentropy_loss, module=SquentropyLoss, second_order=True,
         section="sec-classification-square", input_kind="logits",
         output_range=_POS, properties={"convex", "nonnegative"}, gradient="exact", reference=_ref_squentropy,
         reference_name="float64 numpy CE + mean off-target z²", sample=_logits_sample(),
         extreme=_extreme_logits(), errors=(_LABEL_ERR, _DTYPE_ERR, _INF_LOGIT), references=("hui2023cut",),
         formula=r"-\log p_y+\frac1{C-1}\sum_{k\ne y}z_k^2", summary="CE plus the average squared wrong-class logit")
register(rescaled_square_loss, module=RescaledSquareLoss, second_order=True,
         section="sec-classification-square",
         input_kind="logits", output_range=_POS, properties={"convex", "nonnegative"}, gradient="exact",
         reference=_ref_rescaled_square, reference_name="float64 numpy rescaled square loss",
         sample=_logits_sample(k=2.0, M=3.0), extreme=_extreme_logits(k=1.0, M=1.0),
         errors=(_LABEL_ERR, _INF_LOGIT,
                 ErrorCase("k <= 0", _bad_kwarg(k=0.0), ValueError, r"k must be a finite number > 0")),
         references=("hui2021evaluation",),
         formula=r"\frac1C[k(z_y-M)^2+\sum_{k'\ne y}z_{k'}^2]", summary="square loss on the logits (Hui & Belkin)")
register(ldr_kl_loss, module=LDRKLLoss, second_order=True,
         section="sec-classification-ldr", input_kind="logits",
         output_range=_REAL, properties={"convex"}, gradient="exact", reference=_ref_ldr_kl,
         reference_name="float64 scipy λ·logmeanexp(margins/λ)", sample=_logits_sample(lam=0.7, margin=1.0),
         extreme=_extreme_logits(lam=0.1, margin=1.0),
         errors=(_LABEL_ERR, ErrorCase("lam <= 0", _bad_kwarg(lam=0.0), ValueError, r"lam must be a finite number > 0"),
                 ErrorCase("unknown transform", _bad_kwarg(logit_transform="relu"), ValueError,
                           r"logit_transform must be None or 'softplus_mean'")),
         references=("zhu2023label",),
         formula=r"\lambda\log\frac1C\sum_k e^{(\delta_{k,y}+z_k-z_y)/\lambda}",
         summary="DRO over label distributions; temperature CE ↔ Crammer–Singer hinge")
register(crammer_singer_loss, module=CrammerSingerLoss, second_order=True,
         section="sec-classification-ldr",
         input_kind="logits", output_range=_POS, properties={"convex", "nonnegative"}, gradient="subgradient",
         reference=_ref_crammer_singer, reference_name="float64 numpy max(0, max_{k≠y}(c+z_k-z_y))",
         sample=_logits_sample(margin=0.7), extreme=_extreme_logits(margin=1.0), errors=(_LABEL_ERR, _DTYPE_ERR),
         references=("crammer2001algorithmic",),
         formula=r"\max(0,\max_{k\ne y}(c+z_k-z_y))", summary="multiclass SVM hinge (Crammer–Singer)")
register(weston_watkins_loss, module=WestonWatkinsLoss, second_order=True,
         section="sec-classification-ldr",
         input_kind="logits", output_range=_POS, properties={"convex", "nonnegative"}, gradient="subgradient",
         reference=_ref_weston_watkins, reference_name="float64 numpy Σ_{k≠y} max(0, c+z_k-z_y)",
         sample=_logits_sample(margin=0.7), extreme=_extreme_logits(margin=1.0), errors=(_LABEL_ERR, _DTYPE_ERR),
         equivalent=Equivalent("builtin", "C·F.multi_margin_loss(p=1)", _eq_weston_watkins),
         references=("weston1999support",),
         formula=r"\sum_{k\ne y}\max(0,c+z_k-z_y)", summary="multiclass SVM hinge (Weston–Watkins)")
register(logit_adjusted_cross_entropy, module=LogitAdjustedCrossEntropyLoss, second_order=True,
         section="sec-classification-la", input_kind="logits", output_range=_POS, properties={"convex", "nonnegative"},
         gradient="exact", reference=_ref_la_ce, reference_name="float64 scipy CE of z + τ log π",
         sample=_la_sample(tau=0.8), extreme=_la_extreme,
         errors=(_LABEL_ERR,
                 ErrorCase("non-positive prior", lambda s: Sample(s.args, {**s.kwargs, "class_prior": -s.kwargs["class_prior"]}),
                           ValueError, r"class_prior must be positive"),
                 ErrorCase("prior of the wrong length",
                           lambda s: Sample(s.args, {**s.kwargs, "class_prior": s.kwargs["class_prior"][:2]}),
                           ValueError, r"class_prior must have shape \(C,\)"),
                 ErrorCase("NaN prior",
                           lambda s: Sample(s.args, {**s.kwargs, "class_prior": s.kwargs["class_prior"] * math.nan}),
                           ValueError, r"class_prior must be positive")),
         equivalent=Equivalent("builtin", "F.cross_entropy(z + τ log π)", _eq_logit_adjusted),
         references=("menon2021longtail",),
         formula=r"-\log\mathrm{softmax}(z+\tau\log\pi)_y", summary="CE with prior-shifted logits; balanced-error consistent")


# --------------------------------------------------------------------------- large vocabularies
# Cross-entropy of a linear layer over a large vocabulary. Written naively,
# F.cross_entropy(hidden @ weight.T, target) materialises the (N, V) logits, their
# log-softmax and their gradient: 1 GiB per copy in float32 at N = 8192, V = 32768.
# linear_cross_entropy keeps only the per-row log-partition log Z_i in forward and
# recomputes each (chunk, V) block of logits in backward: one extra matrix product
# in exchange for O(N·V) memory.

# One block of logits holds about this many elements (64 MiB in float32).
_CHUNK_ELEMENTS = 1 << 24


def default_chunk_size(n: int, vocab: int) -> int:
    """Rows per block: about ``2**24`` logits per block, at least 1, at most ``n``."""
    return max(1, min(max(n, 1), _CHUNK_ELEMENTS // max(vocab, 1)))


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in HALF_DTYPES else dtype


def _block_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    h, w = h.to(dtype), weight.to(dtype)
    if bias is None:
        return h @ w.T
    return torch.addmm(bias.to(dtype), h, w.T)


class _LinearCrossEntropy(torch.autograd.Function):
    """Row-chunked forward; backward recomputes each block of logits (nothing ``(N, V)`` is saved).

    The backward pass is itself differentiable: under ``create_graph=True`` (a
    gradient penalty, a Hessian-vector product) it is computed with autograd-tracked
    operations, so second derivatives are exact; otherwise it runs in place, block by block.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, target, ignore_index, label_smoothing, chunk):  # type: ignore[override]
        n = hidden.shape[0]
        cdt = _compute_dtype(hidden.dtype)
        valid = target != ignore_index
        safe = torch.where(valid, target, torch.zeros_like(target))
        loss = torch.empty(n, dtype=cdt, device=hidden.device)
        lse = torch.empty(n, dtype=cdt, device=hidden.device)
        eps = label_smoothing
        smoothing = isinstance(eps, torch.Tensor) or eps != 0
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            z = _block_logits(hidden[start:stop], weight, bias, cdt)
            lse_c = torch.logsumexp(z, dim=1)
            z_y = z.gather(1, safe[start:stop, None]).squeeze(1)
            row = lse_c - (1.0 - eps) * z_y
            if smoothing:
                row = row - eps * z.mean(dim=1)
            lse[start:stop] = lse_c
            loss[start:stop] = row
        loss = torch.where(valid, loss, torch.zeros_like(loss))
        ctx.save_for_backward(hidden, weight, bias, safe, valid, lse)
        ctx.eps, ctx.chunk, ctx.has_bias = eps, chunk, bias is not None
        return loss

    @staticmethod
    def backward(ctx, grad_loss):  # type: ignore[override]
        hidden, weight, bias, safe, valid, lse = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and bias is not None
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            grads = _linear_ce_grads_tracked(hidden, weight, bias, safe, valid, grad_loss, ctx.eps, ctx.chunk,
                                             (need_h, need_w, need_b))
            return (*grads, None, None, None, None)
        n, vocab = hidden.shape[0], weight.shape[0]
        cdt = lse.dtype
        eps, chunk = ctx.eps, ctx.chunk
        smoothing = isinstance(eps, torch.Tensor) or eps != 0
        # Per-row upstream gradient; ignored rows get zero.
        g = torch.where(valid, grad_loss.to(cdt), torch.zeros((), dtype=cdt, device=lse.device))
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=cdt, device=weight.device) if need_w else None
        grad_b = torch.zeros(vocab, dtype=cdt, device=weight.device) if need_b else None
        w = weight.to(cdt)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            h = hidden[start:stop].to(cdt)
            # dℓ/dz = softmax(z) - (1-ε) e_y - ε/V, scaled by the upstream gradient of the row.
            dz = _block_logits(h, w, bias, cdt)
            dz.sub_(lse[start:stop, None]).exp_()
            dz.scatter_add_(1, safe[start:stop, None],
                            torch.empty((stop - start, 1), dtype=cdt, device=dz.device).fill_(eps - 1.0))
            if smoothing:
                dz.sub_(eps / vocab)
            dz.mul_(g[start:stop, None])
            if grad_h is not None:
                grad_h[start:stop] = dz @ w
            if grad_w is not None:
                grad_w.addmm_(dz.T, h)
            if grad_b is not None:
                grad_b.add_(dz.sum(dim=0))
        grad_w = None if grad_w is None else grad_w.to(weight.dtype)
        grad_b = None if grad_b is None else grad_b.to(bias.dtype)
        return grad_h, grad_w, grad_b, None, None, None, None


def _linear_ce_grads_tracked(hidden, weight, bias, safe, valid, grad_loss, eps, chunk, needs):
    """The gradients of :class:`_LinearCrossEntropy` with autograd-tracked operations (for double backward).

    Each block's logits are recomputed and :math:`\\mathrm{softmax}(z) - q` built out of place, so the
    graph of the gradient reaches ``hidden``, ``weight``, ``bias`` and the upstream gradient. The graph
    keeps the ``(chunk, V)`` blocks: memory is that of the naive loss, only while the graph lives.
    """
    need_h, need_w, need_b = needs
    n, vocab = hidden.shape[0], weight.shape[0]
    cdt = _compute_dtype(hidden.dtype)
    g = torch.where(valid, grad_loss.to(cdt), torch.zeros((), dtype=cdt, device=grad_loss.device))
    w = weight.to(cdt)
    parts, grad_w, grad_b = [], None, None
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        h = hidden[start:stop].to(cdt)
        z = _block_logits(h, w, bias, cdt)
        onehot = torch.zeros_like(z).scatter(1, safe[start:stop, None], 1.0)
        dz = (torch.softmax(z, dim=1) - (1.0 - eps) * onehot - eps / vocab) * g[start:stop, None]
        if need_h:
            parts.append(dz @ w)
        if need_w:
            grad_w = dz.T @ h if grad_w is None else grad_w + dz.T @ h
        if need_b:
            grad_b = dz.sum(dim=0) if grad_b is None else grad_b + dz.sum(dim=0)
    grad_h = torch.cat(parts).to(hidden.dtype) if need_h else None
    grad_w = None if grad_w is None else grad_w.to(weight.dtype)
    grad_b = None if grad_b is None else grad_b.to(bias.dtype)
    return grad_h, grad_w, grad_b


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, *,
                         bias: torch.Tensor | None = None, ignore_index: int = -100, label_smoothing: float = 0.0,
                         reduction: str = "mean", chunk_size: int | None = None) -> torch.Tensor:
    r"""Cross-entropy of the logits ``hidden @ weight.T + bias``, without materialising them.

    .. math::
        \ell_i = -\sum_k q_{ik}\log\mathrm{softmax}(W h_i + b)_k, \qquad
        q_i = (1-\epsilon)\,e_{y_i} + \epsilon/V

    Equal to ``F.cross_entropy(hidden @ weight.T + bias, target, ...)`` (same
    ``ignore_index`` and ``label_smoothing`` semantics, the mean is over the rows
    that are not ignored), but computed in blocks of ``chunk_size`` rows: the
    forward pass keeps one ``(chunk_size, V)`` block of logits at a time and saves
    only the per-row log-partition :math:`\log Z_i`; the backward pass recomputes
    each block from ``hidden`` and ``weight`` and accumulates
    :math:`\partial\ell/\partial z = \mathrm{softmax}(z) - q` into the gradients of
    ``hidden``, ``weight`` and ``bias``. Peak extra memory is
    ``O(chunk_size · V + V · D)`` instead of ``O(N · V)``; the price is one extra
    ``(N, D) × (D, V)`` product in the backward pass. The result does not depend
    on ``chunk_size`` (up to float rounding). Half-precision inputs are computed
    in float32 block by block. An all-ignored batch gives 0 for ``"mean"``
    (lossbook's empty-batch convention; torch gives ``nan``).

    Second derivatives are exact: under ``create_graph=True`` (gradient penalties,
    Hessian-vector products) the backward pass is built from differentiable
    operations, which keep each block of logits alive while that graph exists
    (the memory of the naive loss, for that step only).

    Args:
        hidden: hidden states ``(..., D)``.
        weight: output projection ``(V, D)`` (e.g. the tied embedding matrix).
        target: class indices ``(...)`` (the leading shape of ``hidden``), dtype int64.
        bias: optional ``(V,)``; ``-inf`` entries mask a class (not with ``label_smoothing > 0``),
            NaN and ``+inf`` are refused.
        ignore_index: rows whose target equals it contribute nothing.
        label_smoothing: :math:`\epsilon\in[0, 1]` (a number or a 0-d tensor).
        reduction: ``"none"`` (shape of ``target``) | ``"mean"`` | ``"sum"``.
        chunk_size: rows per block; default about :math:`2^{24}/V` (64 MiB of float32 logits).

    Reference: the chunked, recompute-in-backward scheme of memory-efficient
    large-vocabulary losses, e.g. Wijmans et al. (2025), *Cut Your Losses in
    Large-Vocabulary Language Models* (which also chunks the vocabulary and
    fuses the blocks into one kernel); this is the row-chunked PyTorch version.

    Example:
        >>> h = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> w = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
        >>> linear_cross_entropy(h, w, torch.tensor([0, 1]))
        tensor(0.6691)
    """
    V.check_floating(hidden, "hidden")
    V.check_floating(weight, "weight")
    V.check_tensor(target, "target")
    V.check_same_device(hidden=hidden, weight=weight, target=target, bias=bias)
    check_reduction(reduction)
    _check_ignore_index(ignore_index)
    if weight.dim() != 2:
        raise ValueError(f"weight must have shape (V, D), got {tuple(weight.shape)}")
    if hidden.dim() < 1 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"hidden must have shape (..., D) with D = weight.shape[1] = {weight.shape[1]}, got {tuple(hidden.shape)}"
        )
    if hidden.dtype != weight.dtype:
        raise TypeError(f"hidden and weight must have the same dtype, got {hidden.dtype} and {weight.dtype}; "
                        "cast one of them")
    if tuple(target.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(f"target must have the leading shape of hidden {tuple(hidden.shape[:-1])}, "
                         f"got {tuple(target.shape)}")
    vocab = weight.shape[0]
    if vocab == 0:
        raise ValueError(f"weight must have at least one row (V >= 1), got shape {tuple(weight.shape)}")
    V.check_class_target(target, vocab, ignore_index)
    V.check_in_range(label_smoothing, "label_smoothing", 0.0, 1.0, low_closed=True, high_closed=True)
    if bias is not None:
        V.check_floating(bias, "bias")
        if tuple(bias.shape) != (vocab,):
            raise ValueError(f"bias must have shape (V,) = ({vocab},), got {tuple(bias.shape)}")
        V.check_in_range(bias, "bias", -math.inf, math.inf, low_closed=True,
                         what="be finite or -inf (a masked class), not NaN or +inf")
        if not V.skip_value_checks(bias, label_smoothing) and bool(torch.isneginf(bias).any()):
            if bool(torch.isneginf(bias).all()):
                raise ValueError("bias masks every class with -inf: at least one class must stay finite")
            if bool(label_smoothing != 0):
                raise ValueError("bias holds a -inf (masked) class, but label_smoothing > 0 gives every class "
                                 "mass, so the loss would be infinite; use label_smoothing=0 with a masked bias")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")

    h2 = hidden.reshape(-1, hidden.shape[-1])
    t = target.reshape(-1)
    n = h2.shape[0]
    chunk = chunk_size if chunk_size is not None else default_chunk_size(n, vocab)
    if n == 0:
        out = hidden.sum() * 0.0 + weight.sum() * 0.0
        return out.new_zeros(target.shape) if reduction == "none" else out
    rows = _LinearCrossEntropy.apply(h2, weight, bias, t, ignore_index, label_smoothing, chunk)
    if reduction == "none":
        return rows.reshape(target.shape).to(hidden.dtype)
    total = rows.sum()
    if reduction == "sum":
        return total.to(hidden.dtype)
    count = (t != ignore_index).sum()
    return (total / count.clamp(min=1)).to(hidden.dtype)


LinearCrossEntropyLoss = module_twin(linear_cross_entropy, "LinearCrossEntropyLoss")


# --------------------------------------------------------------------------- registration


def _ref_linear_ce(hidden, weight, target, *, bias=None, ignore_index=-100, label_smoothing=0.0, chunk_size=None):
    """The naive float64 version: materialise the logits, then torch's cross-entropy."""
    h, w = hidden.detach().double(), weight.detach().double()
    z = h @ w.T + (0.0 if bias is None else bias.detach().double())
    return F.cross_entropy(z, target, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction="none")


def _eq_linear_ce(s, reduction):
    h, w, y = s.args[:3]
    z = h @ w.T
    if s.kwargs.get("bias") is not None:
        z = z + s.kwargs["bias"]
    return F.cross_entropy(z, y, ignore_index=s.kwargs.get("ignore_index", -100),
                           label_smoothing=s.kwargs.get("label_smoothing", 0.0), reduction=reduction)


def _sample(**kwargs):
    def sample(g: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        n, d, v = 6, 5, 7
        h = torch.randn(n, d, generator=g, dtype=torch.float64)
        w = torch.randn(v, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        b = torch.randn(v, generator=g, dtype=torch.float64) * 0.1
        y = torch.randint(0, v, (n,), generator=g)
        kw = dict(kwargs)
        kw["bias"] = b.to(dtype).to(device)
        return Sample((h.to(dtype).to(device), w.to(dtype).to(device), y.to(device)), kw, grad_args=(0, 1))
    return sample


def _extreme(g: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
    h = torch.tensor([[300.0, -300.0], [-300.0, 300.0], [0.0, 0.0]], dtype=dtype, device=device)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], dtype=dtype, device=device)
    return Sample((h, w, torch.tensor([1, 0, 2], device=device)), {"label_smoothing": 0.1}, grad_args=(0, 1))


register(linear_cross_entropy, module=LinearCrossEntropyLoss, second_order=True,
         section="sec-classification-ce", input_kind="hidden", output_range=(0.0, math.inf),
         properties={"nonnegative"}, gradient="exact", reference=_ref_linear_ce,
         reference_name="float64 F.cross_entropy(hidden @ weight.T + bias) (naive, materialised)",
         sample=_sample(label_smoothing=0.1, chunk_size=4), extreme=_extreme,
         errors=(ErrorCase("label out of range", lambda s: Sample((s.args[0], s.args[1], s.args[2] + 100), s.kwargs),
                           ValueError, r"target class indices must lie in \[0, 6\]"),
                 ErrorCase("smoothing outside [0, 1]", _bad_kwarg(label_smoothing=1.5), ValueError,
                           r"label_smoothing must lie in \[0, 1\]"),
                 ErrorCase("bad chunk size", _bad_kwarg(chunk_size=0), ValueError, r"chunk_size must be an integer >= 1"),
                 ErrorCase("hidden/weight width mismatch",
                           lambda s: Sample((s.args[0][:, :-1], s.args[1], s.args[2]), s.kwargs),
                           ValueError, r"hidden must have shape \(\.\.\., D\)"),
                 ErrorCase("NaN bias", lambda s: Sample(s.args, {**s.kwargs, "bias": s.kwargs["bias"] * math.nan}),
                           ValueError, r"bias must be finite or -inf")),
         equivalent=Equivalent("naive", "F.cross_entropy(h @ W.T + b) (materialised)", _eq_linear_ce),
         references=("wijmans2025cut",),
         formula=r"-\sum_k q_k\log\mathrm{softmax}(Wh+b)_k", rtol=1e-6, atol=1e-8,
         summary="cross-entropy of a linear layer, chunked: never materialises the (N, V) logits")
