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
one value per sample.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lossbook import validation as V
from lossbook.classification import _finish, _flatten, _off_target_mask, log1m_softmax
from lossbook.registry import ErrorCase, Sample, module_twin, register
from lossbook.registry import as_numpy as _np
from lossbook.registry import with_kwargs as _bad_kwarg
from lossbook.registry import extreme_logits as _extreme
from lossbook.registry import label_out_of_range as _bad_label
from lossbook.registry import logits_sample as _sample
from lossbook.utils import check_reduction, reduce_loss

__all__ = [
    "transition_matrix", "corrupt_labels",
    "mae_prob_loss", "gce_loss", "rce_loss", "sce_loss", "normalized_ce_loss", "normalized_focal_loss",
    "normalize_loss", "apl_loss", "aldr_kl_loss", "aldr_lambda_update", "is_symmetric",
    "ovr_loss", "sovr_loss", "logit_margin", "pgd_attack", "trades_loss", "smooth_adv_comp_sum_loss",
    "MAEProbLoss", "GCELoss", "RCELoss", "SCELoss", "NormalizedCELoss", "NormalizedFocalLoss", "APLLoss",
    "ALDRKLLoss", "OVRLoss", "SOVRLoss",
]

LOG_1E_4 = math.log(1e-4)


# --------------------------------------------------------------------------- noise models


