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
from lossbook.utils import check_reduction, reduce_loss, to_compute_dtype

__all__ = [
    "log_score", "brier_score", "spherical_score", "focal_score", "savage_score", "shannon_entropy",
    "gini_entropy", "expected_score_minimizer", "fenchel_young_loss", "sparsemax", "sparsemax_jacobian",
    "sparsemax_loss", "tsallis_entmax", "sparse_softmax", "sparse_softmax_loss", "z_loss", "log_z_penalty",
    "spherical_softmax", "taylor_softmax", "canonical_link_loss", "LearnedCanonicalLink",
    "LogScoreLoss", "BrierScoreLoss", "SphericalScoreLoss", "FocalScoreLoss", "FenchelYoungLoss",
    "SparsemaxLoss", "SparseSoftmaxLoss", "ZLoss",
]


def _finish(loss: torch.Tensor, like: torch.Tensor, reduction: str, weight: torch.Tensor | None) -> torch.Tensor:
    V.check_weight(weight, loss.shape, like)
    return reduce_loss(loss, reduction, weight).to(like.dtype)


def _check_scores(x: torch.Tensor, target: torch.Tensor, name: str) -> None:
    V.check_floating(x, name)
    V.check_tensor(target, "target")
    V.check_same_device(**{name: x, "target": target})
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, C), got {tuple(x.shape)}")
    if target.is_floating_point():
        V.check_same_shape(x, target, (name, "target"))
    else:
        if target.shape != x.shape[:1]:
            raise ValueError(f"class-index target must have shape (N,) = {tuple(x.shape[:1])}, "
                             f"got {tuple(target.shape)}")
        V.check_class_target(target, x.shape[1])


