r"""Robust losses: noisy labels and adversarial perturbations (Chapter 5 of the book).

*Noisy labels.* Noise models as data helpers (:func:`transition_matrix`,
:func:`corrupt_labels`); the symmetric (noise-tolerant) losses MAE-on-probabilities
and reverse cross-entropy; generalized and symmetric cross-entropy;
normalized losses (NCE, NFL, :func:`normalize_loss`) and the Active–Passive
combination (:func:`apl_loss`); the adaptive LDR-KL loss with a per-sample
temperature (:class:`ALDRKLLoss`); and a numerical test of the symmetry
condition (:func:`is_symmetric`).

*Adversarial perturbations.* The one-vs-the-rest loss and its switching form
(SOVR), a PGD attack, TRADES and a smooth adversarial comp-sum loss.

Conventions as in :mod:`lossbook.classification`: logits ``(N, C)`` (or
``(N, C, d1, ...)``), int64 class-index targets, ``reduction="none"`` gives
one value per sample. A logit of ``-inf`` masks a class (as for
``F.cross_entropy``): every loss here stays finite, with a finite gradient,
wherever cross-entropy does.

Each public loss validates its inputs and calls a private ``_<name>_terms``
function that computes the per-sample values without checks; composites
(:func:`sce_loss`, :func:`apl_loss`) validate once and combine the terms.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lossbook import validation as V
from lossbook.registry import Equivalent, ErrorCase, ModuleSample, Sample, module_twin, register, register_module
from lossbook.registry import as_numpy as _np
from lossbook.registry import extreme_logits as _extreme
from lossbook.registry import label_out_of_range as _bad_label
from lossbook.registry import logits_sample as _sample
from lossbook.registry import with_kwargs as _bad_kwarg
from lossbook.kinds import small_model
from lossbook.utils import check_reduction, finish, reduce_loss, to_compute_dtype
from lossbook.data import corrupt_labels, transition_matrix  # re-exported: the noise models live in lossbook.data

__all__ = [
    "transition_matrix", "corrupt_labels",
    "mae_prob_loss", "gce_loss", "rce_loss", "sce_loss", "normalized_ce_loss", "normalized_focal_loss",
    "normalize_loss", "apl_loss", "aldr_kl_loss", "aldr_lambda_update", "is_symmetric",
    "ovr_loss", "sovr_loss", "logit_margin", "pgd_attack", "trades_loss", "smooth_adv_comp_sum_loss",
    "MAEProbLoss", "GCELoss", "RCELoss", "SCELoss", "NormalizedCELoss", "NormalizedFocalLoss", "APLLoss",
    "ALDRKLLoss", "OVRLoss", "SOVRLoss",
]

LOG_1E_4 = math.log(1e-4)


# --------------------------------------------------------------------------- shared plumbing (no checks)


def _check_logits(input: torch.Tensor, target: torch.Tensor, *, spatial: bool = True) -> None:
    """Logits ``(N, C, *)`` with at least one class and int64 class indices ``(N, *)`` in ``[0, C)``."""
    V.check_logits_target(input, target, soft=False, spatial=spatial)
    if input.shape[1] == 0:
        raise ValueError(f"input must have at least one class (C >= 1), got shape {tuple(input.shape)}")


def _check_two_classes(input: torch.Tensor, name: str) -> None:
    if input.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 classes, got C = {input.shape[1]} "
                         "(its normalisation divides by a sum over the classes that is 0 for one class)")


def _flat(input: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """``(N, C, *)`` logits as ``(M, C)`` in the compute dtype, the target as ``(M,)``, and the output shape."""
    c = input.shape[1]
    z = to_compute_dtype(input).movedim(1, -1).reshape(-1, c)
    return z, target.reshape(-1), (input.shape[0],) + tuple(input.shape[2:])


def _off_target(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(z, dtype=torch.bool).scatter(-1, t[:, None], False)


def _pick(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return values.gather(-1, t[:, None]).squeeze(-1)


def _log1m_p(logp: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(1 - p_k)` from log-probabilities, accurate and with finite gradients (also under masking).

    For the most likely class, :math:`\log(1-p_k) = \operatorname{logsumexp}_{j\ne k}\log p_j`
    (exact as :math:`p_k \to 1`); every other class has :math:`p_k\le\frac12`, where
    ``log1p(-p_k)`` is accurate. A row where every other class is masked (``-inf``) gets 0
    for the top class, a placeholder: its normalised loss is defined as 0 (see :func:`_ratio`).
    """
    is_top = torch.zeros_like(logp, dtype=torch.bool).scatter(-1, logp.argmax(-1, keepdim=True), True)
    others = logp.masked_fill(is_top, -math.inf)
    has_rest = (others > -math.inf).any(-1, keepdim=True)
    # The where-NaN trap: logsumexp of an all -inf row has a NaN gradient, so feed it zeros there.
    rest = torch.where(has_rest, torch.logsumexp(torch.where(has_rest, others, 0.0), -1, keepdim=True), 0.0)
    safe = torch.where(is_top, torch.full_like(logp, -1.0), logp)
    return torch.where(is_top, rest, torch.log1p(-torch.exp(safe)))


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` for a negative normaliser ``den``; 0 where ``den`` is 0 (only one class available)."""
    ok = den < 0
    return torch.where(ok, num / torch.where(ok, den, -1.0), 0.0)


def _check_log_zero(log_zero: object) -> None:
    V.check_in_range(log_zero, "log_zero", -math.inf, 0.0, what="be a finite number < 0")


# --------------------------------------------------------------------------- symmetric and bounded losses


def _one_minus_pt(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """:math:`1 - p_t` as ``-expm1(log p_t)``, with :math:`\\log p_t` from the fused cross-entropy kernel."""
    return -torch.expm1(-F.cross_entropy(z, t, reduction="none"))


def _mae_prob_terms(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 2.0 * _one_minus_pt(z, t)


def mae_prob_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""MAE between the one-hot label and the softmax: :math:`\|e_y - p\|_1 = 2(1 - p_y)`.

    Symmetric — :math:`\sum_k \ell(z, k) = 2(C-1)` for every :math:`z` — hence
    tolerant to symmetric label noise of rate :math:`\rho < (C-1)/C`, and bounded
    in :math:`[0, 2]`; but it underfits, because its gradient
    :math:`-2p_y(e_y - p)` vanishes on hard samples. (Not the regression MAE.)
    :math:`1-p_y` is ``-expm1(log p_y)``, with :math:`\log p_y` from the fused cross-entropy
    kernel: one pass over the logits, and a finite gradient where :math:`p_y` rounds to 1.

    Reference: Ghosh, Kumar & Sastry (2017), *Robust Loss Functions under Label Noise for Deep Neural Networks*.

    Example:
        >>> mae_prob_loss(torch.zeros(1, 4), torch.tensor([0]))
        tensor(1.5000)
    """
    _check_logits(input, target)
    check_reduction(reduction)
    z, t, shape = _flat(input, target)
    return finish(_mae_prob_terms(z, t), reduction, like=input, shape=shape)


def _check_gce(q: object, truncation: object) -> None:
    V.check_in_range(q, "q", 0.0, 1.0, high_closed=True)
    if truncation is not None:
        V.check_open_unit(truncation, "truncation")


def _gce_terms(z: torch.Tensor, t: torch.Tensor, q: float, truncation: float | None) -> torch.Tensor:
    logp_y = -F.cross_entropy(z, t, reduction="none")
    loss = -torch.expm1(q * logp_y) / q
    if truncation is not None:
        loss = loss.clamp(max=(1.0 - truncation ** q) / q)
    return loss


def gce_loss(input: torch.Tensor, target: torch.Tensor, *, q: float = 0.7, truncation: float | None = None,
             reduction: str = "mean") -> torch.Tensor:
    r"""Generalized cross-entropy :math:`L_q = (1 - p_y^q)/q`, optionally truncated.

    Interpolates between cross-entropy (:math:`q\to0`) and MAE/2
    (:math:`q = 1`). Computed as :math:`-\mathrm{expm1}(q\log p_y)/q`. The
    truncated loss is :math:`\min(L_q(p_y), L_q(k))` for a threshold
    :math:`k\in(0,1)`: samples with :math:`p_y < k` (likely mislabelled) get a
    constant loss and no gradient.

    Args:
        q: :math:`q \in (0, 1]` (a number or a 0-d tensor).
        truncation: ``None`` or :math:`k \in (0, 1)`.

    Reference: Zhang & Sabuncu (2018), *Generalized Cross Entropy Loss for Training
    Deep Neural Networks with Noisy Labels*.

    Example:
        >>> gce_loss(torch.zeros(1, 4), torch.tensor([0]), q=1.0)
        tensor(0.7500)
    """
    _check_logits(input, target)
    _check_gce(q, truncation)
    check_reduction(reduction)
    z, t, shape = _flat(input, target)
    return finish(_gce_terms(z, t, q, truncation), reduction, like=input, shape=shape)


def _rce_terms(z: torch.Tensor, t: torch.Tensor, log_zero: float) -> torch.Tensor:
    return -log_zero * _one_minus_pt(z, t)


def rce_loss(input: torch.Tensor, target: torch.Tensor, *, log_zero: float = LOG_1E_4,
             reduction: str = "mean") -> torch.Tensor:
    r"""Reverse cross-entropy :math:`-\sum_k p_k \log q_k` with :math:`\log 0 := A`: equals :math:`-A(1 - p_y)`.

    The label distribution :math:`q = e_y` has :math:`\log 0` off the target;
    the official SCE/APL code clamps the one-hot at :math:`10^{-4}`, i.e.
    :math:`A = \ln 10^{-4} \approx -9.21` (the default here), while the SCE
    paper's text uses :math:`A = -4`. RCE is symmetric,
    :math:`\sum_k \ell(z,k) = -A(C-1)`, and bounded by :math:`-A`.
    (The official code also clamps :math:`p` at :math:`10^{-7}`, which changes the
    value by at most :math:`|A|(C-1)\cdot10^{-7}`; not done here.)

    Args:
        log_zero: :math:`A`, a finite number :math:`< 0`.

    Reference: Wang et al. (2019), *Symmetric Cross Entropy for Robust Learning with Noisy Labels*.

    Example:
        >>> rce_loss(torch.zeros(1, 2), torch.tensor([0]), log_zero=-4.0)
        tensor(2.)
    """
    _check_logits(input, target)
    _check_log_zero(log_zero)
    check_reduction(reduction)
    z, t, shape = _flat(input, target)
    return finish(_rce_terms(z, t, log_zero), reduction, like=input, shape=shape)


def _sce_terms(z: torch.Tensor, t: torch.Tensor, alpha: float, beta: float, log_zero: float) -> torch.Tensor:
    ce = F.cross_entropy(z, t, reduction="none")
    rce = -log_zero * -torch.expm1(-ce)
    return alpha * ce + beta * rce


def sce_loss(input: torch.Tensor, target: torch.Tensor, *, alpha: float = 0.1, beta: float = 1.0,
             log_zero: float = LOG_1E_4, reduction: str = "mean") -> torch.Tensor:
    r"""Symmetric cross-entropy :math:`\alpha\,\mathrm{CE} + \beta\,\mathrm{RCE}`.

    The defaults :math:`\alpha = 0.1, \beta = 1` are the paper's CIFAR-10 values
    (finite, :math:`\ge 0`). One cross-entropy pass gives both parts.

    Reference: Wang et al. (2019), *Symmetric Cross Entropy for Robust Learning with Noisy Labels*.

    Example:
        >>> sce_loss(torch.zeros(1, 2), torch.tensor([0]), alpha=1.0, beta=0.0)
        tensor(0.6931)
    """
    _check_logits(input, target)
    V.check_nonnegative(alpha, "alpha")
    V.check_nonnegative(beta, "beta")
    _check_log_zero(log_zero)
    check_reduction(reduction)
    z, t, shape = _flat(input, target)
    return finish(_sce_terms(z, t, alpha, beta, log_zero), reduction, like=input, shape=shape)


def _nce_from_logp(logp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    available = logp > -math.inf
    return _ratio(_pick(logp, t), torch.where(available, logp, 0.0).sum(-1))


def _nfl_from_logp(logp: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    available = logp > -math.inf
    factor = torch.exp(gamma * _log1m_p(logp))
    num = _pick(factor, t) * _pick(logp, t)
    return _ratio(num, (factor * torch.where(available, logp, 0.0)).sum(-1))


def _normalized_ce_terms(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return _nce_from_logp(F.log_softmax(z, -1), t)


def _normalized_focal_terms(z: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    return _nfl_from_logp(F.log_softmax(z, -1), t, gamma)


def normalized_ce_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""Normalized cross-entropy :math:`\mathrm{NCE} = \frac{\log p_y}{\sum_k \log p_k} \in [0, 1]`.

    Any loss divided by its sum over all labels is symmetric: here
    :math:`\sum_k \mathrm{NCE}(z, k) = 1`. (Not noise-contrastive estimation.)
    It needs :math:`C \ge 2` (for one class the normaliser is 0; a ``ValueError``
    says so). Masked classes (logit ``-inf``) are left out of the normaliser, so
    the loss is NCE over the classes that remain; with only the target left it is 0.

    Reference: Ma et al. (2020), *Normalized Loss Functions for Deep Learning with Noisy Labels*.

    Example:
        >>> normalized_ce_loss(torch.zeros(1, 4), torch.tensor([0]))
        tensor(0.2500)
    """
    _check_logits(input, target)
    _check_two_classes(input, "normalized_ce_loss")
    check_reduction(reduction)
    z, t, shape = _flat(input, target)
    return finish(_normalized_ce_terms(z, t), reduction, like=input, shape=shape)


def normalized_focal_loss(input: torch.Tensor, target: torch.Tensor, *, gamma: float = 0.5,
                          reduction: str = "mean") -> torch.Tensor:
    r"""Normalized focal loss :math:`\frac{(1-p_y)^\gamma\log p_y}{\sum_k (1-p_k)^\gamma\log p_k} \in [0, 1]`.

    :math:`(1-p)^\gamma` is :math:`\exp(\gamma\log(1-p))` with an accurate
    :math:`\log(1-p)` (from the log-probabilities: a log-sum-exp of the other
    classes for the most likely one), so the gradient is finite for
    :math:`\gamma < 1` at saturated logits. The value matches the official
    code; its gradient does not quite: the official code treats the factors
    :math:`(1-p_k)^\gamma` as constants (``.data``), while this function
    differentiates the stated formula. Needs :math:`C \ge 2` and a finite
    :math:`\gamma \ge 0`; masked classes (``-inf``) are left out of the
    normaliser, as in :func:`normalized_ce_loss`.

    Reference: Ma et al. (2020), *Normalized Loss Functions for Deep Learning with Noisy Labels*.

    Example:
        >>> normalized_focal_loss(torch.zeros(1, 4), torch.tensor([0]))
        tensor(0.2500)
    """
    _check_logits(input, target)
    _check_two_classes(input, "normalized_focal_loss")
    V.check_nonnegative(gamma, "gamma")
    check_reduction(reduction)
    z, t, shape = _flat(input, target)
    return finish(_normalized_focal_terms(z, t, gamma), reduction, like=input, shape=shape)


def normalize_loss(loss_fn: Callable[..., torch.Tensor], num_classes: int) -> Callable[..., torch.Tensor]:
    r"""Normalise any classification loss: :math:`L_{\text{norm}}(f, y) = L(f, y) / \sum_k L(f, k)`.

    ``loss_fn(input, target, reduction="none")`` must return per-sample
    non-negative values. The result is symmetric (its sum over labels is 1),
    hence noise-tolerant; it costs :math:`C` evaluations of ``loss_fn``.

    Example:
        >>> from lossbook.classification import focal_loss
        >>> nfl = normalize_loss(focal_loss, 3)
        >>> z = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(sum(nfl(z, torch.full((2,), k), reduction="none") for k in range(3)), torch.ones(2))
        True
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    if isinstance(num_classes, bool) or not (isinstance(num_classes, int) and num_classes >= 2):
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")

    def normalized(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", **kwargs) -> torch.Tensor:
        check_reduction(reduction)
        V.check_floating(input, "input")
        if input.dim() < 2 or input.shape[1] != num_classes:
            raise ValueError(f"input must have shape (N, {num_classes}, ...) for num_classes = {num_classes}, "
                             f"got {tuple(input.shape)}")
        own = loss_fn(input, target, reduction="none", **kwargs)
        total = sum(loss_fn(input, torch.full_like(target, k), reduction="none", **kwargs)
                    for k in range(num_classes))
        return reduce_loss(own / total, reduction)

    normalized.__name__ = f"normalized_{getattr(loss_fn, '__name__', 'loss')}"
    normalized.__doc__ = f"{normalized.__name__}: {getattr(loss_fn, '__name__', 'loss')} divided by its sum over the labels."
    return normalized


_ACTIVE = ("nce", "nfl")
_PASSIVE = ("rce", "mae")


def _apl_terms(z: torch.Tensor, t: torch.Tensor, active: str, passive: str, alpha: float, beta: float,
               gamma: float, log_zero: float) -> torch.Tensor:
    logp = F.log_softmax(z, -1)  # one pass over the logits for both parts
    a = _nce_from_logp(logp, t) if active == "nce" else _nfl_from_logp(logp, t, gamma)
    one_m_py = -torch.expm1(_pick(logp, t))
    p = -log_zero * one_m_py if passive == "rce" else one_m_py
    return alpha * a + beta * p


def apl_loss(input: torch.Tensor, target: torch.Tensor, *, active: str = "nce", passive: str = "rce",
             alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5, log_zero: float = LOG_1E_4,
             reduction: str = "mean") -> torch.Tensor:
    r"""Active–Passive Loss :math:`\alpha L_{\text{active}} + \beta L_{\text{passive}}`.

    Active (pushes :math:`p_y` up directly): NCE or NFL (``gamma``). Passive
    (pushes the other :math:`p_k` down): RCE (``log_zero``) or MAE, the latter
    taken as :math:`1 - p_y` (half of :func:`mae_prob_loss`, as in the official
    code). Both parts are symmetric, so the sum is robust; the active part
    fixes the underfitting of a passive loss alone. The inputs are validated
    once and one log-softmax serves both parts; :math:`C \ge 2` is required
    (the active part is normalised).

    Reference: Ma et al. (2020), *Normalized Loss Functions for Deep Learning with Noisy Labels*.

    Example:
        >>> apl_loss(torch.zeros(1, 4), torch.tensor([0]), active="nce", passive="mae")
        tensor(1.)
    """
    _check_logits(input, target)
    _check_two_classes(input, "apl_loss")
    V.check_choice(active, "active", _ACTIVE)
    V.check_choice(passive, "passive", _PASSIVE)
    V.check_nonnegative(alpha, "alpha")
    V.check_nonnegative(beta, "beta")
    V.check_nonnegative(gamma, "gamma")
    _check_log_zero(log_zero)
    check_reduction(reduction)
    z, t, shape = _flat(input, target)
    return finish(_apl_terms(z, t, active, passive, alpha, beta, gamma, log_zero), reduction, like=input, shape=shape)


# --------------------------------------------------------------------------- adaptive LDR-KL

_ALDR_MIN_SCALE = 1e-2
"""Lower bound of the ALDR-KL scale :math:`\\|z\\|_1/C` (keeps the gradient finite at zero logits)."""


def _aldr_scaled(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`\tilde z = z / \max(\|z\|_1 / C, 10^{-2})` and the mask of available (not ``-inf``) classes.

    Masked entries are left out of the norm and returned as 0 (callers put ``-inf`` back
    where it cannot meet a multiplication: the where-NaN trap).
    """
    available = z > -math.inf
    z0 = torch.where(available, z, 0.0)
    scale = z0.abs().mean(-1, keepdim=True).clamp_min(_ALDR_MIN_SCALE)
    return z0 / scale, available


def _check_aldr_hyper(lam0: object, alpha: object) -> None:
    V.check_positive(lam0, "lam0")
    V.check_in_range(alpha, "alpha", 1.0, math.inf, what="be a finite number > 1 (it keeps every lambda positive)")


def _check_lam(lam: torch.Tensor, input: torch.Tensor, name: str) -> None:
    V.check_floating(lam, name)
    V.check_same_device(input=input, **{name: lam})
    if tuple(lam.shape) != (input.shape[0],):
        raise ValueError(f"{name} must have shape (N,) = ({input.shape[0]},), got {tuple(lam.shape)}")
    V.check_positive(lam, name)


def _aldr_lambda_terms(z: torch.Tensor, lam_old: torch.Tensor, lam0: float, alpha: float) -> torch.Tensor:
    """The λ update on ``(N, C)`` compute-dtype logits, without checks (detached, in ``z``'s dtype)."""
    with torch.no_grad():
        zt, available = _aldr_scaled(z)
        logp = F.log_softmax(torch.where(available, zt / lam_old[:, None], -math.inf), -1)
        log_c = math.log(z.shape[-1])
        # 0·log 0 = 0 for a masked class (p = 0).
        kl = torch.where(available, logp.exp() * (logp + log_c), 0.0).sum(-1)
        return lam0 * (1.0 - kl / (alpha * log_c))


def _aldr_kl_terms(z: torch.Tensor, t: torch.Tensor, lam: torch.Tensor, lam0: float, alpha: float,
                   margin: float) -> torch.Tensor:
    """Per-sample ALDR-KL on ``(N, C)`` compute-dtype logits at temperatures ``lam`` (same dtype), no checks."""
    zt, available = _aldr_scaled(z)
    lam_c = lam[:, None]
    shifted = zt - _pick(zt, t)[:, None] + margin * _off_target(zt, t).to(zt.dtype)
    u = torch.where(available, shifted / lam_c, -math.inf)
    log_c = math.log(z.shape[-1])
    return lam * (torch.logsumexp(u, -1) - log_c) - alpha * log_c / (2 * lam0) * (lam - lam0) ** 2


def aldr_lambda_update(input: torch.Tensor, lam_old: torch.Tensor, *, lam0: float = 1.0,
                       alpha: float = 2.0) -> torch.Tensor:
    r"""The per-sample temperature update of ALDR-KL (detached).

    .. math::
        p_i = \mathrm{softmax}(\tilde z_i/\lambda_i^{\text{old}}),\qquad
        \lambda_i \leftarrow \lambda_0\Big(1 - \frac{\mathrm{KL}(p_i\,\|\,u)}{\alpha\log C}\Big)

    the closed-form maximiser over :math:`\lambda` of
    :math:`-\lambda\,\mathrm{KL}(p_i\|u) - \frac{\alpha\log C}{2\lambda_0}(\lambda-\lambda_0)^2`.
    Since :math:`\mathrm{KL}(p\|u)\le\log C`, :math:`\alpha > 1` keeps
    :math:`\lambda_i \ge \lambda_0(1 - 1/\alpha) > 0`. Confident (peaked)
    predictions get a small temperature, uncertain ones stay near :math:`\lambda_0`.
    As in the official code, :math:`\tilde z = z/(\|z\|_1/C)` (the scale clamped
    at :math:`10^{-2}` from below, see :func:`aldr_kl_loss`); the code's
    :math:`10^{-5}` smoothing of :math:`p` is replaced by an exact log-space KL.
    Needs ``input`` of shape ``(N, C)`` with :math:`C \ge 2`, ``lam_old`` positive
    ``(N,)``, :math:`\lambda_0 > 0` and a finite :math:`\alpha > 1`.

    Example:
        >>> aldr_lambda_update(torch.zeros(1, 4), torch.ones(1))
        tensor([1.])
    """
    V.check_floating(input, "input")
    if input.dim() != 2:
        raise ValueError(f"input must have shape (N, C), got {tuple(input.shape)}")
    _check_two_classes(input, "aldr_lambda_update")
    _check_lam(lam_old, input, "lam_old")
    _check_aldr_hyper(lam0, alpha)
    z = to_compute_dtype(input)
    return _aldr_lambda_terms(z, lam_old.to(z.dtype), lam0, alpha).to(lam_old.dtype)


def aldr_kl_loss(input: torch.Tensor, target: torch.Tensor, lam: torch.Tensor, *, lam0: float = 1.0,
                 alpha: float = 2.0, margin: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    r"""Adaptive LDR-KL loss for given per-sample temperatures :math:`\lambda_i` (the stateless part of :class:`ALDRKLLoss`).

    .. math::
        \ell_i = \lambda_i \log\frac1C\sum_k e^{(c\,\mathbb 1[k\ne y_i] + \tilde z_{ik} - \tilde z_{iy_i})/\lambda_i}
                 - \frac{\alpha\log C}{2\lambda_0}(\lambda_i - \lambda_0)^2

    with :math:`\tilde z = z/s`, :math:`s = \max(\|z\|_1/C,\ 10^{-2})`, and
    the margin :math:`c` (``margin``). The second term
    does not depend on the logits; it is kept so the value matches the official
    code (``ALDRLoss_V1``), against which this formula was checked. Use
    :class:`ALDRKLLoss` for training: it updates :math:`\lambda_i` with
    :func:`aldr_lambda_update` before calling this.

    The scale normalisation is scale-free, so its gradient grows like
    :math:`1/\|z\|_1` and has no limit at :math:`z = 0`; the lower bound
    :math:`10^{-2}` on :math:`s` (the official code has none) keeps it finite,
    about :math:`100\times` that of the unnormalised loss at zero logits, and
    changes nothing for logits with :math:`\|z\|_1/C \ge 10^{-2}`. A masked class
    (logit ``-inf``) is left out of :math:`\|z\|_1` and of the sum over
    :math:`k`; :math:`C` stays the number of columns.

    Args:
        lam: per-sample temperatures ``(N,)``, finite and positive.
        lam0: :math:`\lambda_0 > 0`, finite.
        alpha: :math:`\alpha > 1`, finite.
        margin: :math:`c`, finite.

    Reference: Zhu, Ying & Yang (2023), *Label Distributionally Robust Losses for
    Multi-class Classification* (ALDR-KL).

    Example:
        >>> aldr_kl_loss(torch.zeros(1, 4), torch.tensor([0]), torch.ones(1), margin=0.0)
        tensor(0.)
    """
    _check_logits(input, target, spatial=False)
    _check_lam(lam, input, "lam")
    _check_aldr_hyper(lam0, alpha)
    V.check_finite(margin, "margin")
    check_reduction(reduction)
    z, t, shape = _flat(input, target)
    return finish(_aldr_kl_terms(z, t, lam.to(z.dtype), lam0, alpha, margin), reduction, like=input, shape=shape)


class ALDRKLLoss(nn.Module):
    r"""Adaptive LDR-KL loss with a per-sample temperature buffer (Zhu, Ying & Yang, 2023).

    ``forward(input, target, index)``: ``index`` (int64, shape ``(N,)``, values in
    ``[0, num_samples)``) holds the dataset positions of the batch's samples.
    Each call first updates their temperatures with :func:`aldr_lambda_update`
    (from the *old* :math:`\lambda_i`, detached) and stores them in the
    ``lambdas`` buffer, then returns :func:`aldr_kl_loss` at the new
    temperatures. Every input is validated before the buffer is touched, so a
    call that raises leaves the state as it was; a negative index is an error
    (it is not counted from the end). A position repeated within one batch stores
    one of its updates (torch's index assignment). As :math:`\alpha\to\infty`,
    :math:`\lambda_i = \lambda_0` and it reduces to LDR-KL of the scale-normalised
    logits. Checked against the official code.

    Args:
        num_samples: size of the training set (length of the buffer).
        num_classes: :math:`C \ge 2`.
        lam0: reference temperature :math:`\lambda_0 > 0`.
        alpha: :math:`\alpha > 1`, finite.
        margin: :math:`c`, finite.

    Example:
        >>> loss = ALDRKLLoss(num_samples=3, num_classes=4)
        >>> _ = loss(torch.zeros(2, 4), torch.tensor([0, 1]), torch.tensor([0, 2]))
        >>> loss.lambdas
        tensor([1., 1., 1.])
    """

    def __init__(self, num_samples: int, num_classes: int, *, lam0: float = 1.0, alpha: float = 2.0,
                 margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        V.check_positive_int(num_samples, "num_samples")
        if isinstance(num_classes, bool) or not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        _check_aldr_hyper(lam0, alpha)
        V.check_finite(margin, "margin")
        check_reduction(reduction)
        self.num_classes, self.lam0, self.alpha, self.margin, self.reduction = num_classes, lam0, alpha, margin, reduction
        self.register_buffer("lambdas", torch.full((num_samples,), float(lam0)))

    def _check_forward(self, input: torch.Tensor, target: torch.Tensor, index: torch.Tensor) -> None:
        _check_logits(input, target, spatial=False)
        if input.shape[1] != self.num_classes:
            raise ValueError(f"input has {input.shape[1]} classes (shape {tuple(input.shape)}) but this loss "
                             f"was built with num_classes = {self.num_classes}")
        V.check_tensor(index, "index")
        V.check_same_device(input=input, index=index)
        if index.dtype != torch.long:
            raise TypeError(f"index must have dtype torch.int64 (dataset positions), got {index.dtype}; "
                            "use index.long()")
        if tuple(index.shape) != (input.shape[0],):
            raise ValueError(f"index must have shape (N,) = ({input.shape[0]},), got {tuple(index.shape)}")
        if self.lambdas.device != input.device:
            raise RuntimeError(f"the lambdas buffer is on device {self.lambdas.device} but input is on device "
                               f"{input.device}; move the loss with .to(device)")
        n = self.lambdas.numel()
        if not V.skip_value_checks(index) and index.numel():
            lo, hi = torch.stack(torch.aminmax(index)).tolist()
            if lo < 0 or hi >= n:
                raise ValueError(f"index values must lie in [0, {n - 1}] for num_samples = {n} (negative "
                                 f"positions are not counted from the end), got values in [{lo}, {hi}]")

    def forward(self, input: torch.Tensor, target: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        self._check_forward(input, target, index)
        z, t, shape = _flat(input, target)
        lam = _aldr_lambda_terms(z, self.lambdas[index].to(z.dtype), self.lam0, self.alpha)
        self.lambdas[index] = lam.to(self.lambdas.dtype)
        loss = _aldr_kl_terms(z, t, lam, self.lam0, self.alpha, self.margin)
        return finish(loss, self.reduction, like=input, shape=shape)

    def extra_repr(self) -> str:
        return (f"num_samples={self.lambdas.numel()}, num_classes={self.num_classes}, lam0={self.lam0}, "
                f"alpha={self.alpha}, margin={self.margin}")


# --------------------------------------------------------------------------- symmetry test


def is_symmetric(loss_fn: Callable[..., torch.Tensor], num_classes: int, *, trials: int = 100,
                 scale: float = 3.0, rtol: float = 1e-6, generator: torch.Generator | None = None) -> bool:
    r"""Numerically test the symmetry condition :math:`\sum_{k=1}^C L(f(x), k) = \text{const}`.

    Draws ``trials`` random logit vectors (float64, standard deviation
    ``scale``), sums ``loss_fn(z, k, reduction="none")`` over the labels and
    checks that the sums agree to relative tolerance ``rtol``.

    Example:
        >>> is_symmetric(mae_prob_loss, 5), is_symmetric(F.cross_entropy, 5)
        (True, False)
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    V.check_positive_int(num_classes, "num_classes")
    V.check_positive_int(trials, "trials")
    V.check_positive(scale, "scale")
    V.check_nonnegative(rtol, "rtol")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    z = torch.randn(trials, num_classes, generator=gen, dtype=torch.float64) * scale
    total = sum(loss_fn(z, torch.full((trials,), k, dtype=torch.long), reduction="none") for k in range(num_classes))
    return bool(((total - total[0]).abs() <= rtol * total.abs().max().clamp_min(1.0)).all())


# --------------------------------------------------------------------------- adversarial: OVR and SOVR


def _ovr_terms(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.where(_off_target(z, t), F.softplus(z), F.softplus(-z)).sum(-1)


def ovr_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""One-vs-the-rest loss :math:`\log(1+e^{-z_y}) + \sum_{k\ne y}\log(1+e^{z_k})`.

    The sum of :math:`C` binary logistic losses, i.e.
    ``binary_cross_entropy_with_logits(z, one_hot(y), reduction="sum")`` per
    sample. Unlike softmax CE it is not invariant to shifting all logits, and
    it pushes :math:`z_y` up and every :math:`z_k` down separately, which
    enlarges the logit margin.

    Reference: Kanai et al. (2023), *One-vs-the-Rest Loss to Focus on Important Samples in Adversarial Training*.

    Example:
        >>> ovr_loss(torch.zeros(1, 3), torch.tensor([0]))
        tensor(2.0794)
    """
    _check_logits(input, target)
    check_reduction(reduction)
    z, t, shape = _flat(input, target)
    return finish(_ovr_terms(z, t), reduction, like=input, shape=shape)


def _margin_terms(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return _pick(z, t) - z.masked_fill(~_off_target(z, t), -math.inf).amax(-1)


def logit_margin(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Per-sample logit margin :math:`z_y - \max_{k\ne y} z_k` (negative means misclassified).

    Example:
        >>> logit_margin(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([0]))
        tensor([1.])
    """
    _check_logits(input, target)
    z, t, shape = _flat(input, target)
    return _margin_terms(z, t).reshape(shape).to(input.dtype)


def _sovr_terms(z: torch.Tensor, t: torch.Tensor, frac: float, margin_threshold: float | None) -> torch.Tensor:
    with torch.no_grad():
        margin = _margin_terms(z, t)
        if margin_threshold is not None:
            chosen = margin < margin_threshold
        else:
            n = z.shape[0]
            n_sel = torch.round(frac * n) if isinstance(frac, torch.Tensor) else round(frac * n)
            # Rank in a stable ascending sort: ties go to the earlier sample, deterministically.
            order = torch.sort(margin, stable=True).indices
            rank = torch.empty_like(order).scatter_(0, order, torch.arange(n, device=z.device))
            chosen = rank < n_sel
    ce = -_pick(F.log_softmax(z, -1), t)
    return torch.where(chosen, _ovr_terms(z, t), ce)


def sovr_loss(input: torch.Tensor, target: torch.Tensor, *, frac: float = 0.4, margin_threshold: float | None = None,
              reduction: str = "mean") -> torch.Tensor:
    r"""Switching one-vs-the-rest loss: OVR for the important (small-margin) samples, CE for the rest.

    .. math::
        \ell_i = \mathbb 1[i\in\mathcal I]\,\ell_{\text{OVR}}(z_i, y_i) + \mathbb 1[i\notin\mathcal I]\,\ell_{\text{CE}}(z_i, y_i)

    where :math:`\mathcal I` holds the ``round(frac * N)`` samples of the batch
    (:math:`\text{frac}\in[0, 1]`; 0 is CE, 1 is OVR) with the smallest logit
    margin :math:`z_y - \max_{k\ne y}z_k` (ties go to the earlier sample), or, if
    ``margin_threshold`` (finite) is given, those with margin below it. The
    selection is a stop-gradient. In adversarial training ``input`` are the
    logits of the adversarial examples. For ``(N, C, d1, ...)`` logits each
    position counts as a sample.

    Inspired by Kanai et al. (2023), *One-vs-the-Rest Loss to Focus on
    Important Samples in Adversarial Training*: the switch from CE to OVR for
    samples with small logit margins is the paper's (abstract); the exact
    selection rule (a fixed fraction per batch) is our reading and was not
    checked against the paper's text.

    Example:
        >>> z, y = torch.tensor([[5.0, 0.0], [0.1, 0.0]]), torch.tensor([0, 0])
        >>> # the large-margin sample keeps CE, the small-margin one switches to OVR
        >>> sovr_loss(z, y, frac=0.5, reduction="none") - ovr_loss(z, y, reduction="none")
        tensor([-0.6931,  0.0000])
    """
    _check_logits(input, target)
    V.check_in_range(frac, "frac", 0.0, 1.0, low_closed=True, high_closed=True)
    if margin_threshold is not None:
        V.check_finite(margin_threshold, "margin_threshold")
    check_reduction(reduction)
    z, t, shape = _flat(input, target)
    return finish(_sovr_terms(z, t, frac, margin_threshold), reduction, like=input, shape=shape)


# --------------------------------------------------------------------------- adversarial: attacks and training losses


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    flat = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    factor = (eps / flat).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


def _step(grad: torch.Tensor, step_size: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return step_size * grad.sign()
    g = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return step_size * grad / g.view(-1, *([1] * (grad.dim() - 1)))


def _check_attack(eps: object, step_size: object, steps: object, norm: str,
                  clamp: tuple[float, float] | None) -> None:
    V.check_nonnegative(eps, "eps")
    V.check_nonnegative(step_size, "step_size")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    V.check_choice(norm, "norm", ("linf", "l2"))
    if clamp is not None:
        if not (isinstance(clamp, (tuple, list)) and len(clamp) == 2):
            raise ValueError(f"clamp must be None or a pair (low, high), got {clamp!r}")
        V.check_finite(clamp[0], "clamp[0]")
        V.check_finite(clamp[1], "clamp[1]")
        if not clamp[0] <= clamp[1]:
            raise ValueError(f"clamp must be a pair (low, high) with low <= high, got {tuple(clamp)!r}")


def _check_attack_inputs(model: object, x: torch.Tensor, y: torch.Tensor) -> None:
    """A model, a float batch and int64 class indices ``(N,)`` (the loss-taking-a-model contract)."""
    if isinstance(x, torch.Tensor) and x.dim() == 0:
        raise ValueError("x must have a batch dimension (N, ...), got a 0-d tensor")
    V.check_model_inputs(model, x, y)
    if y.dtype != torch.long:
        raise TypeError(f"y must hold class indices of dtype torch.int64, got {y.dtype}; use y.long()")


def _check_logits_of(out: object, x: torch.Tensor, y: torch.Tensor) -> None:
    """``out = model(x)`` must be ``(N, C)`` float logits; ``y`` class indices in ``[0, C)`` (or probabilities)."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or out.dim() != 2 \
            or out.shape[0] != x.shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model(x) must return float logits of shape (N, C) = ({x.shape[0]}, C), got {got}")
    if y.is_floating_point():
        if y.shape != out.shape:
            raise ValueError(f"probability targets y must have the shape of model(x) {tuple(out.shape)}, "
                             f"got {tuple(y.shape)}")
        return
    V.check_class_target(y, out.shape[1])


def _checked_logits(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``model(x)``, checked to be ``(N, C)`` float logits, and ``y`` checked against ``C``."""
    out = model(x)
    _check_logits_of(out, x, y)
    return out


def _random_start(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return x + 0.001 * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def pgd_attack(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
               loss_fn: Callable[..., torch.Tensor] = F.cross_entropy, eps: float = 0.1,
               step_size: float = 0.025, steps: int = 10, norm: str = "linf",
               clamp: tuple[float, float] | None = (0.0, 1.0), random_start: bool = True,
               generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Projected gradient ascent on ``loss_fn(model(x'), y)`` within :math:`B_\epsilon(x)\cap[\text{clamp}]`.

    .. math:: x^{(j+1)} = \Pi_{B_\epsilon(x)\cap[0,1]^d}\big(x^{(j)} + s\,\mathrm{sign}\,\nabla_x\ell(f(x^{(j)}), y)\big)

    with the step size :math:`s` (``step_size``); for ``norm="l2"`` the step is along the normalised
    gradient and the projection rescales onto the :math:`\ell_2` ball. ``random_start`` draws
    the start uniformly from the :math:`\ell_\infty` ball (or a scaled Gaussian
    direction for :math:`\ell_2`) with ``generator``. Gradients are taken with
    :func:`torch.autograd.grad` with respect to the input only, so the model's
    parameter gradients are untouched; the model's train/eval mode is the caller's choice.
    ``y`` is whatever ``loss_fn`` takes, with one row per sample of ``x``.

    Returns:
        the detached adversarial batch, same shape as ``x``.

    Reference: Madry et al. (2018), *Towards Deep Learning Models Resistant to Adversarial Attacks*.

    Example:
        >>> model = torch.nn.Linear(2, 2)
        >>> x = torch.full((3, 2), 0.5)
        >>> xa = pgd_attack(model, x, torch.tensor([0, 1, 0]), eps=0.1, steps=3,
        ...                 generator=torch.Generator().manual_seed(0))
        >>> bool(((xa - x).abs() <= 0.1 + 1e-7).all())
        True
    """
    if not callable(model):
        raise TypeError(f"model must be callable (an nn.Module or a function), got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    V.check_floating(x, "x")
    V.check_tensor(y, "y")
    V.check_same_device(x=x, y=y)
    if x.dim() < 1 or y.dim() < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"x and y must have the same batch size N, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    # With the default cross-entropy, y is checked against the model's output on the first step.
    check_targets = loss_fn is F.cross_entropy
    if check_targets and not y.is_floating_point() and y.dtype != torch.long:
        raise TypeError(f"y must hold class indices of dtype torch.int64 (or float probabilities), got {y.dtype}")
    _check_attack(eps, step_size, steps, norm, clamp)
    x = x.detach()
    if random_start and eps > 0:
        if norm == "linf":
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1
            delta = eps * noise.to(x.device)
        else:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            delta = _project(noise * eps, eps, norm) * 0.5
    else:
        delta = torch.zeros_like(x)
    x_adv = x + delta
    if clamp is not None:
        x_adv = x_adv.clamp(*clamp)
    for i in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            out = model(x_adv)
            if check_targets and i == 0:
                _check_logits_of(out, x, y)
            loss = loss_fn(out, y)
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x + _project(x_adv.detach() + _step(grad, step_size, norm) - x, eps, norm)
        if clamp is not None:
            x_adv = x_adv.clamp(*clamp)
    return x_adv.detach()


def _kl_rows(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(p(x_i)\,\|\,p(x_i'))` per sample."""
    return F.kl_div(F.log_softmax(logits_adv, -1), F.log_softmax(logits_clean, -1), reduction="none",
                    log_target=True).sum(-1)


def _kl_batchmean(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac1N\sum_i\mathrm{KL}(p(x_i)\,\|\,p(x_i'))`."""
    return F.kl_div(F.log_softmax(logits_adv, -1), F.log_softmax(logits_clean, -1), reduction="batchmean",
                    log_target=True)