def transition_matrix(num_classes: int, rate: float, *, kind: str = "symmetric",
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Class-conditional noise matrix :math:`T_{ij} = P(\tilde y = j \mid y = i)`.

    * ``"symmetric"``: keep the label with probability :math:`1-\eta`, otherwise
      flip it to one of the :math:`C-1` *other* classes uniformly:
      :math:`T = (1-\eta) I + \frac{\eta}{C-1}(\mathbf 1\mathbf 1^\top - I)`.
    * ``"pairflip"``: :math:`y \to (y+1) \bmod C` with probability :math:`\eta`.

    Example:
        >>> transition_matrix(3, 0.3, kind="pairflip")
        tensor([[0.7000, 0.3000, 0.0000],
                [0.0000, 0.7000, 0.3000],
                [0.3000, 0.0000, 0.7000]], dtype=torch.float64)
    """
    if not (isinstance(num_classes, int) and num_classes >= 2):
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not (isinstance(rate, (int, float)) and 0.0 <= rate <= 1.0):
        raise ValueError(f"rate must lie in [0, 1], got {rate!r}")
    eye = torch.eye(num_classes, dtype=dtype)
    if kind == "symmetric":
        return (1 - rate) * eye + rate / (num_classes - 1) * (1 - eye)
    if kind == "pairflip":
        return (1 - rate) * eye + rate * eye.roll(1, dims=1)
    raise ValueError(f"kind must be 'symmetric' or 'pairflip', got {kind!r}")


def corrupt_labels(y: torch.Tensor, rate: float, *, kind: str = "symmetric", num_classes: int,
                   generator: torch.Generator | None = None, matrix: torch.Tensor | None = None) -> torch.Tensor:
    r"""Draw noisy labels :math:`\tilde y_i \sim T_{y_i,\cdot}` (a new tensor; ``y`` is untouched).

    ``kind`` selects :func:`transition_matrix`; pass ``matrix`` (``(C, C)``,
    rows summing to 1) for any other class-conditional noise (then ``rate`` and
    ``kind`` are ignored). Each label is corrupted independently, so the
    realised noise rate is :math:`\eta` only in expectation.

    Example:
        >>> y = torch.zeros(10000, dtype=torch.long)
        >>> noisy = corrupt_labels(y, 0.4, num_classes=10, generator=torch.Generator().manual_seed(0))
        >>> round(float((noisy != y).double().mean()), 1), int(noisy.max())
        (0.4, 9)
    """
    V.check_class_target(y, num_classes)
    T = transition_matrix(num_classes, rate, kind=kind) if matrix is None else matrix.double()
    if T.shape != (num_classes, num_classes):
        raise ValueError(f"matrix must have shape ({num_classes}, {num_classes}), got {tuple(T.shape)}")
    if y.numel() == 0:
        return y.clone()
    rows = T[y.reshape(-1).cpu()]
    out = torch.multinomial(rows, 1, generator=generator).squeeze(1)
    return out.reshape(y.shape).to(y.device)


# --------------------------------------------------------------------------- symmetric and bounded losses


def _one_minus_pt(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """:math:`1 - p_t` as ``-expm1(log p_t)``, with :math:`\\log p_t` from the fused cross-entropy kernel."""
    return -torch.expm1(-F.cross_entropy(z, t, reduction="none"))


def mae_prob_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""MAE between the one-hot label and the softmax: :math:`\|e_y - p\|_1 = 2(1 - p_y)`.

    Symmetric — :math:`\sum_k \ell(z, k) = 2(C-1)` for every :math:`z` — hence
    tolerant to symmetric label noise with :math:`\eta < (C-1)/C`, and bounded
    in :math:`[0, 2]`; but it underfits, because its gradient
    :math:`-2p_y(e_y - p)` vanishes on hard samples. (Not the regression MAE.)
    :math:`1-p_y` is ``-expm1(log p_y)``, with :math:`\log p_y` from the fused cross-entropy
    kernel: one pass over the logits, and a finite gradient where :math:`p_y` rounds to 1.

    Reference: Ghosh, Kumar & Sastry (2017), *Robust Loss Functions under Label Noise for Deep Neural Networks*.

    Example:
        >>> mae_prob_loss(torch.zeros(1, 4), torch.tensor([0]))
        tensor(1.5000)
    """
    z, t, shape = _flatten(input, target)
    check_reduction(reduction)
    loss = 2.0 * _one_minus_pt(z, t)
    return _finish(loss, shape, input, reduction)


def gce_loss(input: torch.Tensor, target: torch.Tensor, *, q: float = 0.7, truncation: float | None = None,
             reduction: str = "mean") -> torch.Tensor:
    r"""Generalized cross-entropy :math:`L_q = (1 - p_y^q)/q`, optionally truncated.

    Interpolates between cross-entropy (:math:`q\to0`) and MAE/2
    (:math:`q = 1`). Computed as :math:`-\mathrm{expm1}(q\log p_y)/q`. The
    truncated loss is :math:`\min(L_q(p_y), L_q(k))` for a threshold
    :math:`k\in(0,1)`: samples with :math:`p_y < k` (likely mislabelled) get a
    constant loss and no gradient.

    Args:
        q: :math:`q \in (0, 1]`.
        truncation: ``None`` or :math:`k \in (0, 1)`.

    Reference: Zhang & Sabuncu (2018), *Generalized Cross Entropy Loss for Training
    Deep Neural Networks with Noisy Labels*.

    Example:
        >>> gce_loss(torch.zeros(1, 4), torch.tensor([0]), q=1.0)
        tensor(0.7500)
    """
    z, t, shape = _flatten(input, target)
    if not (isinstance(q, (int, float)) and 0.0 < q <= 1.0):
        raise ValueError(f"q must lie in (0, 1], got {q!r}")
    if truncation is not None:
        V.check_open_unit(truncation, "truncation")
    check_reduction(reduction)
    logp_y = -F.cross_entropy(z, t, reduction="none")
    loss = -torch.expm1(q * logp_y) / q
    if truncation is not None:
        loss = loss.clamp(max=(1.0 - truncation ** q) / q)
    return _finish(loss, shape, input, reduction)


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
        log_zero: :math:`A < 0`.

    Reference: Wang et al. (2019), *Symmetric Cross Entropy for Robust Learning with Noisy Labels*.

    Example:
        >>> rce_loss(torch.zeros(1, 2), torch.tensor([0]), log_zero=-4.0)
        tensor(2.)
    """
    z, t, shape = _flatten(input, target)
    _check_log_zero(log_zero)
    check_reduction(reduction)
    loss = -log_zero * _one_minus_pt(z, t)
    return _finish(loss, shape, input, reduction)


def _check_log_zero(log_zero: float) -> None:
    if not (isinstance(log_zero, (int, float)) and math.isfinite(log_zero) and log_zero < 0):
        raise ValueError(f"log_zero must be a finite number < 0, got {log_zero!r}")


def sce_loss(input: torch.Tensor, target: torch.Tensor, *, alpha: float = 0.1, beta: float = 1.0,
             log_zero: float = LOG_1E_4, reduction: str = "mean") -> torch.Tensor:
    r"""Symmetric cross-entropy :math:`\alpha\,\mathrm{CE} + \beta\,\mathrm{RCE}`.

    The defaults :math:`\alpha = 0.1, \beta = 1` are the paper's CIFAR-10 values.

    Reference: Wang et al. (2019), *Symmetric Cross Entropy for Robust Learning with Noisy Labels*.

    Example:
        >>> sce_loss(torch.zeros(1, 2), torch.tensor([0]), alpha=1.0, beta=0.0)
        tensor(0.6931)
    """
    z, t, shape = _flatten(input, target)
    V.check_nonnegative(alpha, "alpha")
    V.check_nonnegative(beta, "beta")
    _check_log_zero(log_zero)
    check_reduction(reduction)
    ce = F.cross_entropy(z, t, reduction="none")
    rce = -log_zero * -torch.expm1(-ce)
    return _finish(alpha * ce + beta * rce, shape, input, reduction)


def normalized_ce_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""Normalized cross-entropy :math:`\mathrm{NCE} = \frac{\log p_y}{\sum_k \log p_k} \in [0, 1]`.

    Any loss divided by its sum over all labels is symmetric: here
    :math:`\sum_k \mathrm{NCE}(z, k) = 1`. (Not noise-contrastive estimation.)

    Reference: Ma et al. (2020), *Normalized Loss Functions for Deep Learning with Noisy Labels*.

    Example:
        >>> normalized_ce_loss(torch.zeros(1, 4), torch.tensor([0]))
        tensor(0.2500)
    """
    z, t, shape = _flatten(input, target)
    check_reduction(reduction)
    logp = F.log_softmax(z, -1)
    loss = logp.gather(-1, t[:, None]).squeeze(-1) / logp.sum(-1)
    return _finish(loss, shape, input, reduction)


def normalized_focal_loss(input: torch.Tensor, target: torch.Tensor, *, gamma: float = 0.5,
                          reduction: str = "mean") -> torch.Tensor:
    r"""Normalized focal loss :math:`\frac{(1-p_y)^\gamma\log p_y}{\sum_k (1-p_k)^\gamma\log p_k} \in [0, 1]`.

    :math:`(1-p)^\gamma` is :math:`\exp(\gamma\log(1-p))` with an accurate
    :math:`\log(1-p)` (:func:`lossbook.classification.log1m_softmax`), so the
    gradient is finite for :math:`\gamma < 1` at saturated logits. The value
    matches the official code; its gradient does not quite: the official code
    treats the factors :math:`(1-p_k)^\gamma` as constants (``.data``), while
    this function differentiates the stated formula.

    Reference: Ma et al. (2020), *Normalized Loss Functions for Deep Learning with Noisy Labels*.

    Example:
        >>> normalized_focal_loss(torch.zeros(1, 4), torch.tensor([0]))
        tensor(0.2500)
    """
    z, t, shape = _flatten(input, target)
    V.check_nonnegative(gamma, "gamma")
    check_reduction(reduction)
    terms = torch.exp(gamma * log1m_softmax(z)) * F.log_softmax(z, -1)
    loss = terms.gather(-1, t[:, None]).squeeze(-1) / terms.sum(-1)
    return _finish(loss, shape, input, reduction)


def normalize_loss(loss_fn: Callable[..., torch.Tensor], num_classes: int) -> Callable[..., torch.Tensor]:
    r"""Normalise any classification loss: :math:`L_{\text{norm}}(f, y) = L(f, y) / \sum_k L(f, k)`.

    ``loss_fn(input, target, reduction="none")`` must return per-sample
    non-negative values. The result is symmetric (its sum over labels is 1),
    hence noise-tolerant; it costs :math:`C` evaluations of ``loss_fn``.

    Example:
        >>> from lossbook.classification import focal_loss
        >>> nfl = normalize_loss(focal_loss, 3)
        >>> z = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
        >>> sum(nfl(z, torch.full((2,), k), reduction="none") for k in range(3))
        tensor([1.0000, 1.0000])
    """
    if not (isinstance(num_classes, int) and num_classes >= 2):
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")

    def normalized(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", **kwargs) -> torch.Tensor:
        check_reduction(reduction)
        own = loss_fn(input, target, reduction="none", **kwargs)
        total = sum(loss_fn(input, torch.full_like(target, k), reduction="none", **kwargs)
                    for k in range(num_classes))
        return reduce_loss(own / total, reduction)

    normalized.__name__ = f"normalized_{getattr(loss_fn, '__name__', 'loss')}"
    normalized.__doc__ = f"{normalized.__name__}: {getattr(loss_fn, '__name__', 'loss')} divided by its sum over the labels."
    return normalized


_ACTIVE = ("nce", "nfl")
_PASSIVE = ("rce", "mae")


def apl_loss(input: torch.Tensor, target: torch.Tensor, *, active: str = "nce", passive: str = "rce",
             alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5, log_zero: float = LOG_1E_4,
             reduction: str = "mean") -> torch.Tensor:
    r"""Active–Passive Loss :math:`\alpha L_{\text{active}} + \beta L_{\text{passive}}`.

    Active (pushes :math:`p_y` up directly): NCE or NFL (``gamma``). Passive
    (pushes the other :math:`p_k` down): RCE (``log_zero``) or MAE, the latter
    taken as :math:`1 - p_y` (half of :func:`mae_prob_loss`, as in the official
    code). Both parts are symmetric, so the sum is robust; the active part
    fixes the underfitting of a passive loss alone.

    Reference: Ma et al. (2020), *Normalized Loss Functions for Deep Learning with Noisy Labels*.

    Example:
        >>> apl_loss(torch.zeros(1, 4), torch.tensor([0]), active="nce", passive="mae")
        tensor(1.)
    """
    if active not in _ACTIVE:
        raise ValueError(f"active must be one of {_ACTIVE}, got {active!r}")
    if passive not in _PASSIVE:
        raise ValueError(f"passive must be one of {_PASSIVE}, got {passive!r}")
    V.check_nonnegative(alpha, "alpha")
    V.check_nonnegative(beta, "beta")
    check_reduction(reduction)
    a = (normalized_ce_loss(input, target, reduction="none") if active == "nce"
         else normalized_focal_loss(input, target, gamma=gamma, reduction="none"))
    p = (rce_loss(input, target, log_zero=log_zero, reduction="none") if passive == "rce"
         else 0.5 * mae_prob_loss(input, target, reduction="none"))
    return reduce_loss(alpha * a + beta * p, reduction)


# --------------------------------------------------------------------------- adaptive LDR-KL


def _aldr_scaled(z: torch.Tensor) -> torch.Tensor:
    r""":math:`\tilde z = z / (\|z\|_1 / C)` (the official code's scale normalisation)."""
    scale = z.abs().mean(-1, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
    return z / scale


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
    As in the official code, :math:`\tilde z = z/(\|z\|_1/C)`; the code's
    :math:`10^{-5}` smoothing of :math:`p` is replaced by an exact log-space KL.

    Example:
        >>> aldr_lambda_update(torch.zeros(1, 4), torch.ones(1))
        tensor([1.])
    """
    V.check_floating(input, "input")
    V.check_positive(lam0, "lam0")
    if not (isinstance(alpha, (int, float)) and alpha > 1):
        raise ValueError(f"alpha must be a number > 1 (it keeps every lambda positive), got {alpha!r}")
    with torch.no_grad():
        z = _aldr_scaled(input.float() if input.dtype in (torch.float16, torch.bfloat16) else input)
        logp = F.log_softmax(z / lam_old.to(z.dtype)[:, None], -1)
        log_c = math.log(z.shape[-1])
        kl = (logp.exp() * (logp + log_c)).sum(-1)
        return (lam0 * (1.0 - kl / (alpha * log_c))).to(lam_old.dtype)


def aldr_kl_loss(input: torch.Tensor, target: torch.Tensor, lam: torch.Tensor, *, lam0: float = 1.0,
                 alpha: float = 2.0, margin: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    r"""Adaptive LDR-KL loss for given per-sample temperatures :math:`\lambda_i` (the stateless part of :class:`ALDRKLLoss`).

    .. math::
        \ell_i = \lambda_i \log\frac1C\sum_k e^{(\delta_{k,y_i} + \tilde z_{ik} - \tilde z_{iy_i})/\lambda_i}
                 - \frac{\alpha\log C}{2\lambda_0}(\lambda_i - \lambda_0)^2

    with :math:`\tilde z = z/(\|z\|_1/C)` and :math:`\delta_{k,y} = c\,\mathbb 1[k\ne y]`
    (``margin``). The second term does not depend on the logits; it is kept so
    the value matches the official code (``ALDRLoss_V1``), against which this
    formula was checked. Use :class:`ALDRKLLoss` for training: it updates
    :math:`\lambda_i` with :func:`aldr_lambda_update` before calling this.

    Args:
        lam: per-sample temperatures ``(N,)``, positive.

    Reference: Zhu, Ying & Yang (2023), *Label Distributionally Robust Losses for
    Multi-class Classification* (ALDR-KL).

    Example:
        >>> aldr_kl_loss(torch.zeros(1, 4), torch.tensor([0]), torch.ones(1), margin=0.0)
        tensor(0.)
    """
    z, t, shape = _flatten(input, target)
    if input.dim() != 2:
        raise ValueError(f"ALDR-KL takes logits of shape (N, C), got {tuple(input.shape)}")
    V.check_floating(lam, "lam")
    V.check_same_device(input=input, lam=lam)
    if lam.shape != (input.shape[0],):
        raise ValueError(f"lam must have shape (N,) = ({input.shape[0]},), got {tuple(lam.shape)}")
    V.check_values_above(lam, 0.0, "lam")
    V.check_positive(lam0, "lam0")
    if not (isinstance(alpha, (int, float)) and alpha > 1):
        raise ValueError(f"alpha must be a number > 1 (it keeps every lambda positive), got {alpha!r}")
    check_reduction(reduction)
    zt = _aldr_scaled(z)
    lam_c = lam.to(z.dtype)[:, None]
    u = (zt - zt.gather(-1, t[:, None]) + margin * _off_target_mask(zt, t).to(zt.dtype)) / lam_c
    log_c = math.log(z.shape[-1])
    loss = lam_c[:, 0] * (torch.logsumexp(u, -1) - log_c) - alpha * log_c / (2 * lam0) * (lam_c[:, 0] - lam0) ** 2
    return _finish(loss, shape, input, reduction)


class ALDRKLLoss(nn.Module):
    r"""Adaptive LDR-KL loss with a per-sample temperature buffer (Zhu, Ying & Yang, 2023).

    ``forward(input, target, index)``: ``index`` holds the dataset positions of
    the batch's samples. Each call first updates their temperatures with
    :func:`aldr_lambda_update` (from the *old* :math:`\lambda_i`, detached) and
    stores them, then returns :func:`aldr_kl_loss` at the new temperatures. As
    :math:`\alpha\to\infty`, :math:`\lambda_i = \lambda_0` and it reduces to
    LDR-KL of the scale-normalised logits. Checked against the official code.

    Args:
        num_samples: size of the training set (length of the buffer).
        num_classes: :math:`C`.
        lam0: reference temperature :math:`\lambda_0 > 0`.
        alpha: :math:`\alpha > 1`.
        margin: :math:`c`.

    Example:
        >>> loss = ALDRKLLoss(num_samples=3, num_classes=4)
        >>> _ = loss(torch.zeros(2, 4), torch.tensor([0, 1]), torch.tensor([0, 2]))
        >>> loss.lambdas
        tensor([1., 1., 1.])
    """

    def __init__(self, num_samples: int, num_classes: int, *, lam0: float = 1.0, alpha: float = 2.0,
                 margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        V.check_positive(lam0, "lam0")
        if not (isinstance(alpha, (int, float)) and alpha > 1):
            raise ValueError(f"alpha must be a number > 1, got {alpha!r}")
        check_reduction(reduction)
        self.num_classes, self.lam0, self.alpha, self.margin, self.reduction = num_classes, lam0, alpha, margin, reduction
        self.register_buffer("lambdas", torch.full((num_samples,), float(lam0)))

    def forward(self, input: torch.Tensor, target: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if input.shape[-1] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} classes, got input of shape {tuple(input.shape)}")
        lam = aldr_lambda_update(input, self.lambdas[index], lam0=self.lam0, alpha=self.alpha)
        self.lambdas[index] = lam.to(self.lambdas.dtype)
        return aldr_kl_loss(input, target, lam.to(input.dtype), lam0=self.lam0, alpha=self.alpha,
                            margin=self.margin, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"num_samples={self.lambdas.numel()}, num_classes={self.num_classes}, lam0={self.lam0}, alpha={self.alpha}, margin={self.margin}"


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
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    z = torch.randn(trials, num_classes, generator=gen, dtype=torch.float64) * scale
    total = sum(loss_fn(z, torch.full((trials,), k, dtype=torch.long), reduction="none") for k in range(num_classes))
    return bool(((total - total[0]).abs() <= rtol * total.abs().max().clamp_min(1.0)).all())


# --------------------------------------------------------------------------- adversarial: OVR and SOVR


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
    z, t, shape = _flatten(input, target)
    check_reduction(reduction)
    off = _off_target_mask(z, t)
    loss = torch.where(off, F.softplus(z), F.softplus(-z)).sum(-1)
    return _finish(loss, shape, input, reduction)


def logit_margin(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Per-sample logit margin :math:`z_y - \max_{k\ne y} z_k` (negative means misclassified).

    Example:
        >>> logit_margin(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([0]))
        tensor([1.])
    """
    z, t, shape = _flatten(input, target)
    off = _off_target_mask(z, t)
    m = z.gather(-1, t[:, None]).squeeze(-1) - z.masked_fill(~off, -math.inf).amax(-1)
    return m.reshape(shape).to(input.dtype)


def sovr_loss(input: torch.Tensor, target: torch.Tensor, *, frac: float = 0.4, margin_threshold: float | None = None,
              reduction: str = "mean") -> torch.Tensor:
    r"""Switching one-vs-the-rest loss: OVR for the important (small-margin) samples, CE for the rest.

    .. math::
        \ell_i = \mathbb 1[i\in\mathcal I]\,\ell_{\text{OVR}}(z_i, y_i) + \mathbb 1[i\notin\mathcal I]\,\ell_{\text{CE}}(z_i, y_i)

    where :math:`\mathcal I` holds the ``round(frac * N)`` samples of the batch
    with the smallest logit margin :math:`z_y - \max_{k\ne y}z_k` (or, if
    ``margin_threshold`` is given, those with margin below it). The selection
    is a stop-gradient. In adversarial training ``input`` are the logits of the
    adversarial examples.

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
    z, t, shape = _flatten(input, target)
    check_reduction(reduction)
    if not (isinstance(frac, (int, float)) and 0.0 <= frac <= 1.0):
        raise ValueError(f"frac must lie in [0, 1], got {frac!r}")
    if margin_threshold is not None:
        if not (isinstance(margin_threshold, (int, float)) and math.isfinite(margin_threshold)):
            raise ValueError(f"margin_threshold must be a finite number or None, got {margin_threshold!r}")
    off = _off_target_mask(z, t)
    with torch.no_grad():
        margin = z.gather(-1, t[:, None]).squeeze(-1) - z.masked_fill(~off, -math.inf).amax(-1)
        if margin_threshold is not None:
            chosen = margin < margin_threshold
        else:
            n_sel = int(round(frac * z.shape[0]))
            chosen = torch.zeros_like(margin, dtype=torch.bool)
            if n_sel > 0:
                chosen = chosen.scatter(0, margin.topk(n_sel, largest=False).indices, True)
    ovr = torch.where(off, F.softplus(z), F.softplus(-z)).sum(-1)
    ce = -F.log_softmax(z, -1).gather(-1, t[:, None]).squeeze(-1)
    return _finish(torch.where(chosen, ovr, ce), shape, input, reduction)


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


def _check_attack(eps: float, step_size: float, steps: int, norm: str) -> None:
    V.check_nonnegative(eps, "eps")
    V.check_nonnegative(step_size, "step_size")
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")


def pgd_attack(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
               loss_fn: Callable[..., torch.Tensor] = F.cross_entropy, eps: float = 0.1,
               step_size: float = 0.025, steps: int = 10, norm: str = "linf",
               clamp: tuple[float, float] | None = (0.0, 1.0), random_start: bool = True,
               generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Projected gradient ascent on ``loss_fn(model(x'), y)`` within :math:`B_\epsilon(x)\cap[\text{clamp}]`.

    .. math:: x^{k+1} = \Pi_{B_\epsilon(x)\cap[0,1]^d}\big(x^k + \alpha\,\mathrm{sign}\,\nabla_x\ell(f(x^k), y)\big)

    (for ``norm="l2"`` the step is along the normalised gradient and the
    projection rescales onto the :math:`\ell_2` ball). ``random_start`` draws
    the start uniformly from the :math:`\ell_\infty` ball (or a scaled Gaussian
    direction for :math:`\ell_2`) with ``generator``. Gradients are taken with
    :func:`torch.autograd.grad` with respect to the input only, so the model's
    parameter gradients are untouched; the model's train/eval mode is the caller's choice.

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
    _check_attack(eps, step_size, steps, norm)
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
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x + _project(x_adv.detach() + _step(grad, step_size, norm) - x, eps, norm)
        if clamp is not None:
            x_adv = x_adv.clamp(*clamp)
    return x_adv.detach()


def _kl_batchmean(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac1N\sum_i\mathrm{KL}(p(x_i)\,\|\,p(x_i'))`."""
    return F.kl_div(F.log_softmax(logits_adv, -1), F.log_softmax(logits_clean, -1), reduction="batchmean",
                    log_target=True)


def trades_loss(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
                beta: float = 6.0, eps: float = 0.1, step_size: float = 0.025, steps: int = 10,
                clamp: tuple[float, float] | None = (0.0, 1.0),
                generator: torch.Generator | None = None) -> torch.Tensor:
    r"""TRADES: :math:`\mathrm{CE}(f(x), y) + \beta\max_{\|x'-x\|_\infty\le\epsilon}\mathrm{KL}(f(x)\,\|\,f(x'))`.

    The inner maximisation is PGD on the KL, started at
    :math:`x + 0.001\,\mathcal N(0, I)` (``generator``) as in the reference
    implementation. Returns the batch-mean loss (differentiable in the model's
    parameters); the model's mode is the caller's choice.

    Reference: Zhang et al. (2019), *Theoretically Principled Trade-off between Robustness and Accuracy*.

    Example:
        >>> model = torch.nn.Linear(2, 2)
        >>> loss = trades_loss(model, torch.full((4, 2), 0.5), torch.tensor([0, 1, 0, 1]), beta=0.0)
        >>> loss.requires_grad, float(loss.detach()) > 0
        (True, True)
    """
    V.check_nonnegative(beta, "beta")
    _check_attack(eps, step_size, steps, "linf")
    x = x.detach()
    with torch.no_grad():
        clean_ref = model(x).detach()
    x_adv = x + 0.001 * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(_kl_batchmean(clean_ref, model(x_adv)), x_adv)
        x_adv = x + (x_adv.detach() + step_size * grad.sign() - x).clamp(-eps, eps)
        if clamp is not None:
            x_adv = x_adv.clamp(*clamp)
    logits = model(x)
    return F.cross_entropy(logits, y) + beta * _kl_batchmean(logits, model(x_adv.detach()))


def _comp_sum(z: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Comp-sum loss :math:`\Phi^\tau(u)` of :math:`u = \sum_{k\ne y}e^{z_k-z_y} = 1/p_y - 1`.

    :math:`\tau = 1`: :math:`\log(1+u) = -\log p_y` (CE); :math:`\tau \ne 1`:
    :math:`\frac{(1+u)^{1-\tau}-1}{1-\tau} = \frac{p_y^{\tau-1}-1}{1-\tau}`
    (:math:`\tau = 0`: sum-exponential; :math:`\tau\in(1,2)`: GCE with
    :math:`q = \tau-1`; :math:`\tau = 2`: :math:`1-p_y`).
    """
    logp_y = F.log_softmax(z, -1).gather(-1, y[:, None]).squeeze(-1)
    if tau == 1.0:
        return -logp_y
    return torch.expm1((tau - 1.0) * logp_y) / (1.0 - tau)


def smooth_adv_comp_sum_loss(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
                             tau: float = 1.0, nu: float = 1.0, eps: float = 0.1, step_size: float = 0.025,
                             steps: int = 10, clamp: tuple[float, float] | None = (0.0, 1.0),
                             generator: torch.Generator | None = None) -> torch.Tensor:
    r"""A smooth adversarial comp-sum loss: comp-sum loss at :math:`x` plus a smooth adversarial term.

    .. math::
        L = \frac1N\sum_i\Big[\Phi^\tau(f(x_i), y_i) + \nu\max_{\|x'-x_i\|_\infty\le\epsilon}
            \big\|\bar f(x') - \bar f(x_i)\big\|_2\Big]

    where :math:`\Phi^\tau` is the comp-sum family (:math:`\tau = 1` is CE,
    :math:`\tau = 2` is :math:`1 - p_y`) and :math:`\bar f = f - \mathrm{mean}_k f_k`
    are the centred logits (the softmax is invariant to the mean). The inner
    maximum is approximated by PGD from a small random start (``generator``).

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
    V.check_nonnegative(nu, "nu")
    if not (isinstance(tau, (int, float)) and 0.0 <= tau <= 2.0):
        raise ValueError(f"tau must lie in [0, 2], got {tau!r}")
    _check_attack(eps, step_size, steps, "linf")
    x = x.detach()

    def centred(v: torch.Tensor) -> torch.Tensor:
        return v - v.mean(-1, keepdim=True)

    with torch.no_grad():
        ref = centred(model(x))
    x_adv = x + 0.001 * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
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
    return (_comp_sum(logits, y, float(tau)) + nu * smooth).mean()


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
    y = target.numpy()
    return lp, np.exp(lp), lp[np.arange(len(y)), y], y









_LABEL_ERR = ErrorCase("label out of range", _bad_label, ValueError, r"target class indices must lie in \[0, 3\]")
_FLOAT_TARGET = ErrorCase("float target", lambda s: Sample((s.args[0], s.args[1].double(), *s.args[2:]), s.kwargs),
                          TypeError, r"takes class-index targets")


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


def _ref_aldr(input, target, lam, lam0=1.0, alpha=2.0, margin=1.0):
    import numpy as np
    from scipy.special import logsumexp
    z, y, lam = _np(input), target.numpy(), _np(lam)
    c = z.shape[1]
    z = z / (np.abs(z).sum(1, keepdims=True) / c)
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


def _ref_ovr(input, target):
    import numpy as np
    z, y = _np(input), target.numpy()
    onehot = np.eye(z.shape[1])[y]
    return torch.from_numpy((np.logaddexp(0, z) * (1 - onehot) + np.logaddexp(0, -z) * onehot).sum(1))


def _ref_sovr(input, target, frac=0.4, margin_threshold=None):
    import numpy as np
    z, y = _np(input), target.numpy()
    n = len(y)
    onehot = np.eye(z.shape[1])[y]
    margin = z[np.arange(n), y] - np.where(onehot > 0, -np.inf, z).max(1)
    if margin_threshold is not None:
        chosen = margin < margin_threshold
    else:
        chosen = np.zeros(n, bool)
        chosen[np.argsort(margin, kind="stable")[: int(round(frac * n))]] = True
    ce = -_np_probs(input, target)[2]
    return torch.from_numpy(np.where(chosen, _ref_ovr(input, target).numpy(), ce))


_SYM = {"label-symmetric", "bounded", "nonnegative"}

register(mae_prob_loss, module=MAEProbLoss, section="sec-robust-symmetric", input_kind="logits",
         output_range=(0.0, 2.0), properties=_SYM, gradient="exact", reference=_ref_mae,
         reference_name="float64 numpy 2(1-p_y)", sample=_sample(), extreme=_extreme(),
         errors=(_LABEL_ERR, _FLOAT_TARGET), formula=r"\|e_y-p\|_1=2(1-p_y)",
         summary="MAE on the probabilities; symmetric, underfits")
register(gce_loss, module=GCELoss, section="sec-robust-gce", input_kind="logits",
         output_range=(0.0, 1 / 0.7), properties={"bounded", "nonnegative"}, gradient="exact", reference=_ref_gce,
         reference_name="float64 numpy (1-p_y^q)/q", sample=_sample(q=0.7), extreme=_extreme(q=0.7, truncation=0.5),
         errors=(_LABEL_ERR, ErrorCase("q out of range", _bad_kwarg(q=1.5), ValueError, r"q must lie in \(0, 1\]"),
                 ErrorCase("truncation out of range", _bad_kwarg(truncation=1.0), ValueError,
                           r"truncation must lie in the open interval")),
         formula=r"(1-p_y^q)/q", summary="between CE (q→0) and MAE/2 (q=1)")
register(rce_loss, module=RCELoss, section="sec-robust-symmetric", input_kind="logits",
         output_range=(0.0, -LOG_1E_4), properties=_SYM, gradient="exact", reference=_ref_rce_official,
         reference_name="float64 numpy official RCE (one-hot clamped at 1e-4)", sample=_sample(), extreme=_extreme(),
         errors=(_LABEL_ERR, ErrorCase("log_zero >= 0", _bad_kwarg(log_zero=0.0), ValueError,
                                       r"log_zero must be a finite number < 0")),
         formula=r"-\sum_k p_k\log q_k=-A(1-p_y)", summary="reverse cross-entropy; symmetric")
register(sce_loss, module=SCELoss, section="sec-robust-symmetric", input_kind="logits",
         output_range=(0.0, math.inf), properties={"nonnegative"}, gradient="exact", reference=_ref_sce,
         reference_name="float64 numpy αCE + β·official RCE", sample=_sample(alpha=0.3, beta=0.8), extreme=_extreme(),
         errors=(_LABEL_ERR,), formula=r"\alpha\,\mathrm{CE}+\beta\,\mathrm{RCE}", summary="symmetric cross-entropy")
register(normalized_ce_loss, module=NormalizedCELoss, section="sec-robust-normalized", input_kind="logits",
         output_range=(0.0, 1.0), properties=_SYM, gradient="exact", reference=_ref_nce,
         reference_name="float64 numpy log p_y / Σ log p_k", sample=_sample(), extreme=_extreme(), errors=(_LABEL_ERR,),
         formula=r"\log p_y/\sum_k\log p_k", summary="normalized CE; sums to 1 over the labels")
register(normalized_focal_loss, module=NormalizedFocalLoss, section="sec-robust-normalized",
         input_kind="logits", output_range=(0.0, 1.0), properties=_SYM, gradient="exact", reference=_ref_nfl,
         reference_name="float64 numpy normalized focal", sample=_sample(gamma=0.8), extreme=_extreme(gamma=0.8),
         errors=(_LABEL_ERR,), formula=r"\frac{(1-p_y)^\gamma\log p_y}{\sum_k(1-p_k)^\gamma\log p_k}",
         summary="normalized focal loss")
register(apl_loss, module=APLLoss, section="sec-robust-apl", input_kind="logits",
         output_range=(0.0, 1.0 - LOG_1E_4), properties={"label-symmetric", "bounded", "nonnegative"}, gradient="exact",
         reference=_ref_apl, reference_name="float64 numpy NCE + official RCE", sample=_sample(active="nce", passive="rce"),
         extreme=_extreme(active="nfl", passive="rce"),
         errors=(_LABEL_ERR, ErrorCase("unknown active", _bad_kwarg(active="ce"), ValueError, r"active must be one of"),
                 ErrorCase("unknown passive", _bad_kwarg(passive="ce"), ValueError, r"passive must be one of")),
         formula=r"\alpha L_{\text{active}}+\beta L_{\text{passive}}", summary="active + passive: robust and fits")
register(aldr_kl_loss, module=None, section="sec-robust-aldr", input_kind="logits",
         output_range=(-math.inf, math.inf), properties=set(), gradient="exact", reference=_ref_aldr,
         reference_name="float64 scipy ALDR-KL at given λ (official ALDRLoss_V1 formula)", sample=_aldr_sample,
         extreme=_aldr_extreme,
         errors=(_LABEL_ERR, ErrorCase("alpha <= 1", _bad_kwarg(alpha=1.0), ValueError, r"alpha must be a number > 1"),
                 ErrorCase("negative lambda", lambda s: Sample((*s.args[:2], -s.args[2]), s.kwargs), ValueError,
                           r"every entry of lam must be > 0")),
         formula=r"\lambda_i\log\frac1C\sum_ke^{(\delta_{k,y}+\tilde z_k-\tilde z_y)/\lambda_i}-\frac{\alpha\log C}{2\lambda_0}(\lambda_i-\lambda_0)^2",
         summary="LDR-KL with a per-sample adaptive temperature (stateless part)")
register(ovr_loss, module=OVRLoss, section="sec-robust-adversarial", input_kind="logits",
         output_range=(0.0, math.inf), properties={"convex", "nonnegative"}, gradient="exact", reference=_ref_ovr,
         reference_name="float64 numpy Σ_k binary logistic", sample=_sample(), extreme=_extreme(), errors=(_LABEL_ERR,),
         formula=r"\log(1+e^{-z_y})+\sum_{k\ne y}\log(1+e^{z_k})", summary="one-vs-the-rest logistic loss")
register(sovr_loss, module=SOVRLoss, section="sec-robust-adversarial", input_kind="logits",
         output_range=(0.0, math.inf), properties={"nonnegative"}, gradient="exact", reference=_ref_sovr,
         reference_name="float64 numpy margin ranking + OVR/CE", sample=_sample(frac=0.5), extreme=_extreme(frac=0.5),
         errors=(_LABEL_ERR, ErrorCase("frac > 1", _bad_kwarg(frac=1.5), ValueError, r"frac must lie in \[0, 1\]")),
         formula=r"\mathbb 1[i\in\mathcal I]\ell_{\text{OVR}}+\mathbb 1[i\notin\mathcal I]\ell_{\text{CE}}",
         summary="OVR for the small-margin fraction of the batch, CE for the rest")
