r"""Proper losses, output maps and Fenchel–Young losses (Chapter 2 of the book).

Scoring rules on probabilities (:func:`log_score`, :func:`brier_score`,
:func:`spherical_score`, and the improper :func:`focal_score`), the Savage
representation (:func:`savage_score`) and a numerical properness probe
(:func:`expected_score_minimizer`); Fenchel–Young losses
(:func:`fenchel_young_loss`) with their output maps (softmax,
:func:`sparsemax`, :func:`tsallis_entmax`), the sparsemax loss, top-k
sparse-softmax, the spherical family (:func:`z_loss`,
:func:`spherical_softmax`, :func:`taylor_softmax`), PaLM's unrelated
:func:`log_z_penalty`, and a learned, provably proper binary canonical link
(:class:`LearnedCanonicalLink`).

Conventions: ``probs`` and ``logits`` have shape ``(N, C)``; ``target`` is
int64 class indices ``(N,)`` or class probabilities ``(N, C)``. For a scoring
rule :math:`S(q, y)` a probability target :math:`\eta` gives the *expected*
score :math:`\sum_y \eta_y S(q, y)`, so every rule is linear in its target.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lossbook import validation as V
from lossbook.registry import module_twin
from lossbook.utils import check_reduction, finish, to_compute_dtype

__all__ = [
    "log_score", "brier_score", "spherical_score", "focal_score", "savage_score", "shannon_entropy",
    "gini_entropy", "expected_score_minimizer", "fenchel_young_loss", "sparsemax", "sparsemax_jacobian",
    "sparsemax_loss", "tsallis_entmax", "sparse_softmax", "sparse_softmax_loss", "z_loss", "log_z_penalty",
    "spherical_softmax", "taylor_softmax", "canonical_link_loss", "LearnedCanonicalLink",
    "LogScoreLoss", "BrierScoreLoss", "SphericalScoreLoss", "FocalScoreLoss", "FenchelYoungLoss",
    "SparsemaxLoss", "SparseSoftmaxLoss", "ZLoss",
]


def _check_probs(probs: torch.Tensor, target: torch.Tensor) -> bool:
    """Probabilities ``(N, C)`` on the simplex and a class-index or probability target; True for the latter."""
    soft = _check_scores(probs, target, "probs")
    V.check_simplex(probs, "probs")
    return soft


def _check_scores(x: torch.Tensor, target: torch.Tensor, name: str, soft: bool = True) -> bool:
    """Scores ``(N, C)`` with ``C >= 1`` and a target (a probability target must lie on the simplex).

    Shapes are checked first, so a float target of the wrong shape is a ``ValueError``
    even for a loss that takes only class indices (``soft=False``: ``TypeError``).
    """
    if isinstance(x, torch.Tensor) and x.dim() == 2 and x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one class (C >= 1), got shape {tuple(x.shape)}")
    is_soft = V.check_logits_target(x, target, name=name)
    if is_soft and not soft:
        raise TypeError(f"this loss takes class-index targets (torch.int64), got dtype {target.dtype}; "
                        "use target.long()")
    if is_soft:
        V.check_simplex(target, "target")
    return is_soft


def _onehot(target: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if target.is_floating_point():
        return target.to(like.dtype)
    return F.one_hot(target, like.shape[-1]).to(like.dtype)


def _per_class(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pick S(q, y) from per-class values (N, C): gather for indices, expectation for probabilities."""
    if target.is_floating_point():
        return (values * target.to(values.dtype)).sum(-1)
    return values.gather(-1, target.unsqueeze(-1)).squeeze(-1)


# --------------------------------------------------------------------------- scoring rules


def log_score(probs: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
              reduction: str = "mean") -> torch.Tensor:
    r"""Logarithmic score (log loss) :math:`S(q, y) = -\log q_y`.

    Strictly proper; its Bayes risk is the Shannon entropy. With a
    probability target :math:`\eta`: :math:`-\sum_y \eta_y\log q_y`, computed
    with ``xlogy`` so that :math:`0\log 0 = 0`. A zero probability on the
    observed class gives ``inf`` (the score is unbounded; we add no
    :math:`\epsilon`). Train on logits with :func:`torch.nn.functional.cross_entropy`;
    this form is for predictions that already are probabilities.

    Args:
        probs: ``(N, C)`` rows on the simplex (checked in eager mode; a NaN fails the check).
        target: int64 classes ``(N,)`` or probabilities ``(N, C)`` (on the simplex too).
        weight: optional per-sample weights ``(N,)``.
        reduction: ``"none"`` (shape ``(N,)``) | ``"mean"`` | ``"sum"``.

    Reference: Good (1952); Gneiting & Raftery (2007), *Strictly Proper Scoring Rules*.

    Example:
        >>> log_score(torch.tensor([[0.5, 0.5], [0.25, 0.75]]), torch.tensor([0, 1]), reduction="none")
        tensor([0.6931, 0.2877])
    """
    _check_probs(probs, target)
    check_reduction(reduction)
    q = to_compute_dtype(probs)
    if target.is_floating_point():
        loss = -torch.xlogy(target.to(q.dtype), q).sum(-1)
    else:
        loss = -torch.log(q.gather(-1, target.unsqueeze(-1)).squeeze(-1))
    return finish(loss, reduction, like=probs, weight=weight)


def brier_score(probs: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                reduction: str = "mean") -> torch.Tensor:
    r"""Brier (quadratic) score :math:`S(q, y) = \|q - e_y\|_2^2 \in [0, 2]`.

    Strictly proper; its Bayes risk is the Gini entropy :math:`1 - \|\eta\|^2`.
    A probability target gives the expected score
    :math:`\|q\|^2 - 2\langle q, \eta\rangle + 1 = \|q - \eta\|^2 + 1 - \|\eta\|^2`.
    scikit-learn's binary ``brier_score_loss`` is half of this sum over both
    classes (its multiclass form with ``scale_by_half=False`` equals it).

    Reference: Brier (1950), *Verification of Forecasts Expressed in Terms of Probability*.

    Example:
        >>> brier_score(torch.tensor([[0.5, 0.5], [0.25, 0.75]]), torch.tensor([0, 1]), reduction="none")
        tensor([0.5000, 0.1250])
    """
    _check_probs(probs, target)
    check_reduction(reduction)
    q = to_compute_dtype(probs)
    e = _onehot(target, q)
    loss = q.square().sum(-1) - 2 * (q * e).sum(-1) + e.sum(-1)
    return finish(loss, reduction, like=probs, weight=weight)


def spherical_score(probs: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                    reduction: str = "mean") -> torch.Tensor:
    r"""Spherical score (loss form) :math:`S(q, y) = -q_y/\|q\|_2 \in [-1, 0]`.

    Strictly proper and bounded; its Bayes risk is :math:`-\|\eta\|_2`.
    ``torch.linalg.vector_norm`` scales internally, so tiny probabilities do
    not underflow.

    Reference: Gneiting & Raftery (2007), Section 3.

    Example:
        >>> spherical_score(torch.tensor([[0.25, 0.75]]), torch.tensor([1]))
        tensor(-0.9487)
    """
    _check_probs(probs, target)
    check_reduction(reduction)
    q = to_compute_dtype(probs)
    loss = -_per_class(q, target) / torch.linalg.vector_norm(q, dim=-1)
    return finish(loss, reduction, like=probs, weight=weight)