def _check_simplex(probs: torch.Tensor) -> None:
    """Value check (eager only): rows are probability vectors."""
    if torch.compiler.is_compiling() or probs.numel() == 0:
        return
    tol = max(1e-4, 8 * torch.finfo(probs.dtype).eps)
    if bool((probs < 0).any()) or bool(((probs.sum(-1) - 1).abs() > tol).any()):
        raise ValueError("probs must hold probability vectors (entries >= 0, rows summing to 1); "
                         "apply softmax to logits first")


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
        probs: ``(N, C)`` rows on the simplex (checked in eager mode).
        target: int64 classes ``(N,)`` or probabilities ``(N, C)``.
        weight: optional per-sample weights ``(N,)``.
        reduction: ``"none"`` (shape ``(N,)``) | ``"mean"`` | ``"sum"``.

    Reference: Good (1952); Gneiting & Raftery (2007), *Strictly Proper Scoring Rules*.

    Example:
        >>> log_score(torch.tensor([[0.5, 0.5], [0.25, 0.75]]), torch.tensor([0, 1]), reduction="none")
        tensor([0.6931, 0.2877])
    """
    _check_scores(probs, target, "probs")
    check_reduction(reduction)
    _check_simplex(probs)
    q = to_compute_dtype(probs)
    if target.is_floating_point():
        loss = -torch.xlogy(target.to(q.dtype), q).sum(-1)
    else:
        loss = -torch.log(q.gather(-1, target.unsqueeze(-1)).squeeze(-1))
    return _finish(loss, probs, reduction, weight)


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
    _check_scores(probs, target, "probs")
    check_reduction(reduction)
    _check_simplex(probs)
    q = to_compute_dtype(probs)
    e = _onehot(target, q)
    loss = q.square().sum(-1) - 2 * (q * e).sum(-1) + e.sum(-1)
    return _finish(loss, probs, reduction, weight)


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
    _check_scores(probs, target, "probs")
    check_reduction(reduction)
    _check_simplex(probs)
    q = to_compute_dtype(probs)
    loss = -_per_class(q, target) / torch.linalg.vector_norm(q, dim=-1)
    return _finish(loss, probs, reduction, weight)


def focal_score(probs: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0,
                weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Focal loss on probabilities :math:`S(q, y) = -(1 - q_y)^\gamma \log q_y`: **not proper** for :math:`\gamma > 0`.

    Here for the properness probe of Chapter 2: the minimiser of its expected
    score is pulled toward the uniform distribution (for :math:`\eta = 0.8`
    and :math:`\gamma = 2`, :math:`q^* \approx 0.627`). The training loss on
    logits lives with the classification losses (Chapter 4).

    Reference: Lin et al. (2017), *Focal Loss for Dense Object Detection*.

    Example:
        >>> focal_score(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), gamma=1.0)
        tensor(0.3466)
    """
    _check_scores(probs, target, "probs")
    V.check_nonnegative(gamma, "gamma")
    check_reduction(reduction)
    _check_simplex(probs)
    q = to_compute_dtype(probs)
    if target.is_floating_point():
        # Classes with zero target mass contribute nothing: evaluate them at q = 1 so that
        # neither the value nor the gradient meets 0·log 0.
        t = target.to(q.dtype)
        q = torch.where(t > 0, q, torch.ones_like(q))
        loss = -(t * torch.pow(1.0 - q, gamma) * torch.log(q)).sum(-1)
    else:
        qy = q.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        loss = -torch.pow(1.0 - qy, gamma) * torch.log(qy)
    return _finish(loss, probs, reduction, weight)


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

    Reference: Martins & Astudillo (2016), *From Softmax to Sparsemax*, Algorithm 1.

    Example:
        >>> sparsemax(torch.tensor([1.0, 0.8, -1.0]))
        tensor([0.6000, 0.4000, 0.0000])
    """
    V.check_floating(input, "input")
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


def tsallis_entmax(input: torch.Tensor, alpha: float = 1.5, dim: int = -1, n_iter: int = 60) -> torch.Tensor:
    r""":math:`\alpha`-entmax :math:`[(\alpha-1)z - \tau]_+^{1/(\alpha-1)}`, with :math:`\tau` found by bisection.

    The prediction map of the Tsallis-:math:`\alpha` Fenchel–Young loss:
    :math:`\alpha \to 1` is softmax, :math:`\alpha = 2` is sparsemax. The
    result is not differentiated through (use it inside
    :func:`fenchel_young_loss`, whose gradient needs only its value); 60
    bisection steps reach float64 precision.

    Reference: Peters, Niculae & Martins (2019), *Sparse Sequence-to-Sequence Models*;
    Blondel, Martins & Niculae (2020), *Learning with Fenchel-Young Losses*.

    Example:
        >>> tsallis_entmax(torch.tensor([1.0, 0.8, -1.0]), alpha=2.0)
        tensor([0.6000, 0.4000, 0.0000])
    """
    V.check_floating(input, "input")
    if not (isinstance(alpha, (int, float)) and alpha > 1):
        raise ValueError(f"alpha must be a number > 1 (alpha -> 1 is softmax), got {alpha!r}")
    with torch.no_grad():
        z = (to_compute_dtype(input).movedim(dim, -1)) * (alpha - 1)
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
        p = p / p.sum(-1, keepdim=True)
    return p.movedim(-1, dim).to(input.dtype)


# --------------------------------------------------------------------------- Fenchel-Young losses

_REGULARIZERS = ("shannon", "squared", "tsallis")


def _omega(p: torch.Tensor, regularizer: str, alpha: float) -> torch.Tensor:
    """Ω on the simplex: negative Shannon entropy, ½‖p‖², or the negative Tsallis entropy."""
    if regularizer == "shannon":
        return torch.xlogy(p, p).sum(-1)
    if regularizer == "squared":
        return 0.5 * p.square().sum(-1)
    return (p.pow(alpha).sum(-1) - p.sum(-1)) / (alpha * (alpha - 1))


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
      the sparsemax loss;
    * ``"tsallis"``: :math:`\Omega(p) = \frac{\sum_j p_j^\alpha - 1}{\alpha(\alpha-1)}`,
      :math:`\hat y` = :func:`tsallis_entmax` (``alpha > 1``; 2 gives the sparsemax loss).

    The loss is convex in :math:`\theta`, zero iff :math:`\hat y = y`, and its
    gradient is :math:`\hat y_\Omega(\theta) - y`: we compute :math:`\hat y`
    without gradient and let autograd differentiate the linear term
    (Danskin's theorem), which is exact.

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
    if regularizer not in _REGULARIZERS:
        raise ValueError(f"regularizer must be one of {', '.join(repr(r) for r in _REGULARIZERS)}, "
                         f"got {regularizer!r}")
    if regularizer == "tsallis" and not (isinstance(alpha, (int, float)) and alpha > 1):
        raise ValueError(f"alpha must be a number > 1 for the Tsallis regularizer, got {alpha!r}")
    check_reduction(reduction)
    th = to_compute_dtype(theta)
    y = _onehot(target, th)
    if regularizer == "shannon":
        conj = torch.logsumexp(th, -1)
    else:
        p = sparsemax(th.detach()) if regularizer == "squared" else tsallis_entmax(th.detach(), alpha)
        conj = (th * p).sum(-1) - _omega(p, regularizer, alpha)
    loss = conj + _omega(y, regularizer, alpha) - (th * y).sum(-1)
    return _finish(loss, theta, reduction, weight)


def sparsemax_loss(logits: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                   reduction: str = "mean") -> torch.Tensor:
    r"""Sparsemax loss (Martins & Astudillo, 2016), the Fenchel–Young loss of :math:`\tfrac12\|p\|^2`.

    .. math::
        L(z; q) = -\langle q, z\rangle + \tfrac12\sum_{j\in S(z)}\big(z_j^2 - \tau(z)^2\big) + \tfrac12\|q\|^2

    with :math:`S(z)` the support of :func:`sparsemax` and :math:`q = e_k`
    for a class index :math:`k`. Non-negative, zero iff
    :math:`z_k \ge 1 + \max_{j\ne k} z_j`, gradient :math:`\mathrm{sparsemax}(z) - q`.
    With two classes and :math:`t = z_1 - z_2` (target 1) it is a quarter of
    the modified Huber loss of :math:`t`.

    Reference: Martins & Astudillo (2016), *From Softmax to Sparsemax*, ICML, eq. (13) and its multi-label form.

    Example:
        >>> sparsemax_loss(torch.tensor([[1.0, 0.8, -1.0], [3.0, 0.0, 0.0]]), torch.tensor([0, 0]),
        ...                reduction="none")
        tensor([0.1600, 0.0000])
    """
    _check_scores(logits, target, "logits")
    check_reduction(reduction)
    z = to_compute_dtype(logits)
    q = _onehot(target, z)
    tau = _sparsemax_threshold(z)
    support = (z > tau).to(z.dtype)
    loss = -(q * z).sum(-1) + 0.5 * (support * (z.square() - tau.square())).sum(-1) + 0.5 * q.square().sum(-1)
    return _finish(loss, logits, reduction, weight)


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
    if not (isinstance(k, int) and 1 <= k <= z.shape[-1]):
        raise ValueError(f"k must be an integer in [1, {z.shape[-1]}], got {k!r}")
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
    against the paper.

    Args:
        logits: ``(N, C)``; target: int64 classes ``(N,)``; k: ``1 <= k <= C``.

    Example:
        >>> h = torch.tensor([[2.0, 1.0, 0.0]])
        >>> sparse_softmax_loss(h, torch.tensor([0]), k=2)
        tensor(0.3133)
    """
    _check_scores(logits, target, "logits")
    if target.is_floating_point():
        raise TypeError("sparse_softmax_loss needs int64 class indices as target")
    if not (isinstance(k, int) and 1 <= k <= logits.shape[-1]):
        raise ValueError(f"k must be an integer in [1, {logits.shape[-1]}], got {k!r}")
    check_reduction(reduction)
    z = to_compute_dtype(logits)
    keep = torch.zeros_like(z, dtype=torch.bool).scatter(-1, z.topk(k, dim=-1).indices, True)
    keep = keep.scatter(-1, target.unsqueeze(-1), True)
    lse = torch.logsumexp(z.masked_fill(~keep, -math.inf), dim=-1)
    loss = lse - z.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return _finish(loss, logits, reduction, weight)


