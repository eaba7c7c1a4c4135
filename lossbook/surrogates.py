r"""Risk, surrogate losses and consistency (Chapter 1 of the book).

The 0-1 loss is what we care about and cannot optimise; a *surrogate* is what
we optimise instead. This module holds the binary margin surrogates
(:func:`margin_loss`), the tools of classification calibration
(Bartlett, Jordan & McAuliffe, 2006: :func:`conditional_risk`,
:func:`calibration_function`, :func:`psi_transform`,
:func:`is_classification_calibrated`), the multiclass comp-sum family
(:func:`comp_sum_loss`, Mao, Mohri & Zhong, 2023), random calibrated loss
ensembles (:func:`sample_calibrated_derivative`,
:func:`ensloss_margin_surrogate`, :class:`EnsLoss`), the functional-gradient
view of boosting (:func:`boosting_targets`) and the Levin-tree-search loss
(:func:`lts_loss`).

Conventions: a *margin* is :math:`m = y f(x)` with :math:`y \in \{-1, +1\}`;
multiclass ``logits`` have shape ``(N, C)`` and ``target`` is either int64
class indices ``(N,)`` or class probabilities ``(N, C)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lossbook import validation as V
from lossbook.registry import module_twin
from lossbook.utils import check_reduction, finish, to_compute_dtype

__all__ = [
    "MARGIN_KINDS", "CONVEX_MARGIN_KINDS", "margin_loss", "zero_one_loss", "conditional_risk",
    "calibration_function", "psi_transform", "is_classification_calibrated", "comp_sum_loss",
    "CalibratedDerivative", "sample_calibrated_derivative", "ensloss_margin_surrogate", "EnsLoss",
    "boosting_targets", "lts_loss", "MarginLoss", "CompSumLoss", "LTSLoss",
]


# --------------------------------------------------------------------------- binary margin surrogates


def _hinge(z):
    return F.relu(1.0 - z)


def _logistic(z):
    return F.softplus(-z)


def _exponential(z):
    return torch.exp(-z)


def _squared_hinge(z):
    return F.relu(1.0 - z).square()


def _squared(z):
    return (1.0 - z).square()


def _modified_huber(z):
    return torch.where(z >= -1.0, F.relu(1.0 - z).square(), -4.0 * z)


def _sigmoid(z):
    # 1 - tanh z = 2 / (1 + e^{2z}) = 2 σ(-2z): no cancellation for large z.
    return 2.0 * torch.sigmoid(-2.0 * z)


def _savage(z):
    # (1 + e^z)^{-2} = σ(-z)^2.
    return torch.sigmoid(-z).square()


_MARGIN_FUNCS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "hinge": _hinge,
    "logistic": _logistic,
    "exponential": _exponential,
    "squared_hinge": _squared_hinge,
    "squared": _squared,
    "modified_huber": _modified_huber,
    "sigmoid": _sigmoid,
    "savage": _savage,
}
MARGIN_KINDS: tuple[str, ...] = tuple(_MARGIN_FUNCS)
"""The kinds accepted by :func:`margin_loss`."""
CONVEX_MARGIN_KINDS: frozenset[str] = frozenset(
    {"hinge", "logistic", "exponential", "squared_hinge", "squared", "modified_huber"})
"""The convex ones; ``sigmoid`` and ``savage`` are bounded and non-convex."""


def _check_kind(kind: str) -> None:
    V.check_choice(kind, "kind", MARGIN_KINDS)


def margin_loss(margin: torch.Tensor, *, kind: str = "logistic", weight: torch.Tensor | None = None,
                reduction: str = "mean") -> torch.Tensor:
    r"""A binary margin surrogate :math:`\phi(m)` of the 0-1 loss :math:`\mathbb 1[m \le 0]`, with :math:`m = y f(x)`.

    .. math::
        \begin{array}{ll}
        \mathrm{hinge} & \max(0, 1-m) \\
        \mathrm{logistic} & \log(1+e^{-m}) \\
        \mathrm{exponential} & e^{-m} \\
        \mathrm{squared\ hinge} & \max(0, 1-m)^2 \\
        \mathrm{squared} & (1-m)^2 \\
        \mathrm{modified\ Huber} & \max(0,1-m)^2 \text{ if } m \ge -1 \text{ else } -4m \\
        \mathrm{sigmoid} & 1 - \tanh m \\
        \mathrm{Savage} & (1+e^{m})^{-2}
        \end{array}

    The ``kind`` names are ``"hinge"``, ``"logistic"``, ``"exponential"``,
    ``"squared_hinge"``, ``"squared"``, ``"modified_huber"``, ``"sigmoid"`` and
    ``"savage"``.

    All eight are classification-calibrated; the first six are convex. The
    logistic loss is computed as ``softplus(-m)``, the sigmoid loss as
    :math:`2\sigma(-2m)` and the Savage loss as :math:`\sigma(-m)^2`, so that
    none overflows or cancels for large :math:`|m|` (the exponential loss
    itself overflows for :math:`m < -88` in float32: that is the loss, not the
    numerics). The mean logistic margin loss equals
    :func:`torch.nn.functional.soft_margin_loss`.

    Args:
        margin: margins :math:`m = y f(x)`, any shape, floating point.
        kind: one of :data:`MARGIN_KINDS`.
        weight: optional non-negative weights broadcastable to ``margin``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

    Reference: Bartlett, Jordan & McAuliffe (2006), *Convexity, Classification,
    and Risk Bounds*; the Savage loss is from Masnadi-Shirazi & Vasconcelos
    (2008), *On the Design of Loss Functions for Classification*.

    Example:
        >>> margin_loss(torch.tensor([-1.0, 0.0, 2.0]), kind="hinge", reduction="none")
        tensor([2., 1., 0.])
    """
    V.check_floating(margin, "margin")
    _check_kind(kind)
    check_reduction(reduction)
    z = to_compute_dtype(margin)
    return finish(_MARGIN_FUNCS[kind](z), reduction, like=margin, weight=weight)


def zero_one_loss(logits: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""The multiclass 0-1 loss :math:`\mathbb 1[\arg\max_k h_k(x) \ne y]`: a metric, not trainable.

    Ties go to the smallest index (``argmax``'s choice). The gradient is zero
    almost everywhere, which is the whole reason surrogates exist.

    Example:
        >>> zero_one_loss(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
        tensor(0.5000)
    """
    V.check_logits_target(logits, target, name="logits", soft=False)
    check_reduction(reduction)
    return finish((logits.argmax(-1) != target).to(logits.dtype), reduction, like=logits)