def _focal_terms(q: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
    """-(1 - q)^γ log q, with the derivative at q = 1 taken as its limit (0 for γ > 0, -1 for γ = 0).

    Autograd of the plain formula gives 0·∞ = NaN at q = 1 for 0 < γ < 1.
    """
    inside = q < 1
    qs = torch.where(inside, q, torch.full_like(q, 0.5))
    edge = (1.0 - q) * (gamma == 0)  # value 0 at q = 1, slope -[γ = 0]
    return torch.where(inside, -torch.pow(1.0 - qs, gamma) * torch.log(qs), edge)


def focal_score(probs: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0,
                weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Focal loss on probabilities :math:`S(q, y) = -(1 - q_y)^\gamma \log q_y`: **not proper** for :math:`\gamma > 0`.

    Here for the properness probe of Chapter 2: the minimiser of its expected
    score is pulled toward the uniform distribution (for :math:`\eta = 0.8`
    and :math:`\gamma = 2`, :math:`q^* \approx 0.627`). The training loss on
    logits lives with the classification losses (Chapter 4). At :math:`q_y = 1`
    the gradient is its limit (0 for :math:`\gamma > 0`), not autograd's
    :math:`0\cdot\infty`; ``gamma`` may be a 0-d tensor.

    Reference: Lin et al. (2017), *Focal Loss for Dense Object Detection*.

    Example:
        >>> focal_score(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), gamma=1.0)
        tensor(0.3466)
    """
    _check_probs(probs, target)
    V.check_nonnegative(gamma, "gamma")
    check_reduction(reduction)
    q = to_compute_dtype(probs)
    if target.is_floating_point():
        # Classes with zero target mass contribute nothing: evaluate them at q = 1 so that
        # neither the value nor the gradient meets 0·log 0.
        t = target.to(q.dtype)
        q = torch.where(t > 0, q, torch.ones_like(q))
        loss = (t * _focal_terms(q, gamma)).sum(-1)
    else:
        loss = _focal_terms(q.gather(-1, target.unsqueeze(-1)).squeeze(-1), gamma)
    return finish(loss, reduction, like=probs, weight=weight)


def shannon_entropy(q: torch.Tensor) -> torch.Tensor:
    r"""Shannon entropy :math:`-\sum_k q_k\log q_k` of the last dimension (``xlogy``: :math:`0\log0=0`).

    Example:
        >>> shannon_entropy(torch.tensor([0.5, 0.5, 0.0]))
        tensor(0.6931)
    """
    return -torch.xlogy(q, q).sum(-1)


def gini_entropy(q: torch.Tensor) -> torch.Tensor:
    r"""Gini entropy :math:`1 - \|q\|^2` of the last dimension: the Bayes risk of the Brier score.

    Example:
        >>> gini_entropy(torch.tensor([0.5, 0.5]))
        tensor(0.5000)
    """
    return 1.0 - q.square().sum(-1)


def savage_score(bayes_risk: Callable[[torch.Tensor], torch.Tensor], probs: torch.Tensor,
                 target: torch.Tensor) -> torch.Tensor:
    r"""The proper score of a concave Bayes risk :math:`\underline S` (Savage representation), per sample.

    .. math::
        S(q, y) = \underline S(q) + \langle \nabla \underline S(q),\, e_y - q \rangle

    the tangent plane of :math:`\underline S` at :math:`q`, evaluated at the
    vertex :math:`e_y`. Every proper score has this form;
    :func:`shannon_entropy` gives :func:`log_score` and :func:`gini_entropy`
    gives :func:`brier_score`. The gradient comes from autograd (kept in the
    graph, so the result is differentiable in ``probs``).

    Reference: Savage (1971); Gneiting & Raftery (2007), Theorem 2.

    Example:
        >>> q = torch.tensor([[0.2, 0.8]], dtype=torch.float64)
        >>> savage_score(gini_entropy, q, torch.tensor([1]))
        tensor([0.0800], dtype=torch.float64)
    """
    _check_scores(probs, target, "probs")
    with torch.enable_grad():
        q = probs if probs.requires_grad else probs.detach().clone().requires_grad_(True)
        risk = bayes_risk(q)
        (grad,) = torch.autograd.grad(risk.sum(), q, create_graph=True)
    e = _onehot(target, q)
    out = risk + ((e - q) * grad).sum(-1)
    return out if probs.requires_grad else out.detach()


def expected_score_minimizer(score_fn: Callable[..., torch.Tensor], eta: torch.Tensor, *,
                             steps: int = 200) -> torch.Tensor:
    r"""Numerical properness probe: :math:`\arg\min_{q\in\Delta}\sum_y \eta_y S(q, y)`.

    Parametrises :math:`q = \mathrm{softmax}(v)` and runs L-BFGS (strong
    Wolfe line search, ``steps`` iterations, float64) from the uniform
    distribution. For a strictly proper score the result is :math:`\eta`
    (up to about :math:`10^{-6}` for interior :math:`\eta`).
    ``score_fn(probs, target, reduction="none")`` takes class-index targets.

    Args:
        score_fn: a scoring rule such as :func:`log_score`.
        eta: a probability vector ``(C,)`` (interior of the simplex).

    Example:
        >>> eta = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
        >>> expected_score_minimizer(brier_score, eta).round(decimals=4)
        tensor([0.2000, 0.3000, 0.5000], dtype=torch.float64)
    """
    eta = eta.detach().to(torch.float64)
    if eta.dim() != 1:
        raise ValueError(f"eta must be a probability vector (C,), got shape {tuple(eta.shape)}")
    c = eta.shape[0]
    v = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    classes = torch.arange(c)
    opt = torch.optim.LBFGS([v], lr=1.0, max_iter=steps, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        q = torch.softmax(v, -1).expand(c, c)
        loss = (eta * score_fn(q, classes, reduction="none")).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return torch.softmax(v.detach(), -1)


# --------------------------------------------------------------------------- output maps


def _sparsemax_threshold(z: torch.Tensor) -> torch.Tensor:
    """τ(z) on the last dimension, differentiable (through the sorted values) where the support is fixed."""
    zs, _ = torch.sort(z, dim=-1, descending=True)
    cssv = zs.cumsum(-1)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    support = (1 + k * zs) > cssv
    kz = support.sum(-1, keepdim=True)  # ≥ 1 always (the largest entry)
    return (cssv.gather(-1, kz - 1) - 1) / kz.to(z.dtype)


def sparsemax(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Sparsemax: the Euclidean projection onto the simplex, :math:`[z - \tau(z)]_+`.

    .. math::
        \mathrm{sparsemax}(z) = \arg\min_{p\in\Delta}\|p - z\|^2, \quad
        \tau(z) = \frac{\sum_{j\le k(z)} z_{(j)} - 1}{k(z)}, \quad
        k(z) = \max\{k : 1 + k z_{(k)} > \textstyle\sum_{j\le k} z_{(j)}\}

    with :math:`z_{(1)} \ge z_{(2)} \ge \dots` sorted. Unlike softmax it
    returns exact zeros. Autograd through the sort gives the exact Jacobian
    :func:`sparsemax_jacobian` (away from the measure-zero support changes).
    ``-inf`` entries (masked classes) get probability 0; a NaN entry is an error.

    Reference: Martins & Astudillo (2016), *From Softmax to Sparsemax*, Algorithm 1.

    Example:
        >>> sparsemax(torch.tensor([1.0, 0.8, -1.0]))
        tensor([0.6000, 0.4000, 0.0000])
    """
    V.check_floating(input, "input")
    V.check_no_nan(input, "input")
    z = to_compute_dtype(input).movedim(dim, -1)
    p = F.relu(z - _sparsemax_threshold(z))
    return p.movedim(-1, dim).to(input.dtype)


def sparsemax_jacobian(z: torch.Tensor) -> torch.Tensor:
    r"""Jacobian of sparsemax on the last dimension: :math:`J = \mathrm{diag}(s) - s s^\top/|S|`.

    :math:`s` is the support indicator of :math:`\mathrm{sparsemax}(z)`;
    returns shape ``(..., C, C)``. Symmetric, and :math:`J\mathbf 1 = 0`.

    Example:
        >>> sparsemax_jacobian(torch.tensor([1.0, 0.8, -1.0]))
        tensor([[ 0.5000, -0.5000,  0.0000],
                [-0.5000,  0.5000,  0.0000],
                [ 0.0000,  0.0000,  0.0000]])
    """
    s = (sparsemax(z) > 0).to(z.dtype)
    return torch.diag_embed(s) - s.unsqueeze(-1) * s.unsqueeze(-2) / s.sum(-1, keepdim=True).unsqueeze(-1)


def _check_alpha(alpha: object) -> None:
    if isinstance(alpha, torch.Tensor) and alpha.requires_grad:
        raise ValueError("alpha must not require grad: entmax is not differentiated with respect to alpha")
    V.check_in_range(alpha, "alpha", 1.0, math.inf,
                     what="be a finite number > 1 (alpha -> 1 is softmax, 2 is sparsemax)")


def _entmax_bisect(z: torch.Tensor, alpha: float | torch.Tensor, n_iter: int) -> torch.Tensor:
    """α-entmax of the last dimension by bisection on τ (no gradient); ``-inf`` entries get 0."""
    with torch.no_grad():
        z = z * (alpha - 1)
        zmax = z.max(-1, keepdim=True).values
        lo = zmax - 1.0
        hi = zmax - (1.0 / z.shape[-1]) ** (alpha - 1)
        expo = 1.0 / (alpha - 1)
        for _ in range(n_iter):
            mid = (lo + hi) / 2
            mass = F.relu(z - mid).pow(expo).sum(-1, keepdim=True)
            lo = torch.where(mass >= 1, mid, lo)
            hi = torch.where(mass >= 1, hi, mid)
        p = F.relu(z - (lo + hi) / 2).pow(expo)
        return p / p.sum(-1, keepdim=True)


def _entmax_jvp(p: torch.Tensor, v: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    r"""``J v`` for the (symmetric) entmax Jacobian :math:`J = \mathrm{diag}(g) - gg^\top/\sum g`, :math:`g = p^{2-\alpha}` on the support."""
    g = torch.where(p > 0, p.clamp_min(torch.finfo(p.dtype).tiny).pow(2 - alpha), torch.zeros_like(p))
    gv = g * v
    return gv - g * (gv.sum(-1, keepdim=True) / g.sum(-1, keepdim=True))


class _EntmaxFromValue(torch.autograd.Function):
    """Returns the entmax value ``p`` of ``theta`` (computed before); backward is the entmax Jacobian."""

    @staticmethod
    def forward(ctx, theta, p, alpha):  # type: ignore[override]
        ctx.save_for_backward(p)
        ctx.alpha = alpha
        return p.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v):  # type: ignore[override]
        (p,) = ctx.saved_tensors
        return _entmax_jvp(p, v, ctx.alpha), None, None


class _Entmax(torch.autograd.Function):
    """α-entmax with its exact Jacobian (Peters, Niculae & Martins, 2019)."""

    @staticmethod
    def forward(ctx, theta, alpha, n_iter):  # type: ignore[override]
        p = _entmax_bisect(theta, alpha, n_iter)
        ctx.save_for_backward(p)
        ctx.alpha = alpha
        return p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v):  # type: ignore[override]
        (p,) = ctx.saved_tensors
        return _entmax_jvp(p, v, ctx.alpha), None, None