def trades_loss(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
                beta: float = 6.0, eps: float = 0.1, step_size: float = 0.025, steps: int = 10,
                clamp: tuple[float, float] | None = (0.0, 1.0),
                generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""TRADES: :math:`\mathrm{CE}(f(x), y) + \beta\max_{\|x'-x\|_\infty\le\epsilon}\mathrm{KL}(f(x)\,\|\,f(x'))`.

    The inner maximisation is PGD on the KL, started at
    :math:`x + 0.001\,\mathcal N(0, I)` (``generator``; the start is random, so
    pass a seeded generator for a reproducible loss) as in the reference
    implementation. Returns the loss (differentiable in the model's parameters,
    the adversarial point held fixed); ``reduction="none"`` gives the per-sample
    :math:`\mathrm{CE}_i + \beta\,\mathrm{KL}_i`, whose mean is the paper's batch loss.
    The model's mode is the caller's choice. ``model(x)`` must return ``(N, C)``
    logits and ``y`` hold int64 class indices in ``[0, C)``.

    Reference: Zhang et al. (2019), *Theoretically Principled Trade-off between Robustness and Accuracy*.

    Example:
        >>> model = torch.nn.Linear(2, 2)
        >>> loss = trades_loss(model, torch.full((4, 2), 0.5), torch.tensor([0, 1, 0, 1]), beta=0.0)
        >>> loss.requires_grad, float(loss.detach()) > 0
        (True, True)
    """
    _check_attack_inputs(model, x, y)
    V.check_nonnegative(beta, "beta")
    _check_attack(eps, step_size, steps, "linf", clamp)
    check_reduction(reduction)
    x = x.detach()
    with torch.no_grad():
        clean_ref = _checked_logits(model, x, y).detach()
    x_adv = _random_start(x, generator)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(_kl_batchmean(clean_ref, model(x_adv)), x_adv)
        x_adv = x + (x_adv.detach() + step_size * grad.sign() - x).clamp(-eps, eps)
        if clamp is not None:
            x_adv = x_adv.clamp(*clamp)
    logits = model(x)
    adv = model(x_adv.detach())
    if reduction == "mean" and x.shape[0] > 0:  # the reference implementation's batch loss, term for term
        return F.cross_entropy(logits, y) + beta * _kl_batchmean(logits, adv)
    loss = F.cross_entropy(logits, y, reduction="none") + beta * _kl_rows(logits, adv)
    return finish(loss, reduction, like=logits)


def _comp_sum(z: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Comp-sum loss :math:`\Phi^\tau(u)` of :math:`u = \sum_{k\ne y}e^{z_k-z_y} = 1/p_y - 1`.

    :math:`\tau = 1`: :math:`\log(1+u) = -\log p_y` (CE); :math:`\tau \ne 1`:
    :math:`\frac{(1+u)^{1-\tau}-1}{1-\tau} = \frac{p_y^{\tau-1}-1}{1-\tau}`
    (:math:`\tau = 0`: sum-exponential; :math:`\tau\in(1,2)`: GCE with
    :math:`q = \tau-1`; :math:`\tau = 2`: :math:`1-p_y`).
    """
    logp_y = _pick(F.log_softmax(z, -1), y)
    if tau == 1.0:
        return -logp_y
    return torch.expm1((tau - 1.0) * logp_y) / (1.0 - tau)


def smooth_adv_comp_sum_loss(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
                             tau: float = 1.0, nu: float = 1.0, eps: float = 0.1, step_size: float = 0.025,
                             steps: int = 10, clamp: tuple[float, float] | None = (0.0, 1.0),
                             generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""A smooth adversarial comp-sum loss: comp-sum loss at :math:`x` plus a smooth adversarial term.

    .. math::
        L = \frac1N\sum_i\Big[\Phi^\tau(f(x_i), y_i) + \nu\max_{\|x'-x_i\|_\infty\le\epsilon}
            \big\|\bar f(x') - \bar f(x_i)\big\|_2\Big]

    where :math:`\Phi^\tau` is the comp-sum family (:math:`\tau\in[0, 2]`;
    :math:`\tau = 1` is CE, :math:`\tau = 2` is :math:`1 - p_y`) and
    :math:`\bar f = f - \mathrm{mean}_k f_k` are the centred logits (the softmax
    is invariant to the mean). The inner maximum is approximated by PGD from a
    small random start (``generator``: pass a seeded one for a reproducible
    loss). The norm is :math:`\sqrt{\|\cdot\|^2 + 10^{-12}}`, so its gradient is
    finite where :math:`x' = x`. ``reduction="none"`` gives the per-sample bracket.

    Inspired by Mao, Mohri & Zhong (2023), *Cross-Entropy Loss Functions:
    Theoretical Analysis and Applications*, whose smooth adversarial comp-sum
    losses add "a related smooth term" to a comp-sum loss; the exact smooth term
    and its norm are our reading and were not checked against the paper.

    Example:
        >>> model = torch.nn.Linear(2, 2)
        >>> loss = smooth_adv_comp_sum_loss(model, torch.full((4, 2), 0.5), torch.tensor([0, 1, 0, 1]), nu=0.0)
        >>> loss.requires_grad, float(loss.detach()) > 0
        (True, True)
    """
    _check_attack_inputs(model, x, y)
    V.check_nonnegative(nu, "nu")
    V.check_in_range(tau, "tau", 0.0, 2.0, low_closed=True, high_closed=True)
    _check_attack(eps, step_size, steps, "linf", clamp)
    check_reduction(reduction)
    x = x.detach()

    def centred(v: torch.Tensor) -> torch.Tensor:
        return v - v.mean(-1, keepdim=True)

    with torch.no_grad():
        ref = centred(_checked_logits(model, x, y))
    x_adv = _random_start(x, generator)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            gap = (centred(model(x_adv)) - ref).square().sum(-1).sum()
            (grad,) = torch.autograd.grad(gap, x_adv)
        x_adv = x + (x_adv.detach() + step_size * grad.sign() - x).clamp(-eps, eps)
        if clamp is not None:
            x_adv = x_adv.clamp(*clamp)
    logits = model(x)
    smooth = (centred(model(x_adv.detach())) - centred(logits)).square().sum(-1).add(1e-12).sqrt()
    return finish(_comp_sum(logits, y, float(tau)) + nu * smooth, reduction, like=logits)


# --------------------------------------------------------------------------- module twins

MAEProbLoss = module_twin(mae_prob_loss, "MAEProbLoss")
GCELoss = module_twin(gce_loss, "GCELoss")
RCELoss = module_twin(rce_loss, "RCELoss")
SCELoss = module_twin(sce_loss, "SCELoss")
NormalizedCELoss = module_twin(normalized_ce_loss, "NormalizedCELoss")
NormalizedFocalLoss = module_twin(normalized_focal_loss, "NormalizedFocalLoss")
APLLoss = module_twin(apl_loss, "APLLoss")
OVRLoss = module_twin(ovr_loss, "OVRLoss")
SOVRLoss = module_twin(sovr_loss, "SOVRLoss")


# --------------------------------------------------------------------------- registry records


def _np_probs(input, target):
    import numpy as np
    from scipy.special import log_softmax
    lp = log_softmax(_np(input), axis=1)
    y = target.cpu().numpy()
    return lp, np.exp(lp), lp[np.arange(len(y)), y], y


_LABEL_ERR = ErrorCase("label out of range", _bad_label, ValueError, r"target class indices must lie in \[0, 3\]")
_FLOAT_TARGET = ErrorCase("float target", lambda s: Sample((s.args[0], s.args[1].double(), *s.args[2:]), s.kwargs),
                          TypeError, r"takes class-index targets")


def _one_class(s: Sample) -> Sample:
    z, y, *rest = s.args
    return Sample((z[:, :1], torch.zeros_like(y), *rest), s.kwargs, s.grad_args)


def _one_class_err(name: str) -> ErrorCase:
    return ErrorCase("one class", _one_class, ValueError, rf"{name} needs at least 2 classes, got C = 1")


def _ref_mae(input, target):
    _, _, lpy, _ = _np_probs(input, target)
    import numpy as np
    return torch.from_numpy(2 * (1 - np.exp(lpy)))


def _ref_gce(input, target, q=0.7, truncation=None):
    import numpy as np
    _, _, lpy, _ = _np_probs(input, target)
    loss = (1 - np.exp(lpy) ** q) / q
    if truncation is not None:
        loss = np.minimum(loss, (1 - truncation ** q) / q)
    return torch.from_numpy(loss)


def _ref_rce_official(input, target, log_zero=LOG_1E_4):
    """The official formula -Σ_k p_k log(clamp(onehot, e^A, 1)), without the p clamp."""
    import numpy as np
    _, p, _, y = _np_probs(input, target)
    onehot = np.clip(np.eye(p.shape[1])[y], math.exp(log_zero), 1.0)
    return torch.from_numpy(-(p * np.log(onehot)).sum(1))


def _ref_sce(input, target, alpha=0.1, beta=1.0, log_zero=LOG_1E_4):
    _, _, lpy, _ = _np_probs(input, target)
    return torch.from_numpy(-alpha * lpy) + beta * _ref_rce_official(input, target, log_zero)


def _ref_nce(input, target):
    lp, _, lpy, _ = _np_probs(input, target)
    return torch.from_numpy(lpy / lp.sum(1))


def _ref_nfl(input, target, gamma=0.5):
    import numpy as np
    lp, p, _, y = _np_probs(input, target)
    terms = (1 - p) ** gamma * lp
    return torch.from_numpy(terms[np.arange(len(y)), y] / terms.sum(1))


def _ref_apl(input, target, active="nce", passive="rce", alpha=1.0, beta=1.0, gamma=0.5, log_zero=LOG_1E_4):
    a = _ref_nce(input, target) if active == "nce" else _ref_nfl(input, target, gamma)
    p = _ref_rce_official(input, target, log_zero) if passive == "rce" else 0.5 * _ref_mae(input, target)
    return alpha * a + beta * p


def _np_aldr_scaled(z):
    import numpy as np
    return z / np.maximum(np.abs(z).sum(1, keepdims=True) / z.shape[1], _ALDR_MIN_SCALE)


def _ref_aldr(input, target, lam, lam0=1.0, alpha=2.0, margin=1.0):
    import numpy as np
    from scipy.special import logsumexp
    z, y, lam = _np(input), target.cpu().numpy(), _np(lam)
    lam0, alpha, margin = float(lam0), float(alpha), float(margin)
    c = z.shape[1]
    z = _np_aldr_scaled(z)
    off = 1 - np.eye(c)[y]
    m = (margin * off + z - z[np.arange(len(y)), y][:, None]) / lam[:, None]
    return torch.from_numpy(lam * (logsumexp(m, axis=1) - np.log(c)) - alpha * np.log(c) / (2 * lam0) * (lam - lam0) ** 2)


def _aldr_sample(gen, dtype, device):
    s = _sample()(gen, dtype, device)
    lam = (torch.rand(6, generator=gen, dtype=torch.float64) * 0.8 + 0.4).to(dtype=dtype, device=device)
    return Sample((*s.args, lam), {"lam0": 0.8, "alpha": 3.0, "margin": 0.5}, grad_args=(0, 2))


def _aldr_extreme(gen, dtype, device):
    s = _extreme()(gen, dtype, device)
    lam = torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=dtype, device=device)
    return Sample((*s.args, lam), {"lam0": 1.0, "alpha": 2.0, "margin": 1.0}, grad_args=(0, 2))


def _ref_aldr_module(module, sample):
    """ALDRKLLoss forward in float64 numpy: the λ update from the buffer's values before the call, then the loss."""
    import numpy as np
    from scipy.special import log_softmax
    z, y, index = sample.args
    lam0, alpha, margin = float(module.lam0), float(module.alpha), float(module.margin)
    lam_old = _np(module.lambdas[index])
    zt = _np_aldr_scaled(_np(z))
    c = zt.shape[1]
    lp = log_softmax(zt / lam_old[:, None], axis=1)
    kl = (np.exp(lp) * (lp + np.log(c))).sum(1)
    lam = lam0 * (1 - kl / (alpha * np.log(c)))
    per = _ref_aldr(z, y, torch.from_numpy(lam), lam0, alpha, margin)
    return {"none": per, "sum": per.sum(), "mean": per.mean()}[module.reduction]


def _aldr_module_sample(gen, dtype, device):
    def batch(index):
        z = (torch.randn(len(index), 4, generator=gen, dtype=torch.float64) * 2).to(dtype=dtype, device=device)
        y = torch.randint(0, 4, (len(index),), generator=gen).to(device)
        return Sample((z, y, torch.tensor(index, device=device)), {}, grad_args=(0,))
    return ModuleSample(init={"num_samples": 10, "num_classes": 4, "lam0": 0.9, "alpha": 3.0, "margin": 0.5},
                        forward=batch([0, 2, 4, 6, 8]), steps=(batch([1, 2, 3, 4, 5]), batch([8, 9, 0, 1, 2])))


def _with_index(change):
    return lambda s: Sample((*s.args[:2], change(s.args[2])), s.kwargs, s.grad_args)


_ALDR_MODULE_ERRORS = (
    _LABEL_ERR,
    ErrorCase("negative index", _with_index(lambda i: torch.cat([i[:-1], i.new_tensor([-1])])), ValueError,
              r"index values must lie in \[0, 9\]"),
    ErrorCase("index past the end", _with_index(lambda i: i + 10), ValueError, r"index values must lie in \[0, 9\]"),
    ErrorCase("float index", _with_index(lambda i: i.double()), TypeError, r"index must have dtype torch.int64"),
    ErrorCase("index of another length", _with_index(lambda i: i[:-1]), ValueError, r"index must have shape \(N,\)"),
    ErrorCase("another class count", lambda s: Sample((s.args[0][:, :3], torch.zeros_like(s.args[1]), s.args[2]),
                                                      s.kwargs), ValueError, r"num_classes = 4"),
    ErrorCase("float target", lambda s: Sample((s.args[0], s.args[1].double(), s.args[2]), s.kwargs), TypeError,
              r"takes class-index targets"),
)


def _ref_ovr(input, target):
    import numpy as np
    z, y = _np(input), target.cpu().numpy()
    onehot = np.eye(z.shape[1])[y]
    return torch.from_numpy((np.logaddexp(0, z) * (1 - onehot) + np.logaddexp(0, -z) * onehot).sum(1))


def _eq_ovr(sample: Sample, reduction: str):
    z, y = sample.args[:2]
    rows = F.binary_cross_entropy_with_logits(z, F.one_hot(y, z.shape[1]).to(z.dtype), reduction="none").sum(1)
    return {"none": rows, "mean": rows.mean()}.get(reduction)


def _ref_sovr(input, target, frac=0.4, margin_threshold=None):
    import numpy as np
    z, y = _np(input), target.cpu().numpy()
    n = len(y)
    onehot = np.eye(z.shape[1])[y]
    margin = z[np.arange(n), y] - np.where(onehot > 0, -np.inf, z).max(1)
    if margin_threshold is not None:
        chosen = margin < float(margin_threshold)
    else:
        chosen = np.zeros(n, bool)
        chosen[np.argsort(margin, kind="stable")[: int(round(float(frac) * n))]] = True
    ce = -_np_probs(input, target)[2]
    return torch.from_numpy(np.where(chosen, _ref_ovr(input, target).numpy(), ce))


# Losses that take a model: a small seeded MLP, inputs in [0, 1] and a freshly seeded generator for the
# attack's random start; the float64 references replay that generator from its initial seed.


def _model_sample(**kwargs):
    def make(gen, dtype, device):
        model = small_model(gen, 4, 3, dtype, device)
        x = torch.rand(6, 4, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
        y = torch.randint(0, 3, (6,), generator=gen).to(device)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        return Sample((model, x, y), {**kwargs, "generator": torch.Generator().manual_seed(seed)}, grad_args=())
    return make


def _replayed_start(x, generator):
    gen = None if generator is None else torch.Generator().manual_seed(generator.initial_seed())
    return x.double() + 0.001 * torch.randn(x.shape, generator=gen, dtype=x.dtype).double()


def _ref_attack(model, x, y, objective, eps, step_size, steps, clamp, generator):
    """float64 copy of the model and the PGD loop (sign steps, ℓ∞ ball, box), written out."""
    import copy
    m = copy.deepcopy(model).double()
    x64 = x.detach().double()
    xa = _replayed_start(x.detach(), generator)
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(objective(m, x64, xa), xa)
        xa = torch.minimum(torch.maximum(xa.detach() + step_size * g.sign(), x64 - eps), x64 + eps)
        if clamp is not None:
            xa = xa.clamp(*clamp)
    return m, x64, xa.detach()


def _reduce_ref(per, reduction):
    return {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]


def _ref_trades(model, x, y, beta=6.0, eps=0.1, step_size=0.025, steps=10, clamp=(0.0, 1.0), generator=None,
                reduction="mean"):
    def kl(m, x0, xa):
        with torch.no_grad():
            lp0 = torch.log_softmax(m(x0), -1)
        return (lp0.exp() * (lp0 - torch.log_softmax(m(xa), -1))).sum()
    m, x64, xa = _ref_attack(model, x, y, kl, eps, step_size, steps, clamp, generator)
    with torch.no_grad():
        lp, lpa = torch.log_softmax(m(x64), -1), torch.log_softmax(m(xa), -1)
        per = -lp.gather(1, y[:, None]).squeeze(1) + beta * (lp.exp() * (lp - lpa)).sum(1)
    return _reduce_ref(per, reduction)


def _ref_smooth_adv(model, x, y, tau=1.0, nu=1.0, eps=0.1, step_size=0.025, steps=10, clamp=(0.0, 1.0),
                    generator=None, reduction="mean"):
    def centred(m, v):
        out = m(v)
        return out - out.mean(-1, keepdim=True)

    def gap(m, x0, xa):
        with torch.no_grad():
            ref = centred(m, x0)
        return (centred(m, xa) - ref).square().sum()
    m, x64, xa = _ref_attack(model, x, y, gap, eps, step_size, steps, clamp, generator)
    with torch.no_grad():
        lpy = torch.log_softmax(m(x64), -1).gather(1, y[:, None]).squeeze(1)
        phi = -lpy if tau == 1.0 else torch.expm1((tau - 1.0) * lpy) / (1.0 - tau)
        smooth = ((centred(m, xa) - centred(m, x64)).square().sum(1) + 1e-12).sqrt()
    return _reduce_ref(phi + nu * smooth, reduction)


_MODEL_ERRORS = (
    ErrorCase("float class targets", lambda s: Sample((s.args[0], s.args[1], s.args[2].double()), s.kwargs),
              TypeError, r"y must hold class indices of dtype torch.int64"),
    ErrorCase("class index out of range", lambda s: Sample((s.args[0], s.args[1], s.args[2] + 3), s.kwargs),
              ValueError, r"target class indices must lie in \[0, 2\]"),
    ErrorCase("negative eps", _bad_kwarg(eps=-0.1), ValueError, r"eps must be a finite number >= 0"),
    ErrorCase("float steps", _bad_kwarg(steps=2.5), ValueError, r"steps must be an integer >= 0"),
    ErrorCase("clamp the wrong way round", _bad_kwarg(clamp=(1.0, 0.0)), ValueError, r"clamp must be a pair"),
    ErrorCase("model output not (N, C)", lambda s: Sample((lambda v: s.args[0](v)[:, 0], *s.args[1:]), s.kwargs),
              ValueError, r"model\(x\) must return float logits of shape \(N, C\)"),
)


_SYM = {"label-symmetric", "bounded", "nonnegative"}

register(mae_prob_loss, module=MAEProbLoss, section="sec-robust-symmetric", input_kind="logits",
         output_range=(0.0, 2.0), properties=_SYM, gradient="exact", reference=_ref_mae,
         reference_name="float64 numpy 2(1-p_y)", sample=_sample(), extreme=_extreme(),
         errors=(_LABEL_ERR, _FLOAT_TARGET), formula=r"\|e_y-p\|_1=2(1-p_y)",
         references=("ghosh2017robust",), summary="MAE on the probabilities; symmetric, underfits")
register(gce_loss, module=GCELoss, section="sec-robust-gce", input_kind="logits",
         output_range=(0.0, 1 / 0.7), properties={"bounded", "nonnegative"}, gradient="exact", reference=_ref_gce,
         reference_name="float64 numpy (1-p_y^q)/q", sample=_sample(q=0.7), extreme=_extreme(q=0.7, truncation=0.5),
         errors=(_LABEL_ERR, ErrorCase("q out of range", _bad_kwarg(q=1.5), ValueError, r"q must lie in \(0, 1\]"),
                 ErrorCase("q = 0", _bad_kwarg(q=0.0), ValueError, r"q must lie in \(0, 1\]"),
                 ErrorCase("truncation out of range", _bad_kwarg(truncation=1.0), ValueError,
                           r"truncation must lie in the open interval")),
         formula=r"(1-p_y^q)/q", references=("zhang2018generalized",), summary="between CE (q→0) and MAE/2 (q=1)")
register(rce_loss, module=RCELoss, section="sec-robust-symmetric", input_kind="logits",
         output_range=(0.0, -LOG_1E_4), properties=_SYM, gradient="exact", reference=_ref_rce_official,
         reference_name="float64 numpy official RCE (one-hot clamped at 1e-4)", sample=_sample(), extreme=_extreme(),
         errors=(_LABEL_ERR, ErrorCase("log_zero >= 0", _bad_kwarg(log_zero=0.0), ValueError,
                                       r"log_zero must be a finite number < 0"),
                 ErrorCase("log_zero = -inf", _bad_kwarg(log_zero=-math.inf), ValueError,
                           r"log_zero must be a finite number < 0")),
         formula=r"-\sum_k p_k\log q_k=-A(1-p_y)", references=("wang2019symmetric",),
         summary="reverse cross-entropy; symmetric")
register(sce_loss, module=SCELoss, section="sec-robust-symmetric", input_kind="logits",
         output_range=(0.0, math.inf), properties={"nonnegative"}, gradient="exact", reference=_ref_sce,
         reference_name="float64 numpy αCE + β·official RCE", sample=_sample(alpha=0.3, beta=0.8), extreme=_extreme(),
         errors=(_LABEL_ERR, ErrorCase("negative alpha", _bad_kwarg(alpha=-1.0), ValueError,
                                       r"alpha must be a finite number >= 0"),
                 ErrorCase("infinite beta", _bad_kwarg(beta=math.inf), ValueError, r"beta must be a finite number")),
         formula=r"\alpha\,\mathrm{CE}+\beta\,\mathrm{RCE}", references=("wang2019symmetric",),
         summary="symmetric cross-entropy")
register(normalized_ce_loss, module=NormalizedCELoss, section="sec-robust-normalized", input_kind="logits",
         output_range=(0.0, 1.0), properties=_SYM, gradient="exact", reference=_ref_nce,
         reference_name="float64 numpy log p_y / Σ log p_k", sample=_sample(), extreme=_extreme(),
         errors=(_LABEL_ERR, _one_class_err("normalized_ce_loss")),
         formula=r"\log p_y/\sum_k\log p_k", references=("ma2020normalized",),
         summary="normalized CE; sums to 1 over the labels")
register(normalized_focal_loss, module=NormalizedFocalLoss, section="sec-robust-normalized",
         input_kind="logits", output_range=(0.0, 1.0), properties=_SYM, gradient="exact", reference=_ref_nfl,
         reference_name="float64 numpy normalized focal", sample=_sample(gamma=0.8), extreme=_extreme(gamma=0.8),
         errors=(_LABEL_ERR, _one_class_err("normalized_focal_loss"),
                 ErrorCase("negative gamma", _bad_kwarg(gamma=-0.5), ValueError, r"gamma must be a finite number >= 0")),
         formula=r"\frac{(1-p_y)^\gamma\log p_y}{\sum_k(1-p_k)^\gamma\log p_k}", references=("ma2020normalized",),
         summary="normalized focal loss")
register(apl_loss, module=APLLoss, section="sec-robust-apl", input_kind="logits",
         output_range=(0.0, 1.0 - LOG_1E_4), properties={"label-symmetric", "bounded", "nonnegative"}, gradient="exact",
         reference=_ref_apl, reference_name="float64 numpy NCE + official RCE", sample=_sample(active="nce", passive="rce"),
         extreme=_extreme(active="nfl", passive="rce"),
         errors=(_LABEL_ERR, _one_class_err("apl_loss"),
                 ErrorCase("unknown active", _bad_kwarg(active="ce"), ValueError, r"active must be one of"),
                 ErrorCase("unknown passive", _bad_kwarg(passive="ce"), ValueError, r"passive must be one of"),
                 ErrorCase("negative gamma", _bad_kwarg(gamma=-1.0), ValueError, r"gamma must be a finite number >= 0"),
                 ErrorCase("log_zero >= 0", _bad_kwarg(log_zero=1.0), ValueError, r"log_zero must be a finite number < 0")),
         formula=r"\alpha L_{\text{active}}+\beta L_{\text{passive}}", references=("ma2020normalized",),
         summary="active + passive: robust and fits")
register(aldr_kl_loss, module=None, section="sec-robust-aldr", input_kind="logits",
         output_range=(-math.inf, math.inf), properties=set(), gradient="exact", reference=_ref_aldr,
         reference_name="float64 scipy ALDR-KL at given λ (official ALDRLoss_V1 formula, scale clamped at 1e-2)",
         sample=_aldr_sample, extreme=_aldr_extreme,
         errors=(_LABEL_ERR,
                 ErrorCase("alpha <= 1", _bad_kwarg(alpha=1.0), ValueError, r"alpha must be a finite number > 1"),
                 ErrorCase("alpha = inf", _bad_kwarg(alpha=math.inf), ValueError, r"alpha must be a finite number > 1"),
                 ErrorCase("lam0 = 0", _bad_kwarg(lam0=0.0), ValueError, r"lam0 must be a finite number > 0"),
                 ErrorCase("margin = inf", _bad_kwarg(margin=math.inf), ValueError, r"margin must be finite"),
                 ErrorCase("negative lambda", lambda s: Sample((*s.args[:2], -s.args[2]), s.kwargs), ValueError,
                           r"every entry of lam must be a finite number > 0"),
                 ErrorCase("spatial logits", lambda s: Sample((s.args[0][..., None], s.args[1][:, None], s.args[2]),
                                                              s.kwargs), ValueError, r"input must have shape \(N, C\)")),
         formula=r"\lambda_i\log\frac1C\sum_ke^{(\delta_{k,y}+\tilde z_k-\tilde z_y)/\lambda_i}-\frac{\alpha\log C}{2\lambda_0}(\lambda_i-\lambda_0)^2",
         references=("zhu2023label",), summary="LDR-KL with a per-sample adaptive temperature (stateless part)")
register_module(ALDRKLLoss, section="sec-robust-aldr", input_kind="logits", output_range=(-math.inf, math.inf),
                properties=set(), gradient="exact", reference=_ref_aldr_module,
                reference_name="float64 scipy: λ update from the buffer before the call, then ALDR-KL",
                sample=_aldr_module_sample, state=("lambdas",), errors=_ALDR_MODULE_ERRORS,
                references=("zhu2023label",), formula=r"\lambda_i\leftarrow\lambda_0(1-\mathrm{KL}(p_i\|u)/(\alpha\log C))",
                summary="ALDR-KL with its per-sample temperature buffer")
register(ovr_loss, module=OVRLoss, section="sec-robust-adversarial", input_kind="logits",
         output_range=(0.0, math.inf), properties={"convex", "nonnegative"}, gradient="exact", reference=_ref_ovr,
         reference_name="float64 numpy Σ_k binary logistic", sample=_sample(), extreme=_extreme(), errors=(_LABEL_ERR,),
         equivalent=Equivalent("builtin", "Σ_k F.binary_cross_entropy_with_logits(z, onehot)", _eq_ovr),
         formula=r"\log(1+e^{-z_y})+\sum_{k\ne y}\log(1+e^{z_k})", references=("kanai2023onevstherest",),
         summary="one-vs-the-rest logistic loss")
register(sovr_loss, module=SOVRLoss, section="sec-robust-adversarial", input_kind="logits",
         output_range=(0.0, math.inf), properties={"nonnegative"}, gradient="exact", reference=_ref_sovr,
         reference_name="float64 numpy margin ranking + OVR/CE", sample=_sample(frac=0.5), extreme=_extreme(frac=0.5),
         errors=(_LABEL_ERR, ErrorCase("frac > 1", _bad_kwarg(frac=1.5), ValueError, r"frac must lie in \[0, 1\]"),
                 ErrorCase("infinite margin_threshold", _bad_kwarg(margin_threshold=math.inf), ValueError,
                           r"margin_threshold must be finite")),
         formula=r"\mathbb 1[i\in\mathcal I]\ell_{\text{OVR}}+\mathbb 1[i\notin\mathcal I]\ell_{\text{CE}}",
         references=("kanai2023onevstherest",),
         summary="OVR for the small-margin fraction of the batch, CE for the rest")
register(trades_loss, module=None, section="sec-robust-adversarial", input_kind="model",
         output_range=(0.0, math.inf), properties={"nonnegative"}, gradient="exact", reference=_ref_trades,
         reference_name="float64 replay: the seeded random start, the PGD-on-KL loop, CE + β KL",
         sample=_model_sample(beta=2.0, eps=0.15, step_size=0.03, steps=3), errors=_MODEL_ERRORS, compile=False,
         formula=r"\mathrm{CE}(f(x),y)+\beta\max_{\|x'-x\|_\infty\le\epsilon}\mathrm{KL}(f(x)\|f(x'))",
         references=("zhang2019theoretically", "madry2018towards"),
         summary="TRADES: clean CE plus the worst-case KL in an ε-ball")
register(smooth_adv_comp_sum_loss, module=None, section="sec-robust-adversarial", input_kind="model",
         output_range=(0.0, math.inf), properties={"nonnegative"}, gradient="exact", reference=_ref_smooth_adv,
         reference_name="float64 replay: the seeded random start, the PGD loop, Φ^τ + ν·smooth term",
         sample=_model_sample(tau=1.5, nu=0.5, eps=0.15, step_size=0.03, steps=3),
         errors=(*_MODEL_ERRORS, ErrorCase("tau > 2", _bad_kwarg(tau=2.5), ValueError, r"tau must lie in \[0, 2\]")),
         compile=False, formula=r"\Phi^\tau(f(x),y)+\nu\max_{\|x'-x\|_\infty\le\epsilon}\|\bar f(x')-\bar f(x)\|_2",
         references=("mao2023crossentropy",), summary="comp-sum loss plus a smooth adversarial term")