# --------------------------------------------------------------------------- spherical family


def z_loss(logits: torch.Tensor, target: torch.Tensor, *, a: float = 1.0, b: float = 3.0,
           weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Z-loss (de Brébisson & Vincent, 2016): a softplus of the standardised target logit.

    .. math::
        \mu = \tfrac1C\sum_k o_k,\quad \sigma^2 = \tfrac1C\sum_k(o_k-\mu)^2,\quad
        z_c = \frac{o_c - \mu}{\sigma},\quad L_Z = \tfrac1a\,\mathrm{softplus}\big(a(b - z_c)\big)

    Invariant to :math:`o \mapsto \alpha o + \beta` for :math:`\alpha > 0`, so
    its gradient is orthogonal to :math:`\mathbf 1` and to :math:`o`. It
    depends on :math:`o` only through :math:`o_c`, :math:`\sum_k o_k` and
    :math:`\sum_k o_k^2` (the *spherical family*), which permits
    output-size-independent updates. Since :math:`|z_c| \le \sqrt{C-1}`, the
    loss lies in :math:`[\tfrac1a\mathrm{softplus}(a(b-\sqrt{C-1})), \tfrac1a\mathrm{softplus}(a(b+\sqrt{C-1}))]`.
    Constant logits (:math:`\sigma = 0`) give :math:`z_c = 0` and zero gradient
    through :math:`\sigma`. The defaults ``a=1, b=3`` are lossbook's, not the
    paper's tuned values: tune them (``b`` near :math:`\sqrt{C-1}` asks for a
    clear winner). Not to be confused with PaLM's :func:`log_z_penalty`.

    Reference: de Brébisson & Vincent (2016), *The Z-loss: a shift and scale
    invariant classification loss belonging to the Spherical Family*.

    Example:
        >>> o = torch.tensor([[2.0, 0.0, -2.0]])
        >>> torch.allclose(z_loss(o, torch.tensor([0])), z_loss(5 * o + 1, torch.tensor([0])))
        True
    """
    _check_scores(logits, target, "logits")
    if target.is_floating_point():
        raise TypeError("z_loss needs int64 class indices as target")
    V.check_positive(a, "a")
    if not (isinstance(b, (int, float)) and math.isfinite(b)):
        raise ValueError(f"b must be a finite number, got {b!r}")
    check_reduction(reduction)
    o = to_compute_dtype(logits)
    centred = o - o.mean(-1, keepdim=True)
    sigma = (centred * centred).mean(-1).clamp_min(torch.finfo(o.dtype).tiny).sqrt()
    # only the target's standardised score is needed: no (N, C) standardised copy
    zc = centred.gather(-1, target.unsqueeze(-1)).squeeze(-1) / sigma
    loss = F.softplus(a * (b - zc)) / a
    return _finish(loss, logits, reduction, weight)


def log_z_penalty(logits: torch.Tensor, *, coef: float = 1e-4, reduction: str = "mean") -> torch.Tensor:
    r"""PaLM's "z-loss": the log-partition penalty :math:`\lambda\,\big(\log\sum_k e^{o_k}\big)^2`.

    An auxiliary term added to cross-entropy that keeps the softmax
    normaliser near 1 (:math:`\log Z \approx 0`) for numerical stability in
    large-vocabulary training. It shares a name with, but has nothing to do
    with, :func:`z_loss`.

    Args:
        logits: ``(N, C)``; coef: :math:`\lambda \ge 0` (PaLM used :math:`10^{-4}`).

    Reference: Chowdhery et al. (2022), *PaLM: Scaling Language Modeling with Pathways*, Section 5.

    Example:
        >>> log_z_penalty(torch.zeros(1, 4), coef=1.0)
        tensor(1.9218)
    """
    V.check_floating(logits, "logits")
    V.check_nonnegative(coef, "coef")
    check_reduction(reduction)
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, C), got {tuple(logits.shape)}")
    loss = coef * torch.logsumexp(to_compute_dtype(logits), -1).square()
    return reduce_loss(loss, reduction).to(logits.dtype)


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
        target: ``(N,)`` floats in ``[0, 1]`` (labels or probabilities).
        weights: ``(K,)`` mixture weights on the simplex; slopes: ``(K,)`` positive; biases: ``(K,)``.

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
    V.check_floating(score, "score")
    V.check_floating(target, "target")
    V.check_same_device(score=score, target=target, weights=weights, slopes=slopes, biases=biases)
    V.check_same_shape(score, target, ("score", "target"))
    if score.dim() != 1:
        raise ValueError(f"score must have shape (N,), got {tuple(score.shape)}")
    for name, t in (("weights", weights), ("slopes", slopes), ("biases", biases)):
        V.check_floating(t, name)
        if t.shape != weights.shape or t.dim() != 1:
            raise ValueError(f"weights, slopes and biases must all have shape (K,), got {name} {tuple(t.shape)}")
    if not torch.compiler.is_compiling():
        if bool((slopes.detach() <= 0).any()):
            raise ValueError("slopes must be > 0 (the link must be increasing)")
        if bool((weights.detach() < 0).any()) or abs(float(weights.detach().sum()) - 1) > 1e-4:
            raise ValueError("weights must lie on the simplex (>= 0, summing to 1); use softmax of free parameters")
    check_reduction(reduction)
    v = to_compute_dtype(score).unsqueeze(-1)
    t = to_compute_dtype(target).unsqueeze(-1)
    u = slopes * (v - biases)
    per = (weights / slopes) * ((1 - t) * F.softplus(u) + t * F.softplus(-u))
    loss = per.sum(-1) - t.squeeze(-1) * (weights * biases).sum()
    return reduce_loss(loss, reduction).to(score.dtype)


class LearnedCanonicalLink(nn.Module):
    r"""A learnable, provably proper binary canonical link: :math:`K` sigmoid components (see :func:`canonical_link_loss`).

    Parameters: free weights (softmax → :math:`w\in\Delta`), log-slopes
    (exp → :math:`s > 0`) and biases :math:`b`. Whatever values training
    gives them, the loss stays proper and :math:`\Psi` convex. Train it
    jointly with the score model by minimising ``link.loss(score, target)``;
    ``link(score)`` returns the probability :math:`F(v)`.

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
        w, s, b = self.components()
        return (w * torch.sigmoid(s * (score.unsqueeze(-1) - b))).sum(-1)

    def psi(self, score: torch.Tensor) -> torch.Tensor:
        r"""The convex potential :math:`\Psi(v)`."""
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
        V.check_same_shape(score, target, ("score", "target"))
        check_reduction(reduction)
        w, s, b = self.components()
        u = s * (score.unsqueeze(-1) - b)
        log_f = torch.logsumexp(torch.log(w) + F.logsigmoid(u), -1)
        log_1mf = torch.logsumexp(torch.log(w) + F.logsigmoid(-u), -1)
        return reduce_loss(-(target * log_f + (1 - target) * log_1mf), reduction)


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