class _TsallisConjugate(torch.autograd.Function):
    r""":math:`\Omega^*(\theta) = \langle\theta, p\rangle - \Omega(p)`, :math:`p` = entmax: gradient :math:`p`, Hessian the entmax Jacobian.

    The backward pass returns :math:`g\,p` with :math:`p` attached to
    ``theta`` through :class:`_EntmaxFromValue`, so double backward (the
    Hessian of the Fenchel–Young loss) is exact.
    """

    @staticmethod
    def forward(ctx, theta, alpha, n_iter):  # type: ignore[override]
        p = _entmax_bisect(theta, alpha, n_iter)
        inner = torch.where(p > 0, theta * p, torch.zeros_like(p)).sum(-1)  # no 0·(-inf) for masked classes
        ctx.save_for_backward(theta, p)
        ctx.alpha = alpha
        return inner - _omega(p, "tsallis", alpha)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        theta, p = ctx.saved_tensors
        return g.unsqueeze(-1) * _EntmaxFromValue.apply(theta, p, ctx.alpha), None, None


def tsallis_entmax(input: torch.Tensor, alpha: float = 1.5, dim: int = -1, n_iter: int = 60) -> torch.Tensor:
    r""":math:`\alpha`-entmax :math:`[(\alpha-1)z - \tau]_+^{1/(\alpha-1)}`, with :math:`\tau` found by bisection.

    The prediction map of the Tsallis-:math:`\alpha` Fenchel–Young loss:
    :math:`\alpha \to 1` is softmax, :math:`\alpha = 2` is sparsemax. 60
    bisection steps reach float64 precision. Autograd gets the exact
    Jacobian :math:`\mathrm{diag}(g) - gg^\top/\sum_j g_j`, :math:`g = p^{2-\alpha}`
    on the support (not differentiated with respect to ``alpha``, which must
    be a finite number > 1, or a 0-d tensor of one). ``-inf`` entries get 0.

    Reference: Peters, Niculae & Martins (2019), *Sparse Sequence-to-Sequence Models*;
    Blondel, Martins & Niculae (2020), *Learning with Fenchel-Young Losses*.

    Example:
        >>> tsallis_entmax(torch.tensor([1.0, 0.8, -1.0]), alpha=2.0)
        tensor([0.6000, 0.4000, 0.0000])
    """
    V.check_floating(input, "input")
    _check_alpha(alpha)
    V.check_positive_int(n_iter, "n_iter")
    V.check_no_nan(input, "input")
    z = to_compute_dtype(input).movedim(dim, -1)
    return _Entmax.apply(z, alpha, n_iter).movedim(-1, dim).to(input.dtype)


# --------------------------------------------------------------------------- Fenchel-Young losses

_REGULARIZERS = ("shannon", "squared", "tsallis")


def _omega(p: torch.Tensor, regularizer: str, alpha: float | torch.Tensor) -> torch.Tensor:
    """Ω on the simplex: negative Shannon entropy, ½‖p‖², or the negative Tsallis entropy."""
    if regularizer == "shannon":
        return torch.xlogy(p, p).sum(-1)
    if regularizer == "squared":
        return 0.5 * p.square().sum(-1)
    return (p.pow(alpha).sum(-1) - p.sum(-1)) / (alpha * (alpha - 1))