# --------------------------------------------------------------------------- classification calibration


def _phi(phi: str | Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(phi, str):
        _check_kind(phi)
        return _MARGIN_FUNCS[phi]
    if not callable(phi):
        raise TypeError(f"phi must be a margin-loss kind or a callable, got {type(phi).__name__}")
    return phi


def conditional_risk(phi: str | Callable, eta: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    r"""Conditional :math:`\phi`-risk :math:`C_\eta(\alpha) = \eta\,\phi(\alpha) + (1-\eta)\,\phi(-\alpha)`.

    The expected surrogate loss at a point :math:`x` with
    :math:`\eta = P(Y = 1 \mid x)` when the score there is :math:`\alpha`.
    ``eta`` and ``alpha`` broadcast against each other.

    Example:
        >>> conditional_risk("hinge", torch.tensor(0.8), torch.tensor([-1.0, 0.0, 1.0]))
        tensor([1.6000, 1.0000, 0.4000])
    """
    f = _phi(phi)
    return eta * f(alpha) + (1.0 - eta) * f(-alpha)


def calibration_function(phi: str | Callable, thetas: torch.Tensor,
                         alpha_grid: torch.Tensor | None = None) -> torch.Tensor:
    r"""The calibration function :math:`\tilde\psi(\theta) = H^-(\eta) - H(\eta)`, :math:`\eta = \tfrac{1+\theta}2`, on a grid.

    .. math::
        H(\eta) = \inf_\alpha C_\eta(\alpha), \qquad
        H^-(\eta) = \inf_{\alpha(2\eta-1) \le 0} C_\eta(\alpha)

    :math:`H^-` is the best conditional risk among scores with the *wrong*
    sign. :math:`\phi` is classification-calibrated iff
    :math:`\tilde\psi(\theta) > 0` for every :math:`\theta \in (0, 1]`, and the
    convex hull :math:`\psi` of :math:`\tilde\psi` gives the excess-risk bound
    :math:`\psi(R_{0\text{-}1}(f) - R^*_{0\text{-}1}) \le R_\phi(f) - R^*_\phi`.
    For every loss of :data:`MARGIN_KINDS`, :math:`\tilde\psi` is already
    convex and equals :func:`psi_transform`. Infima are minima over
    ``alpha_grid`` (default: 40 001 points on :math:`[-20, 20]`, plus 0), so
    the result is accurate to about :math:`10^{-5}` for these losses.

    Args:
        phi: a margin-loss kind or a callable :math:`\phi` acting elementwise on tensors.
        thetas: values in :math:`[-1, 1]`, any shape (:math:`\tilde\psi` is even).
        alpha_grid: 1-D grid of scores.

    Reference: Bartlett, Jordan & McAuliffe (2006), Definition 2.

    Example:
        >>> calibration_function("hinge", torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
        tensor([0.0000, 0.5000, 1.0000], dtype=torch.float64)
    """
    V.check_floating(thetas, "thetas")
    if alpha_grid is None:
        alpha_grid = torch.linspace(-20.0, 20.0, 40001, dtype=thetas.dtype, device=thetas.device)
    alpha = torch.cat([alpha_grid.flatten(), alpha_grid.new_zeros(1)])
    eta = ((1.0 + thetas.abs()) / 2).reshape(-1, 1)
    risk = conditional_risk(phi, eta, alpha.reshape(1, -1))
    h = risk.min(-1).values
    wrong = risk.masked_fill((alpha > 0).reshape(1, -1), math.inf)  # η ≥ ½: wrong sign is α ≤ 0
    return (wrong.min(-1).values - h).reshape(thetas.shape)


def psi_transform(kind: str, theta: torch.Tensor) -> torch.Tensor:
    r"""Closed-form :math:`\psi`-transform of a margin loss (Bartlett, Jordan & McAuliffe, 2006).

    .. math::
        \begin{array}{ll}
        \mathrm{hinge,\ sigmoid} & |\theta| \\
        \mathrm{exponential} & 1 - \sqrt{1-\theta^2} \\
        \mathrm{logistic} & \tfrac{1+\theta}2\log(1+\theta) + \tfrac{1-\theta}2\log(1-\theta) \\
        \mathrm{squared,\ squared\ hinge,\ modified\ Huber} & \theta^2 \\
        \mathrm{Savage} & \theta^2/4
        \end{array}

    (natural logarithms; :math:`\theta = 2\eta - 1`). Derived in Chapter 1 of the book and checked there
    against :func:`calibration_function`.

    Example:
        >>> psi_transform("exponential", torch.tensor([0.0, 0.6]))
        tensor([0.0000, 0.2000])
    """
    _check_kind(kind)
    t = theta.abs()
    if kind in ("hinge", "sigmoid"):
        return t
    if kind == "exponential":
        return 1.0 - torch.sqrt((1.0 - t) * (1.0 + t))
    if kind == "logistic":
        return 0.5 * (torch.xlogy(1.0 + t, 1.0 + t) + torch.xlogy(1.0 - t, 1.0 - t))
    if kind == "savage":
        return t.square() / 4
    return t.square()


def is_classification_calibrated(phi: str | Callable, eps: float = 1e-4) -> bool:
    r"""Numerical test of classification calibration.

    * If :math:`\phi` is convex on :math:`[-5, 5]` (second differences
      :math:`\ge -10^{-9}`), use the theorem of Bartlett, Jordan & McAuliffe:
      a convex :math:`\phi` is calibrated iff it is differentiable at 0 with
      :math:`\phi'(0) < 0`. One-sided difference quotients with step ``eps``
      must agree (to :math:`100\,\epsilon`) and their mean must be below
      :math:`-\epsilon`.
    * Otherwise fall back to the definition: :math:`\tilde\psi(\theta) > 10^{-8}`
      at 20 values :math:`\theta \in [0.05, 1]` (:func:`calibration_function`).

    Example:
        >>> is_classification_calibrated("hinge"), is_classification_calibrated(torch.exp)
        (True, False)
    """
    V.check_positive(eps, "eps")
    f = _phi(phi)
    z = torch.linspace(-5.0, 5.0, 1001, dtype=torch.float64)
    v = f(z)
    convex = bool(((v[2:] - 2 * v[1:-1] + v[:-2]) >= -1e-9).all())
    if convex:
        zero = torch.zeros(1, dtype=torch.float64)
        e = torch.full((1,), eps, dtype=torch.float64)
        left = float((f(zero) - f(-e)) / eps)
        right = float((f(e) - f(zero)) / eps)
        return abs(right - left) <= 100 * eps and (left + right) / 2 < -eps
    thetas = torch.linspace(0.05, 1.0, 20, dtype=torch.float64)
    return bool((calibration_function(f, thetas) > 1e-8).all())


# --------------------------------------------------------------------------- comp-sum losses


def _comp_sum_terms(logp: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """-expm1((τ-1) log p)/(τ-1), and -log p at τ = 1; a 0-d tensor τ takes a branch-free path (compiles)."""
    if not isinstance(tau, torch.Tensor):
        if tau == 1.0:
            return -logp
        return -torch.expm1((tau - 1.0) * logp) / (tau - 1.0)
    c = (tau - 1.0).to(logp.dtype)
    at_one = c == 0
    c_safe = torch.where(at_one, torch.ones_like(c), c)
    return torch.where(at_one, -logp, -torch.expm1(c_safe * logp) / c_safe)


def comp_sum_loss(logits: torch.Tensor, target: torch.Tensor, *, tau: float = 1.0,
                  weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Comp-sum loss :math:`\ell_\tau` of Mao, Mohri & Zhong (2023), computed in log space.

    .. math::
        \ell_\tau(z, y) = \Phi^\tau\Big(\sum_{k \ne y} e^{z_k - z_y}\Big), \quad
        \Phi^\tau(u) = \begin{cases} \frac{(1+u)^{1-\tau} - 1}{1-\tau} & \tau \ne 1 \\
        \log(1+u) & \tau = 1 \end{cases}

    Here :math:`z` are the logits. Since :math:`1 + u = 1/p_y` with :math:`p = \mathrm{softmax}(z)`,
    :math:`\ell_\tau = \frac{1 - p_y^{\tau-1}}{\tau - 1}`: the generalized
    cross-entropy (GCE) with :math:`q = \tau - 1`. Special cases:
    :math:`\tau = 0` is the sum-exponential loss :math:`\sum_{k\ne y}e^{z_k-z_y}`,
    :math:`\tau = 1` cross-entropy, :math:`\tau = 2` is :math:`1 - p_y`
    (half the MAE between :math:`p` and :math:`e_y`). We evaluate
    :math:`-\operatorname{expm1}((\tau-1)\log p_y)/(\tau-1)` with
    ``log_softmax``, which is exact near :math:`\tau = 1` and never forms
    :math:`p_y` itself. For :math:`\tau < 1` the loss grows like
    :math:`p_y^{-(1-\tau)}` and can overflow for hopeless logits: that is the
    loss. A probability target :math:`t` (on the simplex, checked) gives
    :math:`\sum_y t_y \ell_\tau(z, y)`. :math:`\tau` is the comp-sum parameter,
    not a quantile level or a temperature. ``-inf`` logits mask classes: loss
    and gradient stay finite as with :func:`torch.nn.functional.cross_entropy`.
    ``tau`` may be a 0-d tensor (a module twin's buffer; a branch-free path).

    Args:
        logits: ``(N, C)`` scores.
        target: int64 class indices ``(N,)`` or class probabilities ``(N, C)``.
        tau: :math:`\tau \ge 0`.
        weight: optional per-sample weights ``(N,)``.
        reduction: ``"none"`` (shape ``(N,)``) | ``"mean"`` | ``"sum"``.

    Reference: Mao, Mohri & Zhong (2023), *Cross-Entropy Loss Functions:
    Theoretical Analysis and Applications*, ICML.

    Example:
        >>> h, y = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
        >>> torch.allclose(comp_sum_loss(h, y, tau=1.0), torch.nn.functional.cross_entropy(h, y))
        True
        >>> comp_sum_loss(h, y, tau=2.0), 1 - torch.softmax(h, -1)[0, 0]
        (tensor(0.1562), tensor(0.1562))
    """
    if isinstance(logits, torch.Tensor) and logits.dim() == 2 and logits.shape[1] == 0:
        raise ValueError(f"logits must have at least one class (C >= 1), got shape {tuple(logits.shape)}")
    soft = V.check_logits_target(logits, target, name="logits")
    if soft:
        V.check_simplex(target, "target")
    V.check_nonnegative(tau, "tau")
    check_reduction(reduction)
    logp = torch.log_softmax(to_compute_dtype(logits), dim=-1)
    if soft:
        q = target.to(logp.dtype)
        # Masked classes (-inf logits) carry no target mass: keep their -inf out of the
        # nonlinearity, so that neither the value nor the gradient meets 0·inf.
        logp = torch.where(q > 0, logp, torch.zeros_like(logp))
    else:
        logp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    per_class = _comp_sum_terms(logp, tau)
    loss = (per_class * q).sum(-1) if soft else per_class
    return finish(loss, reduction, like=logits, weight=weight)


# --------------------------------------------------------------------------- EnsLoss


@dataclasses.dataclass(frozen=True)
class CalibratedDerivative:
    r"""A random loss derivative :math:`g(m) = -c\,\sigma(-a(m-b))` of the margin :math:`m`, with :math:`a, c > 0`.

    Non-decreasing (its loss is convex) with :math:`g(0) = -c\,\sigma(ab) < 0`
    (calibrated): the CC conditions of EnsLoss in derivative form. Its loss,
    the antiderivative that vanishes at :math:`+\infty`, is the shifted and
    scaled logistic loss :math:`\phi(m) = \tfrac{c}{a}\,\mathrm{softplus}(-a(m-b))`;
    :math:`a = c = 1, b = 0` is the logistic loss.
    """

    a: float
    b: float
    c: float

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return -self.c * torch.sigmoid(-self.a * (z - self.b))

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        """The margin loss whose derivative this is."""
        return (self.c / self.a) * F.softplus(-self.a * (z - self.b))


def sample_calibrated_derivative(generator: torch.Generator | None = None) -> CalibratedDerivative:
    r"""Draw a random convex, calibrated loss derivative (lossbook's generator for EnsLoss).

    :math:`a \sim \mathrm{LogUniform}(0.5, 5)`, :math:`b \sim U(0, 1)`,
    :math:`c \sim \mathrm{LogUniform}(0.5, 2)`; see :class:`CalibratedDerivative`.
    *Inspired by* EnsLoss (Dai et al., 2024): the paper draws its random
    derivatives from a different, richer family; this generator is ours and
    only shares the two conditions that make every draw legitimate.

    Example:
        >>> g = sample_calibrated_derivative(torch.Generator().manual_seed(0))
        >>> bool(g(torch.zeros(1)) < 0)
        True
    """
    u = torch.rand(3, generator=generator, dtype=torch.float64)
    a = math.exp(math.log(0.5) + float(u[0]) * math.log(10.0))
    c = math.exp(math.log(0.5) + float(u[2]) * math.log(4.0))
    return CalibratedDerivative(a=a, b=float(u[1]), c=c)


def ensloss_margin_surrogate(margins: torch.Tensor, derivative_fn: Callable[[torch.Tensor], torch.Tensor], *,
                             reduction: str = "mean") -> torch.Tensor:
    r"""Gradient surrogate :math:`\tilde L = \frac1n\sum_i \mathrm{sg}[g(m_i)]\, m_i` of margins :math:`m_i` (sg = stop-gradient).

    Its *gradient* is :math:`\frac1n\sum_i g(m_i)\nabla m_i`, the gradient of
    the loss whose derivative is :math:`g`; its *value* means nothing. That is
    why this function is not in the registry (the generic suite checks
    values). EnsLoss (Dai et al., 2024) draws a new :math:`g` at every step.

    Example:
        >>> z = torch.tensor([0.5, -1.0], requires_grad=True)
        >>> ensloss_margin_surrogate(z, lambda t: -torch.sigmoid(-t), reduction="sum").backward()
        >>> torch.allclose(z.grad, -torch.sigmoid(-z.detach()))
        True
    """
    V.check_floating(margins, "margins")
    check_reduction(reduction)
    z = to_compute_dtype(margins)
    g = derivative_fn(z.detach())
    return finish(g * z, reduction, like=margins)


class EnsLoss(nn.Module):
    r"""EnsLoss on margins: a fresh random calibrated derivative at each training-mode call.

    In training mode ``forward(margins)`` draws :math:`g` with
    :func:`sample_calibrated_derivative` (from ``generator``) and returns
    :func:`ensloss_margin_surrogate`; in eval mode it returns the mean
    logistic loss (a fixed, meaningful value for monitoring). *Inspired by*
    Dai et al. (2024); the derivative generator is ours. The margins are
    validated before the draw, so a call that raises does not advance
    ``generator``; the draw of the last training call is kept in ``last``.

    Example:
        >>> crit = EnsLoss(generator=torch.Generator().manual_seed(0))
        >>> crit(torch.tensor([1.0, -0.5])).shape
        torch.Size([])
    """

    def __init__(self, generator: torch.Generator | None = None, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.generator = generator
        self.reduction = reduction
        self.last: CalibratedDerivative | None = None

    def forward(self, margins: torch.Tensor) -> torch.Tensor:
        V.check_floating(margins, "margins")  # before the draw: a call that raises leaves the generator alone
        if not self.training:
            return margin_loss(margins, kind="logistic", reduction=self.reduction)
        self.last = sample_calibrated_derivative(self.generator)
        return ensloss_margin_surrogate(margins, self.last, reduction=self.reduction)


# --------------------------------------------------------------------------- functional gradients


def boosting_targets(loss_fn: Callable[..., torch.Tensor], F_values: torch.Tensor,
                     target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""First and second derivatives :math:`(g_i, h_i)` of an elementwise loss in the model output.

    :math:`g_i = \partial \ell(F_i, y_i)/\partial F_i` and
    :math:`h_i = \partial^2 \ell/\partial F_i^2`, by autograd.
    A second-order boosting stage (GrowNet, XGBoost) fits the next weak
    learner :math:`f` by :math:`\min_f \sum_i h_i (f(x_i) + g_i/h_i)^2`.
    ``loss_fn(F, target, reduction="none")`` must be elementwise.

    Reference: Badirli et al. (2020), *Gradient Boosting Neural Networks: GrowNet*.

    Example:
        >>> mse = lambda f, y, reduction: 0.5 * (f - y) ** 2
        >>> boosting_targets(mse, torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
        (tensor([1., 3.]), tensor([1., 1.]))
    """
    V.check_floating(F_values, "F_values")
    with torch.enable_grad():
        f = F_values.detach().clone().requires_grad_(True)
        loss = loss_fn(f, target, reduction="none")
        if loss.shape != f.shape:
            raise ValueError(f"loss_fn must be elementwise: got loss of shape {tuple(loss.shape)} "
                             f"for outputs of shape {tuple(f.shape)}")
        (g,) = torch.autograd.grad(loss.sum(), f, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), f, allow_unused=True)
    if h is None:  # a loss linear in F
        h = torch.zeros_like(f)
    return g.detach(), h.detach()


# --------------------------------------------------------------------------- sidebar: Levin tree search


def lts_loss(log_policy_path: torch.Tensor, depth: torch.Tensor, *, reduction: str = "sum") -> torch.Tensor:
    r"""Levin-tree-search loss :math:`\sum_{\text{problems}} d(n^*)/\pi_\theta(n^*)`.

    .. math::
        L = \sum_{k} d_k \exp\Big(-\sum_t \log\pi_\theta(a_{k,t}\mid s_{k,t})\Big)

    where :math:`n^*_k` is the solution node of problem :math:`k`, at depth
    :math:`d_k`, and the path probability is the product of the policy's
    action probabilities along it. :math:`d/\pi` bounds the number of nodes
    Levin tree search expands before it reaches :math:`n^*`, so this loss is
    the search cost the policy is trained to cut. As a function of the
    log-probabilities it is convex (the exponential of a linear map); for a
    log-linear policy it is convex in the parameters too.

    Args:
        log_policy_path: ``(N, T)`` log action probabilities along each
            solution path (pad with 0 beyond the path's end), or ``(N,)``
            already-summed path log-probabilities; all entries ``<= 0``.
        depth: ``(N,)`` path depths ``d_k > 0``, floating point (checked in eager mode).
        reduction: ``"sum"`` (the default: a total search cost) | ``"mean"`` | ``"none"``.

    Reference: Orseau, Hutter & Lelis (2023), *Levin Tree Search with Context Models*.

    Example:
        >>> lts_loss(torch.log(torch.tensor([[0.5, 0.5], [1.0, 0.25]])), torch.tensor([2.0, 2.0]))
        tensor(16.)
    """
    V.check_floating(log_policy_path, "log_policy_path")
    V.check_floating(depth, "depth")
    V.check_same_device(log_policy_path=log_policy_path, depth=depth)
    check_reduction(reduction)
    if log_policy_path.dim() not in (1, 2) or depth.shape != log_policy_path.shape[:1]:
        raise ValueError(f"expected log_policy_path (N, T) or (N,) and depth (N,), got "
                         f"{tuple(log_policy_path.shape)} and {tuple(depth.shape)}")
    if (not V.skip_value_checks(log_policy_path) and log_policy_path.numel()
            and not bool((log_policy_path <= 0).all())):
        got = "NaN" if bool(log_policy_path.isnan().any()) else f"max {float(log_policy_path.max()):.4g}"
        raise ValueError(f"log_policy_path holds log-probabilities: every entry must be <= 0 (and not NaN), got {got}")
    V.check_values_above(depth, 0.0, "depth")
    lp = to_compute_dtype(log_policy_path)
    log_path = lp.sum(-1) if lp.dim() == 2 else lp
    return finish(to_compute_dtype(depth) * torch.exp(-log_path), reduction, like=log_policy_path)


# --------------------------------------------------------------------------- module twins

MarginLoss = module_twin(margin_loss, "MarginLoss")
CompSumLoss = module_twin(comp_sum_loss, "CompSumLoss")
LTSLoss = module_twin(lts_loss, "LTSLoss")


# --------------------------------------------------------------------------- registry records

from lossbook.registry import Equivalent, ErrorCase, ModuleSample, Sample, register, register_module  # noqa: E402
from lossbook.registry import as_numpy as _np  # noqa: E402
from lossbook.registry import with_arg as _swap  # noqa: E402
from lossbook.registry import with_kwargs as _bad_kwarg  # noqa: E402
from lossbook.registry import logits_sample  # noqa: E402





def _ref_margin(margin, kind="logistic"):
    import numpy as np
    z = _np(margin)
    table = {
        "hinge": lambda: np.maximum(0.0, 1.0 - z),
        "logistic": lambda: np.logaddexp(0.0, -z),
        "exponential": lambda: np.exp(-z),
        "squared_hinge": lambda: np.maximum(0.0, 1.0 - z) ** 2,
        "squared": lambda: (1.0 - z) ** 2,
        "modified_huber": lambda: np.where(z >= -1, np.maximum(0.0, 1.0 - z) ** 2, -4.0 * z),
        "sigmoid": lambda: 1.0 - np.tanh(z),
        "savage": lambda: 1.0 / (1.0 + np.exp(z)) ** 2,
    }
    return torch.from_numpy(np.asarray(table[kind](), dtype=np.float64))


def _margin_sample(kind="logistic"):
    def make(gen, dtype, device):
        z = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 2
        return Sample((z.to(dtype=dtype, device=device),), {"kind": kind})
    return make


def _margin_extreme(gen, dtype, device):
    return Sample((torch.tensor([1e30, -1e30, 0.0, 1.0], dtype=dtype, device=device),), {"kind": "logistic"})


def _ref_comp_sum(logits, target, tau=1.0):
    import numpy as np
    h = _np(logits)
    n, c = h.shape
    q = _np(target) if target.is_floating_point() else np.eye(c)[target.cpu().numpy()]
    out = np.zeros(n)
    for i in range(n):
        for y in range(c):
            # log(1 + u), u = Σ_{k≠y} exp(h_k - h_y), in log space (u overflows for logits of ±1e4)
            log1pu = np.logaddexp.reduce([0.0] + [h[i, k] - h[i, y] for k in range(c) if k != y])
            phi = log1pu if tau == 1.0 else math.expm1((1 - tau) * log1pu) / (1 - tau)
            out[i] += q[i, y] * phi
    return torch.from_numpy(out)




def _comp_sum_extreme(gen, dtype, device):
    h = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=dtype, device=device)
    return Sample((h, torch.tensor([0, 0], device=device)), {"tau": 1.5})


def _ref_lts(lp, depth):
    import numpy as np
    return torch.from_numpy(_np(depth) * np.exp(-_np(lp).sum(-1)))


def _lts_sample(gen, dtype, device):
    lp = torch.log(torch.rand(5, 4, generator=gen, dtype=torch.float64) * 0.8 + 0.2)
    d = torch.randint(1, 10, (5,), generator=gen).to(torch.float64)
    return Sample((lp.to(dtype=dtype, device=device), d.to(dtype=dtype, device=device)))


def _lts_extreme(gen, dtype, device):
    lp = torch.tensor([[-40.0, -40.0], [0.0, -1e-30]], dtype=dtype, device=device)
    return Sample((lp, torch.tensor([10.0, 1.0], dtype=dtype, device=device)))


def _eq_margin_loss(s, reduction):
    if s.kwargs.get("kind", "logistic") != "logistic":
        return None
    z = s.args[0]
    return F.soft_margin_loss(z, torch.ones_like(z), reduction=reduction)


def _peek_derivative(module):
    """The derivative the module's next training call will draw, without consuming the draw."""
    gen = module.generator
    if gen is None:
        state = torch.random.get_rng_state()
        g = sample_calibrated_derivative(None)
        torch.random.set_rng_state(state)
        return g
    state = gen.get_state()
    g = sample_calibrated_derivative(gen)
    gen.set_state(state)
    return g


def _ref_ensloss(module, sample):
    import numpy as np
    from scipy.special import expit
    z = _np(sample.args[0])
    if module.training:
        g = _peek_derivative(module)
        per = -g.c * expit(-g.a * (z - g.b)) * z
    else:
        per = np.logaddexp(0.0, -z)
    out = {"none": per, "sum": per.sum(), "mean": per.mean() if per.size else np.float64(0.0)}[module.reduction]
    return torch.from_numpy(np.asarray(out, dtype=np.float64))


def _ensloss_sample(gen, dtype, device):
    def margins(n):
        return (torch.randn(n, generator=gen, dtype=torch.float64) * 2).to(dtype=dtype, device=device)
    seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=gen))
    return ModuleSample(init={"generator": torch.Generator().manual_seed(seed)}, forward=Sample((margins(6),)),
                        steps=(Sample((margins(6),)), Sample((margins(4),))))


_POS = (0.0, math.inf)
_LABEL_OUT_OF_RANGE = ErrorCase("label out of range", lambda s: Sample((s.args[0], s.args[1] + 10), s.kwargs),
                                ValueError, r"target class indices must lie in \[0, 3\]")

register(margin_loss, module=MarginLoss, section="sec-surrogates-risk", input_kind="margins",
         output_range=_POS, properties={"convex", "nonnegative", "classification-calibrated"}, gradient="exact",
         reference=_ref_margin, reference_name="float64 numpy logaddexp(0, -z)", sample=_margin_sample(),
         extreme=_margin_extreme, weighted=True, second_order=True,
         equivalent=Equivalent("builtin", "F.soft_margin_loss(z, 1)", _eq_margin_loss),
         references=("bartlett2006convexity", "zhang2004statistical", "masnadi2008design"),
         errors=(ErrorCase("unknown kind", _bad_kwarg(kind="cubic"), ValueError, r"kind must be one of 'hinge'"),
                 ErrorCase("integer margins", _swap(0, lambda z: z.long()), TypeError,
                           r"margin must be a floating-point tensor"),
                 ErrorCase("a weight that does not broadcast", _bad_kwarg(weight=torch.ones(6, 3, 2,
                                                                                          dtype=torch.float64)),
                           ValueError, r"weight of shape \(6, 3, 2\) does not broadcast")),
         formula=r"\phi(yf(x)),\ \phi\in\{\text{hinge, logistic, exp, ...}\}",
         summary="binary margin surrogates of the 0-1 loss")
def _ref_zero_one(logits, target):
    import numpy as np
    return torch.from_numpy((np.argmax(_np(logits), axis=-1) != target.cpu().numpy()).astype(np.float64))


register(zero_one_loss, module=None, section="sec-surrogates-risk", input_kind="logits",
         output_range=(0.0, 1.0), properties={"bounded", "nonnegative"}, gradient="none",
         reference=_ref_zero_one, reference_name="float64 numpy argmax != y", sample=logits_sample(),
         formula=r"\mathbb 1[\arg\max_k h_k \ne y]", summary="the multiclass 0-1 loss: a metric, not trainable")
register(comp_sum_loss, module=CompSumLoss, section="sec-surrogates-compsum", input_kind="logits",
         output_range=_POS, properties={"nonnegative", "classification-calibrated"}, gradient="exact",
         reference=_ref_comp_sum, reference_name="float64 Φ^τ(Σ_{y'≠y} exp(h_y' - h_y)) (Mao et al. 2023)",
         sample=logits_sample(scale=1.5, tau=0.5), extreme=_comp_sum_extreme, weighted=True, second_order=True,
         references=("mao2023crossentropy", "zhang2018generalized", "ghosh2017robust"),
         errors=(ErrorCase("negative tau", _bad_kwarg(tau=-1.0), ValueError, r"tau must be a finite number >= 0"),
                 ErrorCase("NaN tau", _bad_kwarg(tau=math.nan), ValueError, r"tau must be a finite number >= 0"),
                 ErrorCase("infinite tau", _bad_kwarg(tau=math.inf), ValueError, r"tau must be a finite number >= 0"),
                 ErrorCase("probability target off the simplex",
                           _swap(1, lambda y: torch.full((len(y), 4), 0.5, dtype=torch.float64)), ValueError,
                           r"target must hold probability vectors"),
                 _LABEL_OUT_OF_RANGE),
         formula=r"\Phi^\tau\big(\sum_{y'\ne y}e^{h_{y'}-h_y}\big) = \frac{1-p_y^{\tau-1}}{\tau-1}",
         summary="comp-sum family: sum-exp (τ=0), CE (τ=1), GCE (q=τ-1), 1-p_y (τ=2)")
register(lts_loss, module=LTSLoss, section="sec-surrogates-lts", input_kind="policy-paths",
         output_range=_POS, properties={"convex", "nonnegative"}, gradient="exact", reference=_ref_lts,
         reference_name="float64 d·exp(-Σ log π)", sample=_lts_sample, extreme=_lts_extreme, second_order=True,
         references=("orseau2023levin",),
         errors=(ErrorCase("positive log-probability", lambda s: Sample((-s.args[0], s.args[1]), s.kwargs),
                           ValueError, r"every entry must be <= 0"),
                 ErrorCase("NaN log-probability", _swap(0, lambda lp: lp * math.nan), ValueError,
                           r"every entry must be <= 0 \(and not NaN\), got NaN"),
                 ErrorCase("zero depth", _swap(1, lambda d: d * 0), ValueError, r"every entry of depth must be > 0"),
                 ErrorCase("depth of another length", _swap(1, lambda d: d[:-1]), ValueError,
                           r"expected log_policy_path \(N, T\) or \(N,\) and depth \(N,\)"),
                 ErrorCase("integer depth", _swap(1, lambda d: d.long()), TypeError,
                           r"depth must be a floating-point tensor"),
                 ErrorCase("depth on another device", _swap(1, lambda d: d.to("meta")), RuntimeError,
                           r"depth is on device meta but log_policy_path is on device cpu")),
         formula=r"\sum_k d_k/\pi_\theta(n^*_k)", summary="Levin-tree-search cost bound as a loss")
register_module(EnsLoss, section="sec-surrogates-ensloss", input_kind="margins", output_range=(-math.inf, math.inf),
                properties=frozenset(), gradient="exact", reference=_ref_ensloss,
                reference_name="float64 scipy: sg[g(z)]·z with the next draw of the generator (train), "
                               "logaddexp(0, -z) (eval)",
                sample=_ensloss_sample, train_eval=True, references=("dai2024ensloss",),
                errors=(ErrorCase("integer margins", _swap(0, lambda z: z.long()), TypeError,
                                  r"margins must be a floating-point tensor"),),
                formula=r"\tfrac1n\sum_i\mathrm{sg}[g(z_i)]\,z_i,\ g(z)=-c\,\sigma(-a(z-b))\ \text{drawn per call}",
                summary="EnsLoss: a fresh random calibrated loss derivative at each training step")