from lossbook.registry import ErrorCase, Sample, register  # noqa: E402
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
    import numpy as np
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


def _ref_z(logits, target, a=1.0, b=3.0):
    import numpy as np
    o = _np(logits)
    z = (o - o.mean(1, keepdims=True)) / o.std(1, keepdims=True)
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


_POS = (0.0, math.inf)
_NOT_SIMPLEX = ErrorCase("probs not on the simplex", lambda s: Sample((s.args[0] * 2, s.args[1]), s.kwargs),
                         ValueError, r"probs must hold probability vectors")
_BAD_LABEL = ErrorCase("label out of range", lambda s: Sample((s.args[0], s.args[1] + 10), s.kwargs), ValueError,
                       r"target class indices must lie in \[0, 3\]")

register(log_score, module=LogScoreLoss, section="sec-proper-scores", input_kind="probabilities",
         output_range=_POS, properties={"proper", "nonnegative"}, gradient="exact", reference=_ref_log,
         reference_name="float64 scipy -xlogy(e_y, q)", sample=_prob_sample(), extreme=_prob_extreme(),
         weighted=True, errors=(_NOT_SIMPLEX, _BAD_LABEL), formula=r"-\log q_y",
         summary="logarithmic score; Bayes risk = Shannon entropy")
register(brier_score, module=BrierScoreLoss, section="sec-proper-scores", input_kind="probabilities",
         output_range=(0.0, 2.0), properties={"proper", "nonnegative", "bounded"}, gradient="exact",
         reference=_ref_brier, reference_name="float64 numpy ||q - e_y||^2", sample=_prob_sample(),
         extreme=_prob_extreme(), weighted=True, errors=(_NOT_SIMPLEX, _BAD_LABEL), formula=r"\|q-e_y\|^2",
         summary="quadratic score; Bayes risk = Gini entropy")