def _inner(theta: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r""":math:`\langle\theta, y\rangle`: a gather for class indices, and no :math:`0\cdot(-\infty)` for masked classes."""
    if not target.is_floating_point():
        return theta.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    y = target.to(theta.dtype)
    return torch.where(y > 0, theta * y, torch.zeros_like(theta)).sum(-1)


def _sparsemax_loss_terms(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Sparsemax loss per row as :math:`\tfrac12\|p - q\|^2 + \langle q, [\tau - z]_+\rangle` (no checks).

    Both terms are non-negative, so nothing cancels; the logits are shifted
    by their (detached) row maximum first (the loss is shift-invariant), so
    :math:`\tau` is computed from small numbers. Autograd gives the gradient
    :math:`p - q` and the exact Hessian (the sparsemax Jacobian).
    """
    z = logits - logits.max(-1, keepdim=True).values.detach()
    tau = _sparsemax_threshold(z)
    p = F.relu(z - tau)
    if target.is_floating_point():
        q = target.to(z.dtype)
        gap = torch.where(q > 0, F.relu(tau - z), torch.zeros_like(z))  # q = 0 on masked classes: no 0·inf
        return 0.5 * (p - q).square().sum(-1) + (q * gap).sum(-1)
    e = F.one_hot(target, z.shape[-1]).to(z.dtype)
    zk = z.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return 0.5 * (p - e).square().sum(-1) + F.relu(tau.squeeze(-1) - zk)


def fenchel_young_loss(theta: torch.Tensor, target: torch.Tensor, *, regularizer: str = "shannon",
                       alpha: float = 1.5, weight: torch.Tensor | None = None,
                       reduction: str = "mean") -> torch.Tensor:
    r"""Fenchel–Young loss :math:`L_\Omega(\theta; y) = \Omega^*(\theta) + \Omega(y) - \langle\theta, y\rangle \ge 0`.

    :math:`\Omega` is restricted to the simplex and :math:`\Omega^*` is its
    convex conjugate, :math:`\Omega^*(\theta) = \langle\theta,\hat y\rangle - \Omega(\hat y)`
    with the prediction :math:`\hat y_\Omega(\theta) = \nabla\Omega^*(\theta)`:

    * ``"shannon"``: :math:`\Omega(p) = \sum p\log p`, :math:`\Omega^* = \mathrm{logsumexp}`,
      :math:`\hat y` = softmax: the loss is cross-entropy (minus the target's entropy);
    * ``"squared"``: :math:`\Omega(p) = \tfrac12\|p\|^2`, :math:`\hat y` = :func:`sparsemax`:
      the sparsemax loss (computed as in :func:`sparsemax_loss`);
    * ``"tsallis"``: :math:`\Omega(p) = \frac{\sum_j p_j^\alpha - 1}{\alpha(\alpha-1)}`,
      :math:`\hat y` = :func:`tsallis_entmax` (``alpha`` a finite number > 1; 2 gives the sparsemax loss).

    The loss is convex in :math:`\theta`, zero iff :math:`\hat y = y`, and its
    gradient is :math:`\hat y_\Omega(\theta) - y`. Its Hessian (double
    backward) is the Jacobian of :math:`\hat y`: softmax's by autograd, the
    sparsemax Jacobian by autograd through the sort, and for Tsallis the
    entmax Jacobian of Peters et al. (2019) (exact second order; not
    differentiated in ``alpha``). ``-inf`` scores mask classes (as in
    :func:`torch.nn.functional.cross_entropy`); a NaN score is an error.

    Args:
        theta: ``(N, C)`` scores.
        target: int64 classes ``(N,)`` or probabilities ``(N, C)``.

    Reference: Blondel, Martins & Niculae (2020), *Learning with Fenchel-Young Losses*, JMLR.

    Example:
        >>> th, y = torch.tensor([[1.0, 0.8, -1.0]]), torch.tensor([0])
        >>> torch.allclose(fenchel_young_loss(th, y), torch.nn.functional.cross_entropy(th, y))
        True
        >>> fenchel_young_loss(th, y, regularizer="squared")
        tensor(0.1600)
    """
    _check_scores(theta, target, "theta")
    V.check_choice(regularizer, "regularizer", _REGULARIZERS)
    if regularizer == "tsallis":
        _check_alpha(alpha)
    check_reduction(reduction)
    V.check_no_nan(theta, "theta")
    th = to_compute_dtype(theta)
    if regularizer == "squared":
        loss = _sparsemax_loss_terms(th, target)
    else:
        if regularizer == "shannon":
            conj = torch.logsumexp(th, -1)
        else:
            conj = _TsallisConjugate.apply(th, alpha, 60)
        omega_y = 0.0 if not target.is_floating_point() else _omega(target.to(th.dtype), regularizer, alpha)
        loss = conj + omega_y - _inner(th, target)
    return finish(loss, reduction, like=theta, weight=weight)


def sparsemax_loss(logits: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                   reduction: str = "mean") -> torch.Tensor:
    r"""Sparsemax loss (Martins & Astudillo, 2016), the Fenchel–Young loss of :math:`\tfrac12\|p\|^2`.

    .. math::
        L(z; q) = -\langle q, z\rangle + \tfrac12\sum_{j\in S(z)}\big(z_j^2 - \tau(z)^2\big) + \tfrac12\|q\|^2
                = \tfrac12\|p - q\|^2 + \langle q, [\tau(z) - z]_+\rangle

    with :math:`S(z)` the support of :func:`sparsemax`, :math:`p = \mathrm{sparsemax}(z)`
    and :math:`q = e_k` for a class index :math:`k`. Non-negative, zero iff
    :math:`z_k \ge 1 + \max_{j\ne k} z_j`, gradient :math:`\mathrm{sparsemax}(z) - q`,
    Hessian the sparsemax Jacobian (double backward is exact).
    With two classes and :math:`t = z_1 - z_2` (target 1) it is a quarter of
    the modified Huber loss of :math:`t`. We evaluate the second form, a sum
    of non-negative terms, on logits shifted by their row maximum: the first
    form cancels catastrophically for large logits (``0.5`` instead of ``0``
    at :math:`\pm 10^4` in float32). ``-inf`` logits mask classes; a NaN
    logit is an error.

    Reference: Martins & Astudillo (2016), *From Softmax to Sparsemax*, ICML, eq. (13) and its multi-label form.

    Example:
        >>> sparsemax_loss(torch.tensor([[1.0, 0.8, -1.0], [3.0, 0.0, 0.0]]), torch.tensor([0, 0]),
        ...                reduction="none")
        tensor([0.1600, 0.0000])
    """
    _check_scores(logits, target, "logits")
    check_reduction(reduction)
    V.check_no_nan(logits, "logits")
    loss = _sparsemax_loss_terms(to_compute_dtype(logits), target)
    return finish(loss, reduction, like=logits, weight=weight)


def _check_k(k: object, c: int) -> int:
    """``k`` an integer in ``[1, C]`` (a 0-d integer tensor, as a module twin stores it, is read in eager mode)."""
    if (isinstance(k, torch.Tensor) and k.dim() == 0 and not k.is_floating_point() and k.dtype != torch.bool
            and not V.skip_value_checks(k)):
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= c:
        raise ValueError(f"k must be an integer in [1, {c}], got {k!r}")
    return k


def sparse_softmax(input: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    r"""Top-:math:`k` softmax: :math:`p_i = e^{z_i}/\sum_{j\in\Omega_k}e^{z_j}` on the :math:`k` largest entries, 0 elsewhere.

    :math:`k = C` is softmax. Ties at the :math:`k`-th value are broken by
    ``torch.topk``.

    Reference: Sun et al. (2021), *Sparse-softmax: A Simpler and Faster
    Alternative Softmax Transformation*.

    Example:
        >>> sparse_softmax(torch.tensor([2.0, 1.0, 0.0]), k=2)
        tensor([0.7311, 0.2689, 0.0000])
    """
    V.check_floating(input, "input")
    z = input.movedim(dim, -1)
    k = _check_k(k, z.shape[-1])
    keep = torch.zeros_like(z, dtype=torch.bool).scatter(-1, z.topk(k, dim=-1).indices, True)
    return torch.softmax(z.masked_fill(~keep, -math.inf), dim=-1).movedim(-1, dim)


def sparse_softmax_loss(logits: torch.Tensor, target: torch.Tensor, *, k: int,
                        weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Top-:math:`k` sparse-softmax cross-entropy :math:`\log\sum_{j\in\Omega_k\cup\{y\}}e^{z_j} - z_y`.

    :math:`\Omega_k` holds the :math:`k` largest logits. The target is always
    kept in the normaliser, so the loss is finite and non-negative even when
    :math:`y` is outside the top :math:`k`; :math:`k = C` is cross-entropy.
    *Inspired by* Sun et al. (2021): that the target joins :math:`\Omega_k`
    follows a public implementation's convention and was not checked
    against the paper. ``-inf`` logits (masked classes) are fine; ``k`` may
    also be a 0-d integer tensor (read in eager mode).

    Args:
        logits: ``(N, C)``; target: int64 classes ``(N,)``; k: ``1 <= k <= C``.

    Example:
        >>> h = torch.tensor([[2.0, 1.0, 0.0]])
        >>> sparse_softmax_loss(h, torch.tensor([0]), k=2)
        tensor(0.3133)
    """
    _check_scores(logits, target, "logits", soft=False)
    k = _check_k(k, logits.shape[-1])
    check_reduction(reduction)
    z = to_compute_dtype(logits)
    keep = torch.zeros_like(z, dtype=torch.bool).scatter(-1, z.topk(k, dim=-1).indices, True)
    keep = keep.scatter(-1, target.unsqueeze(-1), True)
    lse = torch.logsumexp(z.masked_fill(~keep, -math.inf), dim=-1)
    loss = lse - z.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return finish(loss, reduction, like=logits, weight=weight)


# --------------------------------------------------------------------------- spherical family


def z_loss(logits: torch.Tensor, target: torch.Tensor, *, a: float = 1.0, b: float = 3.0, eps: float = 1e-3,
           weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Z-loss (de Brébisson & Vincent, 2016): a softplus of the standardised target logit.

    .. math::
        \mu = \tfrac1C\sum_k o_k,\quad \sigma^2 = \tfrac1C\sum_k(o_k-\mu)^2,\quad
        z_c = \frac{o_c - \mu}{\max(\sigma, \epsilon)},\quad L_Z = \tfrac1a\,\mathrm{softplus}\big(a(b - z_c)\big)

    Invariant to :math:`o \mapsto \alpha o + \beta` for :math:`\alpha > 0`, so
    its gradient is orthogonal to :math:`\mathbf 1` and to :math:`o`. It
    depends on :math:`o` only through :math:`o_c`, :math:`\sum_k o_k` and
    :math:`\sum_k o_k^2` (the *spherical family*), which permits
    output-size-independent updates. Since :math:`|z_c| \le \sqrt{C-1}`, the
    loss lies in :math:`[\tfrac1a\mathrm{softplus}(a(b-\sqrt{C-1})), \tfrac1a\mathrm{softplus}(a(b+\sqrt{C-1}))]`.
    The standard deviation is floored: we divide by :math:`\max(\sigma, \epsilon)`
    (``eps``, default :math:`10^{-3}`). Rows with :math:`\sigma \ge \epsilon` are
    unchanged (and scale-invariant); constant logits (:math:`\sigma = 0`, e.g. a
    zero-initialised output layer) give :math:`z_c = 0` and a gradient of at most
    :math:`1/\epsilon` in size. A scale-invariant loss has a gradient that grows
    like :math:`1/\sigma`, so without the floor it is unbounded near constant
    logits (:math:`\sim 10^{18}` at zero logits). ``-inf`` logits mask
    classes: they are left out of :math:`\mu` and :math:`\sigma` (and of
    :math:`C`); a masked target gives ``inf``. ``a``, ``b`` and ``eps`` may be
    0-d tensors. The defaults ``a=1, b=3`` are lossbook's, not the
    paper's tuned values: tune them (``b`` near :math:`\sqrt{C-1}` asks for a
    clear winner). Not to be confused with PaLM's :func:`log_z_penalty`.

    Reference: de Brébisson & Vincent (2016), *The Z-loss: a shift and scale
    invariant classification loss belonging to the Spherical Family*.

    Example:
        >>> o = torch.tensor([[2.0, 0.0, -2.0]])
        >>> torch.allclose(z_loss(o, torch.tensor([0])), z_loss(5 * o + 1, torch.tensor([0])))
        True
    """
    _check_scores(logits, target, "logits", soft=False)
    V.check_positive(a, "a")
    V.check_finite(b, "b")
    V.check_positive(eps, "eps")
    check_reduction(reduction)
    o = to_compute_dtype(logits)
    live = o > -math.inf  # -inf masks a class: it leaves the standardisation
    count = live.sum(-1, keepdim=True).clamp_min(1).to(o.dtype)
    zero = torch.zeros_like(o)
    mu = torch.where(live, o, zero).sum(-1, keepdim=True) / count
    centred = torch.where(live, o - mu, zero)
    sigma = (centred.square().sum(-1) / count.squeeze(-1)).clamp_min(eps * eps).sqrt()  # max(σ, eps)
    # only the target's standardised score is needed: no (N, C) standardised copy
    idx = target.unsqueeze(-1)
    zc = centred.gather(-1, idx).squeeze(-1) / sigma
    zc = torch.where(live.gather(-1, idx).squeeze(-1), zc, torch.full_like(zc, -math.inf))  # masked target: inf loss
    loss = F.softplus(a * (b - zc)) / a
    return finish(loss, reduction, like=logits, weight=weight)


def log_z_penalty(logits: torch.Tensor, *, coef: float = 1e-4, reduction: str = "mean") -> torch.Tensor:
    r"""PaLM's "z-loss": the log-partition penalty :math:`\lambda\,\big(\log\sum_k e^{o_k}\big)^2`.

    An auxiliary term added to cross-entropy that keeps the softmax
    normaliser near 1 (:math:`\log Z \approx 0`) for numerical stability in
    large-vocabulary training. It shares a name with, but has nothing to do
    with, :func:`z_loss`.

    Args:
        logits: ``(N, C)``; coef: :math:`\lambda \ge 0` (PaLM used :math:`10^{-4}`).

    Reference: Chowdhery et al. (2023), *PaLM: Scaling Language Modeling with Pathways*, JMLR, Section 5.

    Example:
        >>> log_z_penalty(torch.zeros(1, 4), coef=1.0)
        tensor(1.9218)
    """
    V.check_floating(logits, "logits")
    V.check_nonnegative(coef, "coef")
    check_reduction(reduction)
    if logits.dim() != 2 or logits.shape[1] == 0:
        raise ValueError(f"logits must have shape (N, C) with C >= 1, got {tuple(logits.shape)}")
    loss = coef * torch.logsumexp(to_compute_dtype(logits), -1).square()
    return finish(loss, reduction, like=logits)


def spherical_softmax(input: torch.Tensor, eps: float = 1e-6, dim: int = -1) -> torch.Tensor:
    r"""Spherical softmax :math:`p_k = (o_k^2 + \epsilon)/\sum_j (o_j^2 + \epsilon)`: a spherical-family output map.

    Reference: Vincent, de Brébisson & Bouthillier (2015); de Brébisson & Vincent (2016).

    Example:
        >>> spherical_softmax(torch.tensor([1.0, -1.0, 0.0]), eps=0.0)
        tensor([0.5000, 0.5000, 0.0000])
    """
    V.check_floating(input, "input")
    V.check_nonnegative(eps, "eps")
    s = input.square() + eps
    return s / s.sum(dim, keepdim=True)


def taylor_softmax(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Taylor softmax :math:`p_k \propto 1 + o_k + o_k^2/2`, the second-order Taylor expansion of :math:`e^{o_k}`.

    :math:`1 + o + o^2/2 = ((1+o)^2 + 1)/2 > 0`, so the map is always a
    distribution; it belongs to the spherical family.

    Reference: Vincent, de Brébisson & Bouthillier (2015); de Brébisson & Vincent (2016).

    Example:
        >>> taylor_softmax(torch.tensor([0.0, 0.0]))
        tensor([0.5000, 0.5000])
    """
    V.check_floating(input, "input")
    t = 1.0 + input + 0.5 * input.square()
    return t / t.sum(dim, keepdim=True)


# --------------------------------------------------------------------------- learned canonical link (LegendreTron, binary)


def _check_link(weights: torch.Tensor, slopes: torch.Tensor, biases: torch.Tensor, score: torch.Tensor) -> None:
    """Link parameters ``(K,)``: weights on the simplex, positive slopes, finite biases, on the score's device."""
    for name, t in (("weights", weights), ("slopes", slopes), ("biases", biases)):
        V.check_floating(t, name)
        if t.dim() != 1 or t.shape != weights.shape or t.shape[0] == 0:
            raise ValueError(f"weights, slopes and biases must all have shape (K,) with K >= 1, got "
                             f"weights {tuple(weights.shape)}, slopes {tuple(slopes.shape)} and biases "
                             f"{tuple(biases.shape)}")
    V.check_floating(score, "score")
    V.check_same_device(score=score, weights=weights, slopes=slopes, biases=biases)
    V.check_in_range(slopes, "slopes", 0.0, math.inf, what="be > 0 and finite (the link must be increasing)")
    V.check_finite(biases, "biases")
    if not V.skip_value_checks(weights):
        w = weights.detach()
        if not bool((w >= 0).all() & ((w.sum() - 1).abs() <= 1e-4)):
            raise ValueError("weights must lie on the simplex (>= 0, summing to 1, no NaN); "
                             "use softmax of free parameters")


def canonical_link_loss(score: torch.Tensor, target: torch.Tensor, *, weights: torch.Tensor,
                        slopes: torch.Tensor, biases: torch.Tensor,
                        reduction: str = "mean") -> torch.Tensor:
    r"""Binary canonical proper composite loss :math:`\ell(y, v) = \Psi(v) - y v` with a mixture-of-sigmoids link.

    .. math::
        \Psi(v) = \sum_j \frac{w_j}{s_j}\,\mathrm{softplus}\big(s_j(v - b_j)\big),\qquad
        \Psi'(v) = F(v) = \sum_j w_j\,\sigma\big(s_j(v - b_j)\big)

    with :math:`w \in \Delta`, :math:`s_j > 0`. :math:`F` is a strictly
    increasing bijection :math:`\mathbb R \to (0, 1)`, so :math:`\Psi` is
    strictly convex and the minimiser of :math:`\eta\ell(1, v) + (1-\eta)\ell(0, v)`
    solves :math:`F(v^*) = \eta`: the loss is proper *for every parameter
    value*, with inverse link :math:`F`. One component with :math:`s = 1, b = 0`
    is the logistic loss (``binary_cross_entropy_with_logits``). For a
    target :math:`t \in [0, 1]` we evaluate
    :math:`\sum_j \frac{w_j}{s_j}[(1-t)\,\mathrm{softplus}(u_j) + t\,\mathrm{softplus}(-u_j)] - t\sum_j w_j b_j`,
    :math:`u_j = s_j(v-b_j)`, which equals :math:`\Psi(v) - tv` without
    cancelling large terms.

    Args:
        score: ``(N,)`` real scores :math:`v`.
        target: ``(N,)`` floats in ``[0, 1]`` (labels or probabilities; checked).
        weights: ``(K,)`` mixture weights on the simplex; slopes: ``(K,)`` positive; biases: ``(K,)`` finite
            (all checked in eager mode, NaN fails).

    Our guaranteed-proper binary construction, *inspired by* LegendreTron
    (Lam et al., 2023), which learns multiclass canonical links with
    monotone (input-convex) networks; the paper's architecture differs.

    Example:
        >>> v, y = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.0])
        >>> one = torch.ones(1)
        >>> torch.allclose(canonical_link_loss(v, y, weights=one, slopes=one, biases=0 * one),
        ...                torch.nn.functional.binary_cross_entropy_with_logits(v, y))
        True
    """
    _check_link(weights, slopes, biases, score)
    V.check_binary_target(score, target, ("score", "target"))
    if score.dim() != 1:
        raise ValueError(f"score must have shape (N,), got {tuple(score.shape)}")
    check_reduction(reduction)
    v = to_compute_dtype(score).unsqueeze(-1)
    t = to_compute_dtype(target).unsqueeze(-1)
    u = slopes * (v - biases)
    per = (weights / slopes) * ((1 - t) * F.softplus(u) + t * F.softplus(-u))
    loss = per.sum(-1) - t.squeeze(-1) * (weights * biases).sum()
    return finish(loss, reduction, like=score)


class LearnedCanonicalLink(nn.Module):
    r"""A learnable, provably proper binary canonical link: :math:`K` sigmoid components (see :func:`canonical_link_loss`).

    Parameters: free weights (softmax → :math:`w\in\Delta`), log-slopes
    (exp → :math:`s > 0`) and biases :math:`b`. Whatever values training
    gives them, the loss stays proper and :math:`\Psi` convex. Train it
    jointly with the score model by minimising ``link.loss(score, target)``;
    ``link(score)`` returns the probability :math:`F(v)` (registered with
    :func:`lossbook.registry.register_module` as a learnable module whose
    forward output is that probability).

    Args:
        n_components: :math:`K`.

    Example:
        >>> link = LearnedCanonicalLink(4)
        >>> p = link(torch.linspace(-3, 3, 5))
        >>> bool((p.diff() > 0).all() and (p > 0).all() and (p < 1).all())
        True
    """

    def __init__(self, n_components: int = 8) -> None:
        super().__init__()
        if not (isinstance(n_components, int) and n_components >= 1):
            raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
        self.weight_logits = nn.Parameter(torch.zeros(n_components))
        self.log_slopes = nn.Parameter(torch.linspace(-0.5, 1.0, n_components) if n_components > 1
                                       else torch.zeros(1))
        self.biases = nn.Parameter(torch.linspace(-2.0, 2.0, n_components) if n_components > 1
                                   else torch.zeros(1))

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weights on the simplex, positive slopes, biases)."""
        return torch.softmax(self.weight_logits, 0), self.log_slopes.exp(), self.biases

    def forward(self, score: torch.Tensor) -> torch.Tensor:
        """The probability :math:`F(v)` of each score (any shape; half precision is computed in float32)."""
        V.check_floating(score, "score")
        V.check_same_device(score=score, weight_logits=self.weight_logits)
        w, s, b = self.components()
        v = to_compute_dtype(score)
        # the weights sum to 1 only up to rounding: in float32 the mixture can pass 1 by an ulp
        return (w * torch.sigmoid(s * (v.unsqueeze(-1) - b))).sum(-1).clamp(0.0, 1.0).to(score.dtype)

    def psi(self, score: torch.Tensor) -> torch.Tensor:
        r"""The convex potential :math:`\Psi(v)`."""
        V.check_floating(score, "score")
        w, s, b = self.components()
        return (w / s * F.softplus(s * (score.unsqueeze(-1) - b))).sum(-1)

    def loss(self, score: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The canonical proper loss of the *current* link (:func:`canonical_link_loss`)."""
        w, s, b = self.components()
        return canonical_link_loss(score, target, weights=w, slopes=s, biases=b, reduction=reduction)

    def log_loss(self, score: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        r"""Log loss through the link, :math:`-t\log F(v) - (1-t)\log(1-F(v))`, in log space.

        Use this to fit the link *jointly* with the score model: the canonical
        loss :math:`\Psi(v) - tv` is proper for every fixed link but not a
        criterion for choosing the link (shrinking the score scale while
        steepening the link shrinks it without changing any probability).
        The log loss composed with any strictly increasing link is still a
        proper composite loss.
        """
        V.check_binary_target(score, target, ("score", "target"))
        V.check_same_device(score=score, weight_logits=self.weight_logits)
        check_reduction(reduction)
        w, s, b = self.components()
        v, t = to_compute_dtype(score), to_compute_dtype(target)
        u = s * (v.unsqueeze(-1) - b)
        log_w = torch.log(w)
        log_f = torch.logsumexp(log_w + F.logsigmoid(u), -1)
        log_1mf = torch.logsumexp(log_w + F.logsigmoid(-u), -1)
        return finish(-(t * log_f + (1 - t) * log_1mf), reduction, like=score)


# --------------------------------------------------------------------------- module twins

LogScoreLoss = module_twin(log_score, "LogScoreLoss")
BrierScoreLoss = module_twin(brier_score, "BrierScoreLoss")
SphericalScoreLoss = module_twin(spherical_score, "SphericalScoreLoss")
FocalScoreLoss = module_twin(focal_score, "FocalScoreLoss")
FenchelYoungLoss = module_twin(fenchel_young_loss, "FenchelYoungLoss")
SparsemaxLoss = module_twin(sparsemax_loss, "SparsemaxLoss")
SparseSoftmaxLoss = module_twin(sparse_softmax_loss, "SparseSoftmaxLoss")
ZLoss = module_twin(z_loss, "ZLoss")


# --------------------------------------------------------------------------- registry records

from lossbook.registry import Equivalent, ErrorCase, ModuleSample, Sample, register, register_module  # noqa: E402
from lossbook.registry import as_numpy as _np  # noqa: E402
from lossbook.registry import with_kwargs as _bad_kwarg  # noqa: E402
from lossbook.registry import logits_sample  # noqa: E402


def _prob_sample(n=6, c=4, soft=False, **kwargs):
    def make(gen, dtype, device):
        q = torch.softmax(torch.randn(n, c, generator=gen, dtype=torch.float64), -1)
        if soft:
            t = torch.softmax(torch.randn(n, c, generator=gen, dtype=torch.float64), -1).to(dtype=dtype, device=device)
        else:
            t = torch.randint(0, c, (n,), generator=gen).to(device)
        return Sample((q.to(dtype=dtype, device=device), t), dict(kwargs))
    return make


def _prob_extreme(**kwargs):
    def make(gen, dtype, device):
        q = torch.tensor([[1e-30, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype=dtype, device=device)
        return Sample((q, torch.tensor([0, 0, 1], device=device)), dict(kwargs))
    return make




def _logit_extreme(**kwargs):
    def make(gen, dtype, device):
        h = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 0.0]], dtype=dtype, device=device)
        return Sample((h, torch.tensor([0, 0, 2], device=device)), dict(kwargs))
    return make


def _onehot_np(target, c):
    import numpy as np
    return _np(target) if target.is_floating_point() else np.eye(c)[target.cpu().numpy()]


def _ref_log(q, t):
    from scipy.special import xlogy
    return torch.from_numpy(-xlogy(_onehot_np(t, q.shape[1]), _np(q)).sum(1))


def _ref_brier(q, t):
    import numpy as np
    c = q.shape[1]
    per_class = ((_np(q)[:, None, :] - np.eye(c)[None]) ** 2).sum(-1)  # (N, C): ||q - e_y||^2 for each y
    return torch.from_numpy((_onehot_np(t, c) * per_class).sum(1))


def _ref_spherical(q, t):
    import numpy as np
    qq = _np(q)
    return torch.from_numpy(-(_onehot_np(t, q.shape[1]) * qq).sum(1) / np.sqrt((qq ** 2).sum(1)))


def _ref_focal(q, t, gamma):
    import numpy as np
    qq = _np(q)
    y = t.cpu().numpy()
    qy = qq[np.arange(len(y)), y]
    return torch.from_numpy(-(1 - qy) ** gamma * np.log(qy))


def _ref_entmax_loss(theta, target, regularizer="tsallis", alpha=1.5):
    import entmax
    th = theta.detach().cpu().double()
    if regularizer == "squared":
        return entmax.sparsemax_loss(th, target.cpu())
    return entmax.entmax_bisect_loss(th, target.cpu(), alpha, 100)


def _ref_sparsemax_loss(logits, target):
    import entmax
    return entmax.sparsemax_loss(logits.detach().cpu().double(), target.cpu())


def _ref_sparse_softmax(logits, target, k):
    import numpy as np
    from scipy.special import logsumexp
    h = _np(logits)
    out = []
    for row, y in zip(h, target.cpu().numpy()):
        keep = set(np.argsort(-row, kind="stable")[:k].tolist()) | {int(y)}
        out.append(logsumexp(row[sorted(keep)]) - row[y])
    return torch.tensor(out, dtype=torch.float64)


def _ref_z(logits, target, a=1.0, b=3.0, eps=1e-3):
    import numpy as np
    o = _np(logits)
    z = (o - o.mean(1, keepdims=True)) / np.maximum(o.std(1, keepdims=True), eps)
    zc = z[np.arange(len(o)), target.cpu().numpy()]
    return torch.from_numpy(np.logaddexp(0.0, a * (b - zc)) / a)


def _ref_log_z(logits, coef=1e-4):
    from scipy.special import logsumexp
    return torch.from_numpy(coef * logsumexp(_np(logits), axis=1) ** 2)


def _ref_canonical(score, target, weights, slopes, biases):
    import numpy as np
    v, t = _np(score)[:, None], _np(target)
    w, s, b = _np(weights), _np(slopes), _np(biases)
    psi = (w / s * np.logaddexp(0.0, s * (v - b))).sum(1)
    return torch.from_numpy(psi - t * v[:, 0])


def _rows(per_row, reduction):
    return per_row if reduction == "none" else per_row.mean()


def _eq_log_score(s, reduction):
    q, y = s.args[:2]
    if y.is_floating_point():
        return None
    return F.nll_loss(torch.log(q), y, reduction=reduction)


def _eq_brier_score(s, reduction):
    q, y = s.args[:2]
    e = y.to(q.dtype) if y.is_floating_point() else F.one_hot(y, q.shape[-1]).to(q.dtype)
    return _rows(F.mse_loss(q, e, reduction="none").sum(-1), reduction)


def _eq_sparsemax_loss(s, reduction):
    from entmax import sparsemax_loss as entmax_sparsemax_loss
    z, y = s.args[:2]
    if y.is_floating_point():
        return None
    return _rows(entmax_sparsemax_loss(z, y), reduction)


def _eq_fenchel_young_loss(s, reduction):
    if s.kwargs.get("regularizer", "shannon") != "tsallis" or s.args[1].is_floating_point():
        return None
    from entmax import entmax_bisect_loss
    return _rows(entmax_bisect_loss(*s.args[:2], alpha=s.kwargs.get("alpha", 1.5), n_iter=50), reduction)


def _canonical_sample(gen, dtype, device):
    v = torch.randn(8, generator=gen, dtype=torch.float64) * 2
    t = (torch.rand(8, generator=gen, dtype=torch.float64) > 0.5).to(torch.float64)
    w = torch.softmax(torch.randn(3, generator=gen, dtype=torch.float64), 0)
    s = torch.rand(3, generator=gen, dtype=torch.float64) * 2 + 0.3
    b = torch.randn(3, generator=gen, dtype=torch.float64)
    cast = lambda x: x.to(dtype=dtype, device=device)  # noqa: E731
    return Sample((cast(v), cast(t)), {"weights": cast(w), "slopes": cast(s), "biases": cast(b)})


def _canonical_extreme(gen, dtype, device):
    v = torch.tensor([1e30, -1e30, 1e30, 0.0], dtype=dtype, device=device)
    t = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype, device=device)
    one = torch.ones(2, dtype=dtype, device=device)
    return Sample((v, t), {"weights": one / 2, "slopes": one, "biases": torch.tensor([-1.0, 1.0], dtype=dtype,
                                                                                     device=device)})


def _ref_link(module, sample):
    import numpy as np
    from scipy.special import expit, softmax
    w = softmax(_np(module.weight_logits))
    s, b = np.exp(_np(module.log_slopes)), _np(module.biases)
    v = _np(sample.args[0])[..., None]
    return torch.from_numpy((w * expit(s * (v - b))).sum(-1))


def _link_sample(gen, dtype, device):
    def scores(n):
        return (torch.randn(n, generator=gen, dtype=torch.float64) * 2).to(dtype=dtype, device=device)
    return ModuleSample(init={"n_components": 3}, forward=Sample((scores(8),)), steps=(Sample((scores(5),)),))


def _swap(i, change):
    def make(s):
        args = list(s.args)
        args[i] = change(args[i])
        return Sample(tuple(args), s.kwargs, s.grad_args)
    return make


_POS = (0.0, math.inf)
_NOT_SIMPLEX = ErrorCase("probs not on the simplex", lambda s: Sample((s.args[0] * 2, s.args[1]), s.kwargs),
                         ValueError, r"probs must hold probability vectors")
_NAN_PROBS = ErrorCase("a NaN probability", _swap(0, lambda q: q.index_fill(1, torch.tensor([0]), math.nan)),
                       ValueError, r"probs must hold probability vectors .*no NaN")
_BAD_LABEL = ErrorCase("label out of range", lambda s: Sample((s.args[0], s.args[1] + 10), s.kwargs), ValueError,
                       r"target class indices must lie in \[0, 3\]")
_PROB_ERRORS = (
    _NOT_SIMPLEX, _NAN_PROBS, _BAD_LABEL,
    ErrorCase("1-D probs", _swap(0, lambda q: q[:, 0]), ValueError, r"probs must have shape \(N, C\)"),
    ErrorCase("0-d probs", _swap(0, lambda q: q[0, 0]), ValueError, r"probs must have shape \(N, C\)"),
    ErrorCase("integer probs", _swap(0, lambda q: q.long()), TypeError, r"probs must be a floating-point tensor"),
    ErrorCase("target of another length", _swap(1, lambda y: y[:-1]), ValueError, r"class-index target must have shape"),
    ErrorCase("soft target off the simplex", _swap(1, lambda y: torch.full((len(y), 4), 0.5, dtype=torch.float64)),
              ValueError, r"target must hold probability vectors"),
    ErrorCase("target on another device", _swap(1, lambda y: y.to("meta")), RuntimeError,
              r"target is on device meta but probs is on device cpu"),
)
_NAN_LOGITS = ErrorCase("a NaN logit", _swap(0, lambda z: z.index_fill(1, torch.tensor([0]), math.nan)), ValueError,
                        r"contains NaN")
_SOFT_TARGET_REFUSED = ErrorCase("probability target", _swap(1, lambda y: torch.full((len(y), 4), 0.25,
                                                                                         dtype=torch.float64)),
                                 TypeError, r"this loss takes class-index targets")
_SOFT_OFF_SIMPLEX = ErrorCase("probability target off the simplex",
                              _swap(1, lambda y: torch.full((len(y), 4), 0.5, dtype=torch.float64)), ValueError,
                              r"target must hold probability vectors")

register(log_score, module=LogScoreLoss, section="sec-proper-scores", input_kind="probabilities",
         output_range=_POS, properties={"proper", "nonnegative"}, gradient="exact", reference=_ref_log,
         reference_name="float64 scipy -xlogy(e_y, q)", sample=_prob_sample(), extreme=_prob_extreme(),
         weighted=True, errors=_PROB_ERRORS, second_order=True, references=("gneiting2007strictly",),
         equivalent=Equivalent("builtin", "F.nll_loss(log q)", _eq_log_score),
         formula=r"-\log q_y", summary="logarithmic score; Bayes risk = Shannon entropy")
register(brier_score, module=BrierScoreLoss, section="sec-proper-scores", input_kind="probabilities",
         output_range=(0.0, 2.0), properties={"proper", "nonnegative", "bounded"}, gradient="exact",
         reference=_ref_brier, reference_name="float64 numpy ||q - e_y||^2", sample=_prob_sample(),
         extreme=_prob_extreme(), weighted=True, errors=_PROB_ERRORS, second_order=True,
         references=("brier1950verification", "gneiting2007strictly"),
         equivalent=Equivalent("builtin", "Σ_k F.mse_loss(q, onehot)", _eq_brier_score),
         formula=r"\|q-e_y\|^2", summary="quadratic score; Bayes risk = Gini entropy")
register(spherical_score, module=SphericalScoreLoss, section="sec-proper-scores",
         input_kind="probabilities", output_range=(-1.0, 0.0), properties={"proper", "bounded"}, gradient="exact",
         reference=_ref_spherical, reference_name="float64 numpy -q_y/||q||", sample=_prob_sample(),
         extreme=_prob_extreme(), weighted=True, errors=_PROB_ERRORS, second_order=True,
         references=("gneiting2007strictly",),
         formula=r"-q_y/\|q\|_2", summary="spherical score; Bayes risk = -||η||")
register(focal_score, module=FocalScoreLoss, section="sec-proper-focal", input_kind="probabilities",
         output_range=_POS, properties={"nonnegative"}, gradient="exact", reference=_ref_focal,
         reference_name="float64 numpy -(1-q_y)^γ log q_y", sample=_prob_sample(gamma=1.5),
         extreme=_prob_extreme(gamma=2.0), weighted=True, second_order=True, references=("lin2017focal",),
         errors=(ErrorCase("negative gamma", _bad_kwarg(gamma=-1.0), ValueError, r"gamma must be a finite number >= 0"),
                 ErrorCase("NaN gamma", _bad_kwarg(gamma=math.nan), ValueError, r"gamma must be a finite number >= 0"),
                 ErrorCase("infinite gamma", _bad_kwarg(gamma=math.inf), ValueError,
                           r"gamma must be a finite number >= 0"),
                 *_PROB_ERRORS),
         formula=r"-(1-q_y)^\gamma\log q_y", summary="focal loss on probabilities: not proper")
register(fenchel_young_loss, module=FenchelYoungLoss, section="sec-proper-fy", input_kind="logits",
         output_range=_POS, properties={"convex", "nonnegative", "classification-calibrated"}, gradient="exact",
         reference=_ref_entmax_loss, reference_name="entmax.entmax_bisect_loss (float64)",
         sample=logits_sample(scale=1.5, regularizer="tsallis", alpha=1.3), extreme=_logit_extreme(regularizer="tsallis"),
         weighted=True, second_order=True,
         references=("blondel2020learning", "martins2016softmax", "peters2019sparse"),
         equivalent=Equivalent("peer", "entmax.entmax_bisect_loss", _eq_fenchel_young_loss, requires="entmax"),
         errors=(ErrorCase("unknown regularizer", _bad_kwarg(regularizer="renyi"), ValueError,
                           r"regularizer must be one of 'shannon'"),
                 ErrorCase("alpha <= 1", _bad_kwarg(alpha=1.0), ValueError, r"alpha must be a finite number > 1"),
                 ErrorCase("infinite alpha", _bad_kwarg(alpha=math.inf), ValueError,
                           r"alpha must be a finite number > 1"),
                 ErrorCase("NaN alpha", _bad_kwarg(alpha=math.nan), ValueError, r"alpha must be a finite number > 1"),
                 _NAN_LOGITS, _SOFT_OFF_SIMPLEX, _BAD_LABEL),
         formula=r"\Omega^*(\theta)+\Omega(y)-\langle\theta,y\rangle", summary="Fenchel-Young loss (Shannon, squared, Tsallis)")
register(sparsemax_loss, module=SparsemaxLoss, section="sec-proper-fy", input_kind="logits",
         output_range=_POS, properties={"convex", "nonnegative", "classification-calibrated"}, gradient="exact",
         reference=_ref_sparsemax_loss, reference_name="entmax.sparsemax_loss (float64)", sample=logits_sample(scale=1.5),
         extreme=_logit_extreme(), weighted=True, second_order=True,
         references=("martins2016softmax", "blondel2020learning"),
         equivalent=Equivalent("peer", "entmax.sparsemax_loss", _eq_sparsemax_loss, requires="entmax"),
         errors=(_NAN_LOGITS, _SOFT_OFF_SIMPLEX, _BAD_LABEL),
         formula=r"\tfrac12\|p-e_k\|^2+[\tau(z)-z_k]_+,\ p=\mathrm{sparsemax}(z)",
         summary="sparsemax loss; binary = modified Huber / 4")
register(sparse_softmax_loss, module=SparseSoftmaxLoss, section="sec-proper-sparse-softmax",
         input_kind="logits", output_range=_POS, properties={"nonnegative"}, gradient="exact",
         reference=_ref_sparse_softmax, reference_name="float64 numpy top-k logsumexp",
         sample=logits_sample(scale=1.5, k=2), extreme=_logit_extreme(k=2), weighted=True, second_order=True,
         references=("sun2021sparsesoftmax",),
         errors=(ErrorCase("k out of range", _bad_kwarg(k=0), ValueError, r"k must be an integer in \[1, 4\]"),
                 ErrorCase("k above C", _bad_kwarg(k=5), ValueError, r"k must be an integer in \[1, 4\]"),
                 ErrorCase("float k", _bad_kwarg(k=2.0), ValueError, r"k must be an integer in \[1, 4\]"),
                 _SOFT_TARGET_REFUSED, _BAD_LABEL),
         formula=r"\log\sum_{j\in\Omega_k\cup\{y\}}e^{z_j}-z_y", summary="top-k sparse-softmax cross-entropy")
register(z_loss, module=ZLoss, section="sec-proper-spherical", input_kind="logits", output_range=_POS,
         properties={"nonnegative"}, gradient="exact", reference=_ref_z, reference_name="float64 numpy Z-loss",
         sample=logits_sample(scale=1.5, a=1.5, b=2.0), extreme=_logit_extreme(), weighted=True, second_order=True,
         references=("debrebisson2016zloss",),
         errors=(ErrorCase("a <= 0", _bad_kwarg(a=0.0), ValueError, r"a must be a finite number > 0"),
                 ErrorCase("NaN a", _bad_kwarg(a=math.nan), ValueError, r"a must be a finite number > 0"),
                 ErrorCase("infinite b", _bad_kwarg(b=math.inf), ValueError, r"b must be finite"),
                 ErrorCase("NaN b", _bad_kwarg(b=math.nan), ValueError, r"b must be finite"),
                 ErrorCase("eps <= 0", _bad_kwarg(eps=0.0), ValueError, r"eps must be a finite number > 0"),
                 _SOFT_TARGET_REFUSED, _BAD_LABEL),
         formula=r"\tfrac1a\mathrm{softplus}(a(b-z_c)),\ z_c=(o_c-\mu)/\max(\sigma,\sigma_{\min})",
         summary="shift- and scale-invariant spherical loss")
register(log_z_penalty, module=None, section="sec-proper-spherical", input_kind="logits-only",
         output_range=_POS, properties={"nonnegative"}, gradient="exact", reference=_ref_log_z,
         reference_name="float64 scipy coef·logsumexp²", second_order=True, references=("chowdhery2023palm",),
         sample=lambda g, dt, dev: Sample(((torch.randn(6, 4, generator=g, dtype=torch.float64) * 2).to(dt).to(dev),),
                                          {"coef": 0.1}),
         extreme=lambda g, dt, dev: Sample((torch.tensor([[1e4, -1e4], [0.0, 0.0]], dtype=dt, device=dev),),
                                           {"coef": 1e-4}),
         errors=(ErrorCase("negative coef", _bad_kwarg(coef=-1.0), ValueError, r"coef must be a finite number >= 0"),
                 ErrorCase("NaN coef", _bad_kwarg(coef=math.nan), ValueError, r"coef must be a finite number >= 0"),
                 ErrorCase("1-D logits", _swap(0, lambda z: z[:, 0]), ValueError, r"logits must have shape \(N, C\)"),
                 ErrorCase("integer logits", _swap(0, lambda z: z.long()), TypeError,
                           r"logits must be a floating-point tensor")),
         formula=r"\lambda(\log\sum_k e^{o_k})^2", summary="PaLM's log-partition penalty (not the Z-loss)")
register(canonical_link_loss, module=None, section="sec-proper-legendretron", input_kind="binary-logits",
         output_range=(-math.inf, math.inf), properties={"convex"}, gradient="exact", reference=_ref_canonical,
         reference_name="float64 numpy Ψ(v) - y v", sample=_canonical_sample, extreme=_canonical_extreme,
         second_order=True, references=("lam2023legendretron",),
         errors=(ErrorCase("non-positive slope", lambda s: Sample(s.args, {**s.kwargs, "slopes": -s.kwargs["slopes"]}),
                           ValueError, r"slopes must be > 0"),
                 ErrorCase("weights off the simplex", lambda s: Sample(s.args, {**s.kwargs,
                                                                                "weights": 2 * s.kwargs["weights"]}),
                           ValueError, r"weights must lie on the simplex"),
                 ErrorCase("NaN bias", lambda s: Sample(s.args, {**s.kwargs, "biases": s.kwargs["biases"] * math.nan}),
                           ValueError, r"biases must be finite"),
                 ErrorCase("target outside [0, 1]", _swap(1, lambda t: t + 2), ValueError,
                           r"target must lie in \[0, 1\]"),
                 ErrorCase("2-D score", lambda s: Sample((s.args[0][:, None], s.args[1][:, None]), s.kwargs),
                           ValueError, r"score must have shape \(N,\)")),
         formula=r"\sum_j\tfrac{w_j}{s_j}\mathrm{softplus}(s_j(v-b_j)) - yv", summary="learned proper binary canonical link")
register_module(LearnedCanonicalLink, section="sec-proper-legendretron", input_kind="margins",
                output_range=(0.0, 1.0), properties=frozenset(), gradient="exact", reference=_ref_link,
                reference_name="float64 scipy Σ_j softmax(w)_j expit(e^{s_j}(v - b_j))", sample=_link_sample,
                learnable=True, references=("lam2023legendretron",),
                errors=(ErrorCase("integer scores", _swap(0, lambda v: v.long()), TypeError,
                                  r"score must be a floating-point tensor"),),
                formula=r"F(v)=\sum_j w_j\sigma(s_j(v-b_j))",
                summary="learnable proper binary canonical link (forward: the probability F(v); loss: .loss)")