register(spherical_score, module=SphericalScoreLoss, section="sec-proper-scores",
         input_kind="probabilities", output_range=(-1.0, 0.0), properties={"proper", "bounded"}, gradient="exact",
         reference=_ref_spherical, reference_name="float64 numpy -q_y/||q||", sample=_prob_sample(),
         extreme=_prob_extreme(), weighted=True, errors=(_NOT_SIMPLEX, _BAD_LABEL), formula=r"-q_y/\|q\|_2",
         summary="spherical score; Bayes risk = -||η||")
register(focal_score, module=FocalScoreLoss, section="sec-proper-focal", input_kind="probabilities",
         output_range=_POS, properties={"nonnegative"}, gradient="exact", reference=_ref_focal,
         reference_name="float64 numpy -(1-q_y)^γ log q_y", sample=_prob_sample(gamma=1.5),
         extreme=_prob_extreme(gamma=2.0), weighted=True,
         errors=(ErrorCase("negative gamma", _bad_kwarg(gamma=-1.0), ValueError, r"gamma must be a finite number >= 0"),),
         formula=r"-(1-q_y)^\gamma\log q_y", summary="focal loss on probabilities: not proper")
register(fenchel_young_loss, module=FenchelYoungLoss, section="sec-proper-fy", input_kind="logits",
         output_range=_POS, properties={"convex", "nonnegative", "classification-calibrated"}, gradient="exact",
         reference=_ref_entmax_loss, reference_name="entmax.entmax_bisect_loss (float64)",
         sample=logits_sample(scale=1.5, regularizer="tsallis", alpha=1.3), extreme=_logit_extreme(regularizer="tsallis"),
         weighted=True, compile=False,
         errors=(ErrorCase("unknown regularizer", _bad_kwarg(regularizer="renyi"), ValueError,
                           r"regularizer must be one of 'shannon'"),
                 ErrorCase("alpha <= 1", _bad_kwarg(alpha=1.0), ValueError, r"alpha must be a number > 1"),
                 _BAD_LABEL),
         formula=r"\Omega^*(\theta)+\Omega(y)-\langle\theta,y\rangle", summary="Fenchel-Young loss (Shannon, squared, Tsallis)")
register(sparsemax_loss, module=SparsemaxLoss, section="sec-proper-fy", input_kind="logits",
         output_range=_POS, properties={"convex", "nonnegative", "classification-calibrated"}, gradient="exact",
         reference=_ref_sparsemax_loss, reference_name="entmax.sparsemax_loss (float64)", sample=logits_sample(scale=1.5),
         extreme=_logit_extreme(), weighted=True, errors=(_BAD_LABEL,),
         formula=r"-z_k+\tfrac12\sum_{j\in S}(z_j^2-\tau^2)+\tfrac12", summary="sparsemax loss; binary = modified Huber / 4")
register(sparse_softmax_loss, module=SparseSoftmaxLoss, section="sec-proper-sparse-softmax",
         input_kind="logits", output_range=_POS, properties={"nonnegative"}, gradient="exact",
         reference=_ref_sparse_softmax, reference_name="float64 numpy top-k logsumexp",
         sample=logits_sample(scale=1.5, k=2), extreme=_logit_extreme(k=2), weighted=True,
         errors=(ErrorCase("k out of range", _bad_kwarg(k=0), ValueError, r"k must be an integer in \[1, 4\]"),
                 _BAD_LABEL),
         formula=r"\log\sum_{j\in\Omega_k\cup\{y\}}e^{z_j}-z_y", summary="top-k sparse-softmax cross-entropy")
register(z_loss, module=ZLoss, section="sec-proper-spherical", input_kind="logits", output_range=_POS,
         properties={"nonnegative"}, gradient="exact", reference=_ref_z, reference_name="float64 numpy Z-loss",
         sample=logits_sample(scale=1.5, a=1.5, b=2.0), extreme=_logit_extreme(), weighted=True,
         errors=(ErrorCase("a <= 0", _bad_kwarg(a=0.0), ValueError, r"a must be a finite number > 0"), _BAD_LABEL),
         formula=r"\tfrac1a\mathrm{softplus}(a(b-z_c)),\ z_c=(o_c-\mu)/\sigma", summary="shift- and scale-invariant spherical loss")
register(log_z_penalty, module=None, section="sec-proper-spherical", input_kind="logits-only",
         output_range=_POS, properties={"nonnegative"}, gradient="exact", reference=_ref_log_z,
         reference_name="float64 scipy coef·logsumexp²",
         sample=lambda g, dt, dev: Sample(((torch.randn(6, 4, generator=g, dtype=torch.float64) * 2).to(dt).to(dev),),
                                          {"coef": 0.1}),
         extreme=lambda g, dt, dev: Sample((torch.tensor([[1e4, -1e4], [0.0, 0.0]], dtype=dt, device=dev),),
                                           {"coef": 1e-4}),
         errors=(ErrorCase("negative coef", _bad_kwarg(coef=-1.0), ValueError, r"coef must be a finite number >= 0"),),
         formula=r"\lambda(\log\sum_k e^{o_k})^2", summary="PaLM's log-partition penalty (not the Z-loss)")
register(canonical_link_loss, module=None, section="sec-proper-legendretron", input_kind="binary-logits",
         output_range=(-math.inf, math.inf), properties={"convex"}, gradient="exact", reference=_ref_canonical,
         reference_name="float64 numpy Ψ(v) - y v", sample=_canonical_sample, extreme=_canonical_extreme,
         errors=(ErrorCase("non-positive slope", lambda s: Sample(s.args, {**s.kwargs, "slopes": -s.kwargs["slopes"]}),
                           ValueError, r"slopes must be > 0"),),
         formula=r"\sum_j\tfrac{w_j}{s_j}\mathrm{softplus}(s_j(v-b_j)) - yv", summary="learned proper binary canonical link")
