r"""Regression losses (Chapter 3 of the book).

Point losses of a residual :math:`r = \hat y - y` (MSE, MAE, Huber,
pseudo-Huber, log-cosh, quantile), losses on a transformed scale (MSLE,
LMSE), forecasting metrics used as losses (MAPE, sMAPE, MASE, RAE, RSE,
NRMSE, RRMSE), a directional loss for returns (MADL), heteroscedastic
likelihoods (Gaussian and Laplace NLL) and error-distribution matching with a
soft histogram.

Conventions: ``input`` is the prediction, ``target`` the observation; both are
float tensors of the same shape. Elementwise losses take an optional
per-element ``weight`` that must broadcast *to* the loss's shape (a ``(N, 1)``
weight on a ``(N,)`` loss is an error, not a silent ``(N, N)``) and reduce
with :func:`lossbook.utils.finish`. Series metrics (``rmse``, ``rae``, ...)
work along the last dimension (time) and reduce over the series.
Hyperparameters (``delta``, ``eps``, ``kappa``, ...) are Python numbers or
0-d tensors (the module twins keep tensor hyperparameters as buffers);
``float16``/``bfloat16`` inputs are computed in float32 and the result is
cast back, so a reduced value that float16 can hold is not lost to an
overflow of its terms.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from lossbook import validation as V
from lossbook.registry import module_twin
from lossbook.utils import check_reduction, finish, to_compute_dtype

__all__ = [
    "mse_loss", "mae_loss", "mbe", "huber_loss", "pseudo_huber_loss", "log_cosh_loss",
    "quantile_loss", "msle_loss", "rmse", "rmsle", "mape", "smape", "mase", "nrmse", "rrmse",
    "rae", "rse", "lmse_loss", "madl_loss", "gaussian_nll_loss", "laplace_nll_loss",
    "soft_histogram", "error_uncertainty_kl_loss", "knn_gradient",
    "MSELoss", "MAELoss", "HuberLoss", "PseudoHuberLoss", "LogCoshLoss", "QuantileLoss",
    "MSLELoss", "MAPELoss", "SMAPELoss", "MASELoss", "LMSELoss", "MADLLoss",
    "GaussianNLLLoss", "LaplaceNLLLoss", "ErrorUncertaintyKLLoss",
]


# --------------------------------------------------------------------------- hyperparameters and numerics


def _scalar(value: object, name: str) -> None:
    """A hyperparameter is a number or a 0-d tensor; a larger tensor would broadcast the loss silently."""
    if isinstance(value, torch.Tensor) and value.dim() != 0:
        raise ValueError(f"{name} must be a number or a 0-d tensor, got a tensor of shape {tuple(value.shape)}")


def _positive(value: object, name: str) -> None:
    _scalar(value, name)
    V.check_positive(value, name)


def _nonnegative(value: object, name: str) -> None:
    _scalar(value, name)
    V.check_nonnegative(value, name)


def _flag(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _on(value: object, like: torch.Tensor) -> object:
    """A tensor hyperparameter moved to ``like``'s device (numbers pass through)."""
    return value.to(device=like.device) if isinstance(value, torch.Tensor) else value


def _compute(input: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both in the compute dtype (half and bfloat16 -> float32)."""
    return to_compute_dtype(input), to_compute_dtype(target)


_EXPONENT_BITS = {torch.float32: (torch.int32, 0x7F800000), torch.float64: (torch.int64, 0x7FF0000000000000)}


def _pow2_below(m: torch.Tensor) -> torch.Tensor:
    """The largest power of two ``<= m`` (read off the exponent bits), 1 where ``m`` is 0, subnormal, inf or NaN.

    Dividing by a power of two is exact, so ``s * f(x / s)`` for a homogeneous
    ``f`` has the bits of ``f(x)`` wherever ``f(x)`` neither overflows nor
    underflows, and stays finite where ``f(x)`` would overflow.
    """
    m = m.detach()
    itype, mask = _EXPONENT_BITS[m.dtype]
    s = (m.view(itype) & mask).view(m.dtype)
    return torch.where((s > 0) & (s < math.inf), s, torch.ones_like(s))


_LOG_BIG = 2.0 ** 32  # above this, log(1 + r**2) is 2 log|r| + log1p(r**-2) with r**-2 < 6e-20


def _log1p_scaled(u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(1 + s^2 u)` for ``u >= 0`` and ``s`` either 1 or a power of two ``>= 2**32``.

    Where ``s > 1`` it is :math:`2\log s + \log u + \operatorname{log1p}(s^{-2}/u)`, finite where
    ``s**2 * u`` overflows; where ``s = 1`` the plain ``log1p(u)``. Both branches keep finite gradients.
    """
    big = s > 1.0
    u_big = torch.where(big, u, torch.ones_like(u))
    s_big = torch.where(big, s, torch.ones_like(s))
    large = 2.0 * torch.log(s_big) + torch.log(u_big) + torch.log1p(s_big.pow(-2) / u_big)
    return torch.where(big, large, torch.log1p(torch.where(big, torch.zeros_like(u), u)))


def _rms(r: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last dimension; scaled by a power of two near ``max|r|`` so ``r**2`` cannot overflow."""
    s = _pow2_below(r.abs().amax(-1, keepdim=True))
    return (r / s).square().mean(-1).sqrt() * s.squeeze(-1)


# --------------------------------------------------------------------------- point losses


def mse_loss(input: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
             reduction: str = "mean") -> torch.Tensor:
    r"""Mean squared error :math:`\ell(r) = r^2`, with :math:`r = \hat y - y`.

    Delegates to :func:`torch.nn.functional.mse_loss` when unweighted (same
    values, fused kernel). Half-precision inputs are computed in float32 and
    the reduced result cast back: a float16 residual of 300 gives a finite
    mean (torch's float16 kernel squares in float16 and returns ``inf``).

    Args:
        input: predictions, any shape.
        target: observations, same shape as ``input``.
        weight: optional non-negative weights that broadcast to ``input``'s shape.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``; the weighted mean is
            :math:`\sum w\ell/\sum w`.

    Reference: Gauss (1809); the Gaussian maximum-likelihood loss.

    Example:
        >>> mse_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
        tensor(2.5000)
    """
    V.check_pair(input, target)
    check_reduction(reduction)
    x, y = _compute(input, target)
    if weight is None and input.numel():
        return F.mse_loss(x, y, reduction=reduction).to(input.dtype)
    return finish((x - y).square(), reduction, like=input, weight=weight)


def mae_loss(input: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
             reduction: str = "mean") -> torch.Tensor:
    r"""Mean absolute error :math:`\ell(r) = |r|`.

    Its population minimiser is the conditional *median*; the subgradient at
    :math:`r = 0` is 0 (autograd's choice). Delegates to
    :func:`torch.nn.functional.l1_loss` when unweighted.

    Shapes and ``reduction`` as in :func:`mse_loss`.

    Example:
        >>> mae_loss(torch.tensor([1.0, -3.0]), torch.tensor([0.0, 0.0]))
        tensor(2.)
    """
    V.check_pair(input, target)
    check_reduction(reduction)
    x, y = _compute(input, target)
    if weight is None and input.numel():
        return F.l1_loss(x, y, reduction=reduction).to(input.dtype)
    return finish((x - y).abs(), reduction, like=input, weight=weight)


def mbe(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""Mean bias error :math:`\frac1n\sum_i (\hat y_i - y_i)`: a signed diagnostic, not a loss.

    Positive values mean over-prediction. It can be zero for terrible
    predictions whose errors cancel, so never minimise it alone.

    Example:
        >>> mbe(torch.tensor([1.0, -3.0]), torch.tensor([0.0, 0.0]))
        tensor(-1.)
    """
    V.check_pair(input, target)
    check_reduction(reduction)
    x, y = _compute(input, target)
    return finish(x - y, reduction, like=input)


def huber_loss(input: torch.Tensor, target: torch.Tensor, *, delta: float = 1.0,
               weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Huber loss: quadratic near zero, linear in the tails.

    .. math::
        \ell_\delta(r) = \begin{cases} \tfrac12 r^2 & |r| \le \delta \\
        \delta\,(|r| - \tfrac12\delta) & |r| > \delta \end{cases}

    Equals ``delta * smooth_l1_loss(beta=delta)``. Delegates to
    :func:`torch.nn.functional.huber_loss` when unweighted and ``delta`` is a
    number; a 0-d tensor ``delta`` (a module twin's buffer) uses the formula.

    Args:
        delta: the threshold between the quadratic and the linear part, > 0
            (a number or a 0-d tensor).

    Reference: Huber (1964), *Robust Estimation of a Location Parameter*.

    Example:
        >>> huber_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), delta=1.0)
        tensor(1.3125)
    """
    V.check_pair(input, target)
    _positive(delta, "delta")
    check_reduction(reduction)
    x, y = _compute(input, target)
    if weight is None and input.numel() and not isinstance(delta, torch.Tensor):
        return F.huber_loss(x, y, delta=delta, reduction=reduction).to(input.dtype)
    delta = _on(delta, x)
    r = (x - y).abs()
    loss = torch.where(r <= delta, 0.5 * r.square(), delta * (r - 0.5 * delta))
    return finish(loss, reduction, like=input, weight=weight)


def pseudo_huber_loss(input: torch.Tensor, target: torch.Tensor, *, delta: float = 1.0,
                      weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Pseudo-Huber (Charbonnier-type) loss, a smooth Huber.

    .. math::
        \ell_\delta(r) = \delta^2\Big(\sqrt{1 + (r/\delta)^2} - 1\Big)
                       = \delta\,\frac{r^2}{\sqrt{r^2+\delta^2} + \delta}

    The second form avoids the cancellation of ``sqrt(...) - 1`` for small
    :math:`r`, and writing it as :math:`\delta\, r \cdot \frac{r}{\mathrm{hypot}(r,\delta)+\delta}`
    keeps it finite for residuals up to float32's largest value (``r**2``
    would overflow). Behaves like :math:`r^2/2` for :math:`|r| \ll \delta` and
    like :math:`\delta|r| - \delta^2` for :math:`|r| \gg \delta`.

    Reference: Charbonnier et al. (1994); Hartley & Zisserman (2003), *Multiple
    View Geometry*, App. 6.8; used for diffusion models by Khrapov et al. (2024).

    Example:
        >>> pseudo_huber_loss(torch.tensor([0.0, 1.0]), torch.zeros(2), reduction="none")
        tensor([0.0000, 0.4142])
    """
    V.check_pair(input, target)
    _positive(delta, "delta")
    check_reduction(reduction)
    x, y = _compute(input, target)
    r = x - y
    delta = _on(delta, r)
    d = delta if isinstance(delta, torch.Tensor) else torch.full_like(r, delta)
    loss = delta * r * (r / (torch.hypot(r, d) + delta))
    return finish(loss, reduction, like=input, weight=weight)


def log_cosh_loss(input: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                  reduction: str = "mean") -> torch.Tensor:
    r"""Log-cosh loss :math:`\ell(r) = \log\cosh r`, computed stably.

    :math:`\log\cosh r = |r| + \log(1 + e^{-2|r|}) - \log 2`, which never
    overflows (``cosh`` does for :math:`|r| > 89` in float32). The gradient is
    :math:`\tanh r`: bounded, like MAE, and smooth at 0, like MSE.

    Reference: the survey of Jadon et al. (2022) on regression losses for
    time-series forecasting.

    Example:
        >>> log_cosh_loss(torch.tensor([0.0, 1e4]), torch.zeros(2), reduction="none")
        tensor([   0.0000, 9999.3066])
    """
    V.check_pair(input, target)
    check_reduction(reduction)
    x, y = _compute(input, target)
    r = (x - y).abs()
    loss = r + F.softplus(-2.0 * r) - math.log(2.0)
    return finish(loss, reduction, like=input, weight=weight)


def _quantile_levels(quantiles: object, columns: int, like: torch.Tensor) -> torch.Tensor:
    """The levels as a 1-D tensor in ``like``'s dtype and device, each checked to lie in (0, 1)."""
    if isinstance(quantiles, torch.Tensor):
        if quantiles.dim() != 1:
            raise ValueError(f"quantiles must be a sequence of levels or a 1-D tensor, got a tensor of shape "
                             f"{tuple(quantiles.shape)}")
        V.check_floating(quantiles, "quantiles")
        V.check_open_unit(quantiles, "quantiles")
        count = quantiles.shape[0]
        tau = quantiles.to(dtype=like.dtype, device=like.device)
    else:
        try:
            levels = None if isinstance(quantiles, (str, bytes)) else list(quantiles)  # type: ignore[call-overload]
        except TypeError:
            levels = None
        if levels is None:
            raise TypeError(f"quantiles must be a sequence of levels or a 1-D tensor, got {type(quantiles).__name__}")
        for q in levels:
            _scalar(q, "each quantile level")
            V.check_open_unit(q, "each quantile level")
        count = len(levels)
        if any(isinstance(q, torch.Tensor) for q in levels):
            tau = torch.stack([torch.as_tensor(q, dtype=like.dtype, device=like.device) for q in levels]) \
                if levels else like.new_zeros(0)
        else:
            tau = torch.tensor(levels, dtype=like.dtype, device=like.device)
    if count != columns:
        raise ValueError(f"got {count} quantiles for input with {columns} columns")
    return tau


def quantile_loss(input: torch.Tensor, target: torch.Tensor, *, quantiles: Sequence[float] | torch.Tensor,
                  weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Quantile (pinball) loss for several quantile levels at once.

    With :math:`u = y - \hat y_\tau`, :math:`\rho_\tau(u) = \max(\tau u, (\tau - 1)u)`.
    The minimiser of :math:`\mathbb E\,\rho_\tau(Y - q)` over :math:`q` is the
    :math:`\tau`-quantile of :math:`Y`; :math:`\rho_{0.5} = \tfrac12|u|`.

    Args:
        input: predicted quantiles, shape ``(N, Q)``, column ``j`` for level ``quantiles[j]``.
        target: observations, shape ``(N,)`` (or ``(N, Q)``).
        quantiles: ``Q`` levels in ``(0, 1)``: a sequence of numbers or a 1-D
            float tensor (a module twin keeps a tensor as a buffer).
        reduction: ``"none"`` returns ``(N, Q)``; ``"mean"`` averages over all entries.

    Reference: Koenker & Bassett (1978), *Regression Quantiles*.

    Example:
        >>> quantile_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([1.0]), quantiles=[0.1, 0.9],
        ...               reduction="none")
        tensor([[0.1000, 0.9000]])
    """
    V.check_floating(input, "input")
    V.check_floating(target, "target")
    V.check_same_device(input=input, target=target)
    check_reduction(reduction)
    if input.dim() != 2:
        raise ValueError(f"input must have shape (N, Q), got {tuple(input.shape)}")
    x, y = _compute(input, target)
    tau = _quantile_levels(quantiles, input.shape[1], x)
    if target.dim() == 1:
        if target.shape[0] != input.shape[0]:
            raise ValueError(f"target of shape {tuple(target.shape)} does not match input {tuple(input.shape)}")
        y = y.unsqueeze(1)
    else:
        V.check_same_shape(input, target)
    u = y - x
    # max(τu, (τ-1)u) = u·(τ - 1[u<0]): the same values, and on CPU about 10x faster in
    # backward than torch.maximum. The subgradient at u = 0 is τ.
    loss = u * (tau - (u < 0).to(u.dtype))
    return finish(loss, reduction, like=input, weight=weight)


def msle_loss(input: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
              reduction: str = "mean") -> torch.Tensor:
    r"""Mean squared logarithmic error :math:`(\log(1+\hat y) - \log(1+y))^2`.

    Penalises *relative* errors; meant for non-negative targets that span
    orders of magnitude. Inputs must be > -1 (checked in eager mode; NaN fails).

    Example:
        >>> msle_loss(torch.tensor([math.e - 1.0]), torch.tensor([0.0]))
        tensor(1.)
    """
    V.check_pair(input, target)
    check_reduction(reduction)
    V.check_values_above(input, -1.0, "input")
    V.check_values_above(target, -1.0, "target")
    x, y = _compute(input, target)
    loss = (torch.log1p(x) - torch.log1p(y)).square()
    return finish(loss, reduction, like=input, weight=weight)


# --------------------------------------------------------------------------- series metrics


def _series(input: torch.Tensor, target: torch.Tensor, reduction: str) -> tuple[torch.Tensor, torch.Tensor]:
    V.check_pair(input, target)
    check_reduction(reduction)
    if input.dim() == 0 or input.shape[-1] == 0:
        raise ValueError(f"series metrics need a non-empty last (time) dimension, got shape {tuple(input.shape)}")
    return _compute(input, target)


def _safe_div(num: torch.Tensor, den: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    return num / den.clamp_min(eps)


def rmse(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""Root mean squared error of each series (last dimension), :math:`\sqrt{\frac1T\sum_t r_t^2}`.

    Each series is scaled by a power of two near its largest :math:`|r_t|`
    before squaring (exact, so the value is unchanged), so residuals beyond
    :math:`\sqrt{\text{float max}}` (1.8e19 in float32) do not overflow.

    Example:
        >>> rmse(torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2), reduction="none")
        tensor([3.5355])
    """
    x, y = _series(input, target, reduction)
    return finish(_rms(x - y), reduction, like=input)


def rmsle(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""Root mean squared logarithmic error of each series: :math:`\sqrt{\mathrm{MSLE}}`.

    Example:
        >>> rmsle(torch.tensor([[math.e - 1.0]]), torch.tensor([[0.0]]))
        tensor(1.)
    """
    x, y = _series(input, target, reduction)
    V.check_values_above(input, -1.0, "input")
    V.check_values_above(target, -1.0, "target")
    per_series = (torch.log1p(x) - torch.log1p(y)).square().mean(-1).sqrt()
    return finish(per_series, reduction, like=input)


def mape(input: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-8, weight: torch.Tensor | None = None,
         reduction: str = "mean") -> torch.Tensor:
    r"""Mean absolute percentage error, as a *fraction*: :math:`|\hat y - y| / \max(|y|, \epsilon)`.

    Multiply by 100 for percent. Like scikit-learn's
    ``mean_absolute_percentage_error``, the denominator is clamped at ``eps``
    (finite, > 0) so that a zero target gives a large, finite value instead of
    ``inf``. Asymmetric: an under-forecast of a positive target costs at most
    1, an over-forecast is unbounded. Where :math:`\hat y - y` overflows (both
    near the float maximum, opposite signs) the ratio is computed on scaled
    values and stays finite.

    Example:
        >>> mape(torch.tensor([110.0]), torch.tensor([100.0]))
        tensor(0.1000)
    """
    V.check_pair(input, target)
    _positive(eps, "eps")
    check_reduction(reduction)
    x, y = _compute(input, target)
    eps = _on(eps, x)
    d = x - y
    # Only where x - y overflows: divide both by a power of two (exact), so the ratio is finite.
    s = _pow2_below(torch.where(torch.isinf(d), torch.maximum(x.abs(), y.abs()), torch.ones_like(d)))
    xs, ys = x / s, y / s
    ok = y.abs() >= eps
    loss = torch.where(ok, (xs - ys).abs() / torch.where(ok, ys.abs(), torch.ones_like(ys)), d.abs() / eps)
    return finish(loss, reduction, like=input, weight=weight)


def smape(input: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-8, weight: torch.Tensor | None = None,
          reduction: str = "mean") -> torch.Tensor:
    r"""Symmetric MAPE, as a fraction in :math:`[0, 2]`: :math:`2|\hat y - y| / \max(|y| + |\hat y|, \epsilon)`.

    Matches ``torchmetrics``' ``symmetric_mean_absolute_percentage_error``;
    multiply by 100 for the percent form of the M-competitions. Both
    arguments are divided by a power of two near :math:`\max(|\hat y|, |y|)`
    first (exact, so the value is unchanged): the ratio stays in
    :math:`[0, 2]` up to the float maximum, where ``2|ŷ - y|`` and
    ``|ŷ| + |y|`` would overflow.

    Example:
        >>> smape(torch.tensor([110.0]), torch.tensor([90.0]))
        tensor(0.2000)
    """
    V.check_pair(input, target)
    _positive(eps, "eps")
    check_reduction(reduction)
    x, y = _compute(input, target)
    eps = _on(eps, x)
    s = _pow2_below(torch.maximum(x.abs(), y.abs()))
    xs, ys = x / s, y / s
    ok = y.abs() + x.abs() >= eps  # may overflow to inf: only compared with eps
    den = torch.where(ok, ys.abs() + xs.abs(), torch.ones_like(xs))
    loss = torch.where(ok, 2.0 * (xs - ys).abs() / den, 2.0 * (x - y).abs() / eps)
    return finish(loss, reduction, like=input, weight=weight)


def mase(input: torch.Tensor, target: torch.Tensor, insample: torch.Tensor, *, m: int = 1, eps: float = 1e-8,
         reduction: str = "mean") -> torch.Tensor:
    r"""Mean absolute scaled error of each series (Hyndman & Koehler, 2006).

    .. math::
        \mathrm{MASE} = \frac{\frac1T\sum_t |\hat y_t - y_t|}
                             {\frac{1}{n-m}\sum_{t=m+1}^{n} |x_t - x_{t-m}|}

    where :math:`x` is the in-sample (training) history and :math:`m` the
    seasonal period: the error relative to the in-sample seasonal-naive
    forecast. Below 1 beats the naive forecast. The denominator is clamped at
    ``eps`` (finite, > 0).

    Args:
        input, target: forecasts and observations, shape ``(..., T)``.
        insample: history, shape ``(..., n)`` with ``n > m``.

    Example:
        >>> mase(torch.tensor([2.0]), torch.tensor([4.0]), torch.tensor([0.0, 1.0, 2.0]))
        tensor(2.)
    """
    x, y = _series(input, target, reduction)
    V.check_floating(insample, "insample")
    V.check_same_device(input=input, insample=insample)
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m (the seasonal period) must be an integer >= 1, got {m!r}")
    if insample.dim() == 0:
        raise ValueError("insample must have a last (time) dimension, got a 0-d tensor")
    if insample.shape[-1] <= m:
        raise ValueError(f"insample needs more than m={m} time steps, got shape {tuple(insample.shape)}")
    if insample.shape[:-1] != input.shape[:-1]:
        raise ValueError(f"insample batch shape {tuple(insample.shape[:-1])} != input batch shape {tuple(input.shape[:-1])}")
    _positive(eps, "eps")
    h = to_compute_dtype(insample)
    scale = (h[..., m:] - h[..., :-m]).abs().mean(-1)
    err = (x - y).abs().mean(-1)
    return finish(_safe_div(err, scale, _on(eps, x)), reduction, like=input)


_NORMS = ("range", "mean", "std")


def nrmse(input: torch.Tensor, target: torch.Tensor, *, norm: str = "range", eps: float = 1e-8,
          reduction: str = "mean") -> torch.Tensor:
    r"""Normalised RMSE of each series: RMSE divided by the target's range (``norm="range"``),
    mean (``"mean"``) or standard deviation (``"std"``), clamped at ``eps`` (finite, > 0).

    Example:
        >>> nrmse(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 4.0]]))
        tensor(0.2500)
    """
    x, y = _series(input, target, reduction)
    if not isinstance(norm, str) or norm not in _NORMS:
        raise ValueError(f"norm must be 'range', 'mean' or 'std', got {norm!r}")
    _positive(eps, "eps")
    if norm == "range":
        scale = y.amax(-1) - y.amin(-1)
    elif norm == "mean":
        scale = y.mean(-1).abs()
    else:
        scale = y.std(-1, correction=0)
    return finish(_safe_div(_rms(x - y), scale, _on(eps, x)), reduction, like=input)


def rrmse(input: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-8, reduction: str = "mean") -> torch.Tensor:
    r"""Relative RMSE of each series, :math:`\sqrt{\sum_t r_t^2 / \max(\sum_t y_t^2, \epsilon)}`.

    Definitions of RRMSE vary between sources; this is the scale-free one
    (error energy relative to signal energy). ``eps`` must be finite and > 0.

    Example:
        >>> rrmse(torch.tensor([[3.0, 4.0]]), torch.tensor([[3.0, 0.0]]))
        tensor(1.3333)
    """
    x, y = _series(input, target, reduction)
    _positive(eps, "eps")
    ratio = _safe_div((x - y).square().sum(-1), y.square().sum(-1), _on(eps, x))
    return finish(ratio.sqrt(), reduction, like=input)


def rae(input: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-8, reduction: str = "mean") -> torch.Tensor:
    r"""Relative absolute error of each series, :math:`\sum_t|r_t| / \max(\sum_t|y_t - \bar y|, \epsilon)`:
    the error relative to always predicting the series mean. ``eps`` must be finite and > 0.

    Example:
        >>> rae(torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 2.0]]))
        tensor(1.)
    """
    x, y = _series(input, target, reduction)
    _positive(eps, "eps")
    base = (y - y.mean(-1, keepdim=True)).abs().sum(-1)
    return finish(_safe_div((x - y).abs().sum(-1), base, _on(eps, x)), reduction, like=input)


def rse(input: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-8, reduction: str = "mean") -> torch.Tensor:
    r"""Relative squared error of each series, :math:`\sum_t r_t^2 / \sum_t (y_t-\bar y)^2 = 1 - R^2`
    (the denominator clamped at ``eps``, finite and > 0).

    Example:
        >>> rse(torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 2.0]]))
        tensor(1.)
    """
    x, y = _series(input, target, reduction)
    _positive(eps, "eps")
    base = (y - y.mean(-1, keepdim=True)).square().sum(-1)
    return finish(_safe_div((x - y).square().sum(-1), base, _on(eps, x)), reduction, like=input)


# --------------------------------------------------------------------------- transformed and directional losses


def lmse_loss(input: torch.Tensor, target: torch.Tensor, *, per_sample: bool = False,
              reduction: str = "mean") -> torch.Tensor:
    r"""Logarithmic MSE, inspired by the concise logarithmic loss of Park et al. (2022).

    * ``per_sample=False``: :math:`\log(1 + \mathrm{MSE})`, a monotone
      transform of the batch MSE. Same minimisers as MSE; its gradient is
      :math:`\nabla\mathrm{MSE} / (1 + \mathrm{MSE})`, an adaptive step size.
      ``reduction`` (``"mean"`` or ``"sum"``) is applied to the squared errors
      inside the log; ``"none"`` is refused because the value is a batch statistic.
    * ``per_sample=True``: :math:`\log(1 + r_i^2)` per sample, the Cauchy
      (Lorentzian) loss: robust, non-convex, with redescending influence.

    Residuals above :math:`2^{32}` are scaled by a power of two before
    squaring and the log is taken as :math:`2\log s + \log u + \operatorname{log1p}(1/(s^2u))`,
    so the value stays finite where :math:`r^2` overflows (``r = 1e20`` in float32).

    Reference: *Concise Logarithmic Loss Function for Robust Training of
    Anomaly Detection Model* (the seed paper); the batch form here is our
    reading of its abstract.

    Example:
        >>> lmse_loss(torch.tensor([1.0, 3.0]), torch.zeros(2))
        tensor(1.7918)
    """
    V.check_pair(input, target)
    _flag(per_sample, "per_sample")
    check_reduction(reduction, ("none", "mean", "sum") if per_sample else ("mean", "sum"))
    x, y = _compute(input, target)
    r = x - y
    if per_sample:
        m = r.abs()
        s = torch.where(m > _LOG_BIG, _pow2_below(m), torch.ones_like(m))
        return finish(_log1p_scaled((r / s).square(), s), reduction, like=input)
    m = r.detach().abs().amax() if r.numel() else r.new_zeros(())
    s = torch.where(m > _LOG_BIG, _pow2_below(m), torch.ones_like(m))
    u = finish((r / s).square(), reduction, like=r)
    return _log1p_scaled(u, s).to(input.dtype)


def madl_loss(input: torch.Tensor, target: torch.Tensor, *, kappa: float | None = None,
              reduction: str = "mean") -> torch.Tensor:
    r"""Mean absolute directional loss (Michańków, Sakowski & Ślepaczuk, 2024).

    .. math::
        \mathrm{MADL} = \frac1N\sum_i -\operatorname{sign}(R_i \hat R_i)\,|R_i|
                      = \frac1N\sum_i -\operatorname{sign}(\hat R_i)\, R_i

    with :math:`R` the realised and :math:`\hat R` the predicted return: the
    negated return of trading on the predicted sign. It is piecewise constant
    in :math:`\hat R`, so for training use ``kappa``: the surrogate
    :math:`-\tanh(\kappa\hat R_i)\,R_i`, which tends to MADL as
    :math:`\kappa\to\infty` (the smooth surrogate is ours, not the paper's).

    Args:
        input: predicted returns :math:`\hat R`.
        target: realised returns :math:`R`, same shape.
        kappa: ``None`` for the exact metric, or a positive finite sharpness
            (a number or a 0-d tensor).

    Example:
        >>> madl_loss(torch.tensor([0.5, -0.2]), torch.tensor([0.1, 0.3]))
        tensor(0.1000)
    """
    V.check_pair(input, target)
    check_reduction(reduction)
    x, y = _compute(input, target)
    if kappa is None:
        direction = torch.sign(x)
    else:
        _positive(kappa, "kappa")
        direction = torch.tanh(_on(kappa, x) * x)
    return finish(-direction * y, reduction, like=input)


# --------------------------------------------------------------------------- heteroscedastic likelihoods


def gaussian_nll_loss(input: torch.Tensor, target: torch.Tensor, var: torch.Tensor, *, full: bool = False,
                      eps: float = 1e-6, reduction: str = "mean") -> torch.Tensor:
    r"""Gaussian negative log-likelihood with a predicted variance.

    .. math::
        \ell = \tfrac12\Big(\log\max(\sigma^2, \epsilon) + \frac{(y-\mu)^2}{\max(\sigma^2,\epsilon)}\Big)
               \;[+\tfrac12\log 2\pi \text{ if full}]

    Same argument order, clamping and broadcasting of ``var`` as
    :func:`torch.nn.functional.gaussian_nll_loss` (the floor ``eps`` changes
    the value but not the gradient), without its data-dependent check, so it
    compiles with ``fullgraph=True``; a negative or NaN ``var`` is refused in
    eager mode. Half-precision inputs are computed in float32. For fixed
    :math:`\mu` the optimal variance is :math:`(y-\mu)^2`, so the model learns
    its own error scale.

    Args:
        input: predicted mean :math:`\mu`, shape ``(N, *)``.
        target: observations, same shape.
        var: predicted variance, same shape as ``input`` or with a trailing 1.
        full: add the constant :math:`\tfrac12\log 2\pi` (True or False).
        eps: variance floor (finite, > 0).

    Reference: Nix & Weigend (1994); Kendall & Gal (2017).

    Example:
        >>> gaussian_nll_loss(torch.zeros(1), torch.ones(1), torch.ones(1))
        tensor(0.5000)
    """
    V.check_pair(input, target)
    V.check_floating(var, "var")
    V.check_same_device(input=input, var=var)
    _positive(eps, "eps")
    _flag(full, "full")
    check_reduction(reduction)
    if var.shape != input.shape and not (input.dim() and (var.shape == input.shape[:-1] + (1,)
                                                          or var.shape == input.shape[:-1])):
        raise ValueError(f"var must have the shape of input {tuple(input.shape)} (or a trailing 1), got {tuple(var.shape)}")
    V.check_values_above(var, 0.0, "var", strict=False)
    x, y, v = to_compute_dtype(input), to_compute_dtype(target), to_compute_dtype(var)
    if var.shape != input.shape:
        v = v.reshape(input.shape[:-1] + (1,))
    v = v + (v.clamp_min(_on(eps, v)) - v).detach()  # floor the value, keep the gradient (as torch does)
    loss = 0.5 * (torch.log(v) + (x - y).square() / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return finish(loss, reduction, like=input)


def laplace_nll_loss(input: torch.Tensor, target: torch.Tensor, scale: torch.Tensor, *, full: bool = False,
                     eps: float = 1e-6, reduction: str = "mean") -> torch.Tensor:
    r"""Laplace negative log-likelihood with a predicted scale :math:`b`.

    .. math::
        \ell = \log b + \frac{|y-\mu|}{b} \;[+\log 2 \text{ if full}], \qquad b \leftarrow \max(b, \epsilon)

    The heavy-tailed counterpart of :func:`gaussian_nll_loss`: the optimal
    scale for fixed :math:`\mu` is :math:`|y-\mu|`. Like torch's Gaussian NLL,
    the floor ``eps`` (finite, > 0) is applied without blocking the gradient;
    a negative or NaN ``scale`` is refused in eager mode.

    Reference: Kendall & Gal (2017), *What Uncertainties Do We Need in
    Bayesian Deep Learning for Computer Vision?*

    Example:
        >>> laplace_nll_loss(torch.zeros(1), torch.ones(1), torch.ones(1))
        tensor(1.)
    """
    V.check_pair(input, target)
    V.check_floating(scale, "scale")
    V.check_same_device(input=input, scale=scale)
    V.check_same_shape(input, scale, ("input", "scale"))
    _positive(eps, "eps")
    _flag(full, "full")
    check_reduction(reduction)
    V.check_values_above(scale, 0.0, "scale", strict=False)
    x, y, b = to_compute_dtype(input), to_compute_dtype(target), to_compute_dtype(scale)
    b = b + (b.clamp_min(_on(eps, b)) - b).detach()  # floor the value, keep the gradient
    loss = torch.log(b) + (y - x).abs() / b
    if full:
        loss = loss + math.log(2.0)
    return finish(loss, reduction, like=input)


# --------------------------------------------------------------------------- error-distribution matching


def _check_bins(bins: object, like: torch.Tensor, like_name: str) -> None:
    V.check_floating(bins, "bins")
    V.check_same_device(**{like_name: like, "bins": bins})
    if bins.dim() != 1 or bins.numel() < 2:  # type: ignore[union-attr]
        raise ValueError(f"bins must be a 1-D tensor of at least 2 centres, got shape {tuple(bins.shape)}")  # type: ignore[union-attr]
    V.check_finite(bins, "bins")


def _soft_histogram(x: torch.Tensor, bins: torch.Tensor, bandwidth: float | torch.Tensor) -> torch.Tensor:
    logits = -0.5 * ((x.unsqueeze(-1) - bins) / bandwidth).square()
    return torch.softmax(logits, dim=-1).mean(-2)


def soft_histogram(x: torch.Tensor, bins: torch.Tensor, bandwidth: float) -> torch.Tensor:
    r"""Differentiable histogram of the last dimension of ``x`` over bin centres ``bins``.

    Each sample spreads unit mass over the bins with Gaussian-kernel weights,
    :math:`h_b = \frac1N\sum_i \operatorname{softmax}_b\big(-\tfrac12((x_i - c_b)/w)^2\big)`,
    computed in log space. The result sums to 1 and tends to the hard
    (nearest-centre) histogram as ``bandwidth`` → 0.

    Args:
        x: samples, shape ``(..., N)``.
        bins: bin centres, shape ``(B,)``, finite, on the same device.
        bandwidth: kernel width :math:`w` > 0 (a number or a 0-d tensor).

    Returns:
        shape ``(..., B)``.

    Example:
        >>> soft_histogram(torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 1.0]), 0.01)
        tensor([0.6667, 0.3333])
    """
    V.check_floating(x, "x")
    _check_bins(bins, x, "x")
    _positive(bandwidth, "bandwidth")
    if x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"x must have at least one sample in its last dimension, got shape {tuple(x.shape)}")
    xc = to_compute_dtype(x)
    return _soft_histogram(xc, bins.to(xc.dtype), _on(bandwidth, xc)).to(x.dtype)


def error_uncertainty_kl_loss(input: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor, *,
                              bins: torch.Tensor, bandwidth: float, lam: float = 1.0,
                              reduction: str = "mean") -> torch.Tensor:
    r"""L1 regression plus matching of the uncertainty distribution to the error distribution.

    .. math::
        L = \frac1N\sum_i |\hat d_i - d_i| + \lambda\,
            \mathrm{KL}\big(h(|\hat d - d|)\,\big\|\,h(\hat\sigma)\big)

    where :math:`h` is :func:`soft_histogram`. The error histogram is the
    *target* distribution (its gradient is stopped), so the KL term trains
    only the uncertainty head :math:`\hat\sigma` to produce values distributed
    like the actual errors; the L1 term trains the prediction. Inspired by
    Chen et al. (2023), *Learning the Distribution of Errors in Stereo
    Matching for Joint Disparity and Uncertainty Estimation*; the exact
    weighting and binning of the paper may differ.

    Args:
        input, target: predictions and ground truth, shape ``(N,)`` with ``N >= 1``.
        sigma: predicted uncertainty (same units as the error), shape ``(N,)``.
        bins: histogram bin centres ``(B,)``.
        bandwidth: soft-histogram kernel width (> 0).
        lam: weight :math:`\lambda \ge 0` of the KL term.
        reduction: ``"mean"`` as above; ``"sum"`` is :math:`N` times it. The KL
            term is a batch statistic, so ``"none"`` is refused.

    Example:
        >>> bins = torch.linspace(0, 2, 5)
        >>> float(error_uncertainty_kl_loss(torch.zeros(4), torch.ones(4), torch.ones(4), bins=bins,
        ...                                  bandwidth=0.2))
        1.0
    """
    V.check_pair(input, target)
    V.check_floating(sigma, "sigma")
    V.check_same_shape(input, sigma, ("input", "sigma"))
    V.check_same_device(input=input, sigma=sigma)
    _check_bins(bins, input, "input")
    _positive(bandwidth, "bandwidth")
    _nonnegative(lam, "lam")
    check_reduction(reduction, ("mean", "sum"))
    if input.dim() != 1:
        raise ValueError(f"input must have shape (N,), got {tuple(input.shape)}")
    if input.shape[0] == 0:
        raise ValueError("input must hold at least one sample: the histograms of an empty batch are undefined")
    x, y, sg = to_compute_dtype(input), to_compute_dtype(target), to_compute_dtype(sigma)
    c, w = bins.to(x.dtype), _on(bandwidth, x)
    err = (x - y).abs()
    p = _soft_histogram(err.detach(), c, w)
    log_q = torch.log(_soft_histogram(sg, c, w).clamp_min(torch.finfo(sg.dtype).tiny))
    # KL(p || q) with 0 log 0 = 0: xlogy handles empty bins of p.
    kl = (torch.xlogy(p, p) - p * log_q).sum()
    loss = err.mean() + _on(lam, x) * kl
    return (loss * input.shape[0] if reduction == "sum" else loss).to(input.dtype)


# --------------------------------------------------------------------------- sidebar: gradient of the regression function


def knn_gradient(x: torch.Tensor, y: torch.Tensor, x0: torch.Tensor, *, k: int) -> torch.Tensor:
    r"""Estimate :math:`\nabla\mathbb E[Y\mid X=x_0]` by a local linear fit on the ``k`` nearest neighbours.

    :math:`\hat\beta = \arg\min_\beta \sum_{i\in N_k(x_0)} (Y_i - \bar Y - \beta^\top(X_i - \bar X))^2`.
    Our simple reading of the nearest-neighbour gradient estimators of the
    seed paper *Nearest Neighbour Based Estimates of Gradients*; the paper's
    estimator and its rates may differ.

    Args:
        x: inputs ``(n, d)``; y: responses ``(n,)``; x0: query ``(d,)``; k > d.

    Example:
        >>> x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> knn_gradient(x, 3 * x[:, 0] - x[:, 1], torch.zeros(2, dtype=torch.float64), k=20).round(decimals=6)
        tensor([ 3., -1.], dtype=torch.float64)
    """
    V.check_floating(x, "x")
    V.check_floating(y, "y")
    V.check_floating(x0, "x0")
    V.check_same_device(x=x, y=y, x0=x0)
    if x.dim() != 2 or y.shape != x.shape[:1] or x0.shape != x.shape[1:]:
        raise ValueError(f"expected x (n, d), y (n,), x0 (d,), got {tuple(x.shape)}, {tuple(y.shape)}, {tuple(x0.shape)}")
    if isinstance(k, bool) or not (isinstance(k, int) and x.shape[1] < k <= x.shape[0]):
        raise ValueError(f"k must be an integer with d < k <= n ({x.shape[1]} < k <= {x.shape[0]}), got {k!r}")
    idx = torch.cdist(x0[None], x)[0].topk(k, largest=False).indices
    xs, ys = x[idx], y[idx]
    xs = xs - xs.mean(0)
    ys = ys - ys.mean()
    return torch.linalg.lstsq(xs, ys[:, None]).solution[:, 0]


# --------------------------------------------------------------------------- module twins

MSELoss = module_twin(mse_loss, "MSELoss")
MAELoss = module_twin(mae_loss, "MAELoss")
HuberLoss = module_twin(huber_loss, "HuberLoss")
PseudoHuberLoss = module_twin(pseudo_huber_loss, "PseudoHuberLoss")
LogCoshLoss = module_twin(log_cosh_loss, "LogCoshLoss")
QuantileLoss = module_twin(quantile_loss, "QuantileLoss")
MSLELoss = module_twin(msle_loss, "MSLELoss")
MAPELoss = module_twin(mape, "MAPELoss")
SMAPELoss = module_twin(smape, "SMAPELoss")
MASELoss = module_twin(mase, "MASELoss")
LMSELoss = module_twin(lmse_loss, "LMSELoss")
MADLLoss = module_twin(madl_loss, "MADLLoss")
GaussianNLLLoss = module_twin(gaussian_nll_loss, "GaussianNLLLoss")
LaplaceNLLLoss = module_twin(laplace_nll_loss, "LaplaceNLLLoss")
ErrorUncertaintyKLLoss = module_twin(error_uncertainty_kl_loss, "ErrorUncertaintyKLLoss")


# --------------------------------------------------------------------------- registry records
# Each record drives the generic test suite and the book's API pages. The
# references are independent float64 oracles (numpy/scipy/torch.distributions)
# or torch built-ins; they are imported lazily so ``import lossbook`` stays light.

from lossbook.registry import Equivalent, ErrorCase, Sample, register  # noqa: E402
from lossbook.registry import as_numpy as _np  # noqa: E402
from lossbook.registry import with_kwargs as _bad_kwarg  # noqa: E402


def _pair(shape=(6, 3), positive=False, scale=2.0, **kwargs):
    def make(gen, dtype, device):
        a = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        b = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        if positive:
            a, b = a.abs() + 0.1, b.abs() + 0.1
        return Sample((a.to(dtype=dtype, device=device), b.to(dtype=dtype, device=device)), dict(kwargs))
    return make


def _extreme_pair(magnitude=1e4, **kwargs):
    def make(gen, dtype, device):
        a = torch.tensor([magnitude, -magnitude, 0.0, 1.0], dtype=dtype, device=device)
        return Sample((a, torch.zeros_like(a)), dict(kwargs))
    return make


def _ref_elementwise(f):
    def ref(input, target, **kwargs):
        import numpy as np
        return torch.from_numpy(np.asarray(f(_np(input), _np(target), **kwargs), dtype=np.float64))
    return ref


def _ref_pseudo_huber(x, y, delta=1.0):
    from scipy.special import pseudo_huber
    return pseudo_huber(delta, x - y)


def _ref_log_cosh(x, y):
    import numpy as np
    return np.log(np.cosh(x - y))


def _ref_quantile(x, y, quantiles):
    import numpy as np
    u = y[:, None] - x
    tau = np.asarray(quantiles)
    return np.maximum(tau * u, (tau - 1) * u)


def _ref_series(metric):
    def ref(input, target, *extra, **kwargs):
        import numpy as np
        x, y = _np(input), _np(target)
        rows = [metric(xi, yi, *[_np(e)[i] for e in extra], **kwargs) for i, (xi, yi) in enumerate(zip(x, y))]
        return torch.tensor(np.asarray(rows, dtype=np.float64))
    return ref


def _np_rmse(x, y):
    import numpy as np
    return np.sqrt(np.mean((x - y) ** 2))


def _np_mase(x, y, hist, m=1, **_):
    import numpy as np
    return np.mean(np.abs(x - y)) / np.mean(np.abs(hist[m:] - hist[:-m]))


def _np_nrmse(x, y, norm="range", **_):
    import numpy as np
    scale = {"range": np.ptp(y), "mean": abs(np.mean(y)), "std": np.std(y)}[norm]
    return _np_rmse(x, y) / scale


def _np_rrmse(x, y, **_):
    import numpy as np
    return np.sqrt(np.sum((x - y) ** 2) / np.sum(y ** 2))


def _np_rae(x, y, **_):
    import numpy as np
    return np.sum(np.abs(x - y)) / np.sum(np.abs(y - y.mean()))


def _np_rse(x, y, **_):
    import numpy as np
    return np.sum((x - y) ** 2) / np.sum((y - y.mean()) ** 2)


def _np_rmsle(x, y, **_):
    import numpy as np
    return np.sqrt(np.mean((np.log1p(x) - np.log1p(y)) ** 2))


def _ref_gaussian_nll(input, target, var, full=False, eps=1e-6):
    import numpy as np
    v = np.maximum(_np(var), eps)
    out = 0.5 * (np.log(v) + (_np(input) - _np(target)) ** 2 / v)
    return torch.from_numpy(out + (0.5 * np.log(2 * np.pi) if full else 0.0))


def _ref_laplace_nll(input, target, scale, full=True, eps=1e-6):
    dist = torch.distributions.Laplace(input.double(), scale.double())
    out = -dist.log_prob(target.double())
    return out if full else out - math.log(2.0)


def _ref_error_kl(input, target, sigma, bins, bandwidth, lam=1.0):
    import numpy as np
    from scipy.special import softmax

    def hist(v):
        logits = -0.5 * ((v[:, None] - _np(bins)[None]) / bandwidth) ** 2
        return softmax(logits, axis=1).mean(0)

    err = np.abs(_np(input) - _np(target))
    p, q = hist(err), hist(_np(sigma))
    return torch.tensor(err.mean() + lam * float(np.sum(p * np.log(p / q))))


# Implementations elsewhere (torch built-ins, torchmetrics): the cross-checks compare with them and
# the benchmarks time them. ``fn(sample, reduction)`` gives "mean" or "none", or None when it cannot.


def _eq_mse(s, reduction):
    return F.mse_loss(*s.args, reduction=reduction)


def _eq_mae(s, reduction):
    return F.l1_loss(*s.args, reduction=reduction)


def _eq_huber(s, reduction):
    return F.huber_loss(*s.args, delta=s.kwargs.get("delta", 1.0), reduction=reduction)


def _eq_gaussian_nll(s, reduction):
    return F.gaussian_nll_loss(*s.args, full=s.kwargs.get("full", False), eps=s.kwargs.get("eps", 1e-6),
                               reduction=reduction)


def _eq_laplace_nll(s, reduction):
    mu, y, b = s.args
    out = -torch.distributions.Laplace(mu, b, validate_args=False).log_prob(y)
    if not s.kwargs.get("full", False):
        out = out - torch.log(torch.tensor(2.0, dtype=out.dtype))
    return out if reduction == "none" else out.mean()


def _eq_torchmetrics(name):
    def eq(s, reduction):
        if reduction != "mean":
            return None
        import torchmetrics.functional as TF
        # multi-output metrics (log_cosh_error on (N, D)) return one value per column
        return getattr(TF, name)(s.args[0], s.args[1]).mean()
    return eq


def _with_scale(kind):
    """Samples for the likelihood losses: (mean, target, positive variance or scale)."""
    def make(gen, dtype, device):
        mu = torch.randn(5, 3, generator=gen, dtype=torch.float64)
        y = torch.randn(5, 3, generator=gen, dtype=torch.float64)
        s = torch.rand(5, 3, generator=gen, dtype=torch.float64) + 0.2
        args = tuple(t.to(dtype=dtype, device=device) for t in (mu, y, s))
        return Sample(args, {"full": True}, grad_args=(0, 2))
    return make


def _series_sample(with_history=False, **kwargs):
    def make(gen, dtype, device):
        x = torch.randn(4, 7, generator=gen, dtype=torch.float64) + 3.0
        y = torch.randn(4, 7, generator=gen, dtype=torch.float64) + 3.0
        args = [x, y]
        if with_history:
            args.append(torch.randn(4, 9, generator=gen, dtype=torch.float64).cumsum(-1))
        return Sample(tuple(t.to(dtype=dtype, device=device) for t in args), dict(kwargs))
    return make


def _error_kl_sample(gen, dtype, device):
    x = torch.randn(16, generator=gen, dtype=torch.float64)
    y = torch.randn(16, generator=gen, dtype=torch.float64)
    s = torch.rand(16, generator=gen, dtype=torch.float64) * 2
    bins = torch.linspace(0.0, 3.0, 7, dtype=dtype, device=device)
    args = tuple(t.to(dtype=dtype, device=device) for t in (x, y, s))
    # The error histogram is a stop-gradient target, so the formula's gradient
    # (what gradcheck differentiates numerically) is the autograd one only for sigma.
    return Sample(args, {"bins": bins, "bandwidth": 0.4, "lam": 0.5}, grad_args=(2,))


_NEG = ErrorCase("negative delta", _bad_kwarg(delta=-1.0), ValueError, r"delta must be a finite number > 0")
_DELTA = (_NEG,
          ErrorCase("NaN delta", _bad_kwarg(delta=math.nan), ValueError, r"delta must be a finite number > 0, got nan"),
          ErrorCase("delta of shape (2,)", _bad_kwarg(delta=torch.ones(2)), ValueError,
                    r"delta must be a number or a 0-d tensor"))
_EPS = (ErrorCase("eps <= 0", _bad_kwarg(eps=0.0), ValueError, r"eps must be a finite number > 0"),
        ErrorCase("infinite eps", _bad_kwarg(eps=math.inf), ValueError, r"eps must be a finite number > 0, got inf"),
        ErrorCase("NaN eps", _bad_kwarg(eps=math.nan), ValueError, r"eps must be a finite number > 0, got nan"))
_FULL = ErrorCase("full not a bool", _bad_kwarg(full="yes"), TypeError, r"full must be True or False")
_TM = "torchmetrics"
_ROBUST = {"convex", "even", "bounded-influence", "nonnegative"}
_POS = (0.0, math.inf)
_REAL = (-math.inf, math.inf)

register(mse_loss, module=MSELoss, section="sec-regression-point", input_kind="regression",
         output_range=_POS, properties={"convex", "even", "nonnegative"}, gradient="exact",
         reference=_ref_elementwise(lambda x, y: (x - y) ** 2), reference_name="float64 (x - y)**2",
         sample=_pair(), extreme=_extreme_pair(1e15), weighted=True, formula=r"(\hat y-y)^2",
         equivalent=Equivalent("builtin", "F.mse_loss", _eq_mse),
         summary="squared error; the conditional mean is its minimiser")
register(mae_loss, module=MAELoss, section="sec-regression-point", input_kind="regression",
         output_range=_POS, properties=_ROBUST, gradient="subgradient",
         reference=_ref_elementwise(lambda x, y: abs(x - y)), reference_name="float64 |x - y|",
         sample=_pair(), extreme=_extreme_pair(1e30), weighted=True, formula=r"|\hat y-y|",
         equivalent=Equivalent("builtin", "F.l1_loss", _eq_mae),
         summary="absolute error; the conditional median is its minimiser")
register(mbe, module=None, section="sec-regression-forecasting", input_kind="regression",
         output_range=_REAL, properties=set(), gradient="exact",
         reference=_ref_elementwise(lambda x, y: x - y), reference_name="float64 x - y",
         sample=_pair(), extreme=_extreme_pair(1e30), formula=r"\hat y-y",
         summary="signed bias, a diagnostic")
register(huber_loss, module=HuberLoss, section="sec-regression-point", input_kind="regression",
         output_range=_POS, properties=_ROBUST, gradient="exact",
         reference=lambda x, y, delta: F.huber_loss(x, y, delta=delta, reduction="none"),
         reference_name="torch.nn.functional.huber_loss", sample=_pair(delta=1.3),
         extreme=_extreme_pair(1e30, delta=1.0), weighted=True, errors=_DELTA,
         equivalent=Equivalent("builtin", "F.huber_loss", _eq_huber), references=("huber1964robust",),
         formula=r"\tfrac12 r^2 \text{ if } |r|\le\delta \text{ else } \delta(|r|-\tfrac12\delta)",
         summary="quadratic core, linear tails")
register(pseudo_huber_loss, module=PseudoHuberLoss, section="sec-regression-point",
         input_kind="regression", output_range=_POS, properties=_ROBUST, gradient="exact",
         reference=_ref_elementwise(_ref_pseudo_huber), reference_name="scipy.special.pseudo_huber",
         sample=_pair(delta=0.7), extreme=_extreme_pair(1e38, delta=1.0), weighted=True, errors=_DELTA,
         references=("khrapov2024improving",),
         formula=r"\delta^2(\sqrt{1+(r/\delta)^2}-1)", summary="smooth Huber")
register(log_cosh_loss, module=LogCoshLoss, section="sec-regression-point", input_kind="regression",
         output_range=_POS, properties=_ROBUST, gradient="exact",
         reference=_ref_elementwise(_ref_log_cosh), reference_name="float64 numpy log(cosh(r))",
         sample=_pair(), extreme=_extreme_pair(1e38), weighted=True, formula=r"\log\cosh r",
         equivalent=Equivalent("peer", "torchmetrics log_cosh_error", _eq_torchmetrics("log_cosh_error"), requires=_TM),
         references=("jadon2022comprehensive",),
         summary="smooth, gradient tanh(r)")
register(quantile_loss, module=QuantileLoss, section="sec-regression-quantile", input_kind="quantiles",
         output_range=_POS, properties={"convex", "bounded-influence", "nonnegative"}, gradient="subgradient",
         reference=_ref_elementwise(_ref_quantile), reference_name="float64 pinball max(τu, (τ-1)u)",
         sample=lambda g, dt, dev: Sample(
             (torch.randn(6, 3, generator=g, dtype=torch.float64).to(dt).to(dev),
              torch.randn(6, generator=g, dtype=torch.float64).to(dt).to(dev)),
             {"quantiles": (0.1, 0.5, 0.9)}),
         extreme=lambda g, dt, dev: Sample((torch.tensor([[1e30, -1e30]], dtype=dt, device=dev),
                                            torch.zeros(1, dtype=dt, device=dev)), {"quantiles": (0.2, 0.8)}),
         weighted=True,
         errors=(ErrorCase("quantile level outside (0, 1)", _bad_kwarg(quantiles=(0.1, 0.5, 1.5)), ValueError,
                           r"open interval \(0, 1\)"),
                 ErrorCase("wrong number of levels", _bad_kwarg(quantiles=(0.5,)), ValueError,
                           r"got 1 quantiles for input with 3 columns"),
                 ErrorCase("NaN level", _bad_kwarg(quantiles=(0.1, math.nan, 0.9)), ValueError,
                           r"each quantile level must lie in the open interval \(0, 1\), got nan"),
                 ErrorCase("tensor of levels outside (0, 1)", _bad_kwarg(quantiles=torch.tensor([0.1, 0.5, 1.0])),
                           ValueError, r"every entry of quantiles must lie in the open interval \(0, 1\)"),
                 ErrorCase("2-D tensor of levels", _bad_kwarg(quantiles=torch.full((1, 3), 0.5)), ValueError,
                           r"quantiles must be a sequence of levels or a 1-D tensor"),
                 ErrorCase("levels not a sequence", _bad_kwarg(quantiles=0.5), TypeError,
                           r"quantiles must be a sequence of levels or a 1-D tensor, got float")),
         references=("koenker1978regression", "gneiting2011making"),
         formula=r"\max(\tau u,(\tau-1)u),\ u=y-\hat y_\tau", summary="pinball loss; minimiser is the τ-quantile")
register(msle_loss, module=MSLELoss, section="sec-regression-transformed", input_kind="regression",
         output_range=_POS, properties={"nonnegative"}, gradient="exact",
         reference=_ref_elementwise(lambda x, y: (__import__("numpy").log1p(x) - __import__("numpy").log1p(y)) ** 2),
         reference_name="float64 (log1p x - log1p y)**2", sample=_pair(positive=True), weighted=True,
         errors=(ErrorCase("input <= -1", lambda s: Sample((s.args[0] - 100.0, s.args[1]), s.kwargs), ValueError,
                           r"every entry of input must be > -1"),
                 ErrorCase("NaN target", lambda s: Sample((s.args[0], torch.full_like(s.args[1], math.nan)), s.kwargs),
                           ValueError, r"every entry of target must be > -1.0, got NaN")),
         equivalent=Equivalent("peer", "torchmetrics mean_squared_log_error",
                               _eq_torchmetrics("mean_squared_log_error"), requires=_TM),
         references=("jadon2022comprehensive",),
         formula=r"(\log(1+\hat y)-\log(1+y))^2", summary="squared error of log1p; relative errors")
register(mape, module=MAPELoss, section="sec-regression-forecasting", input_kind="regression",
         output_range=_POS, properties={"convex", "nonnegative", "scale-free"}, gradient="subgradient",
         reference=_ref_elementwise(lambda x, y, eps=1e-8: abs(x - y) / abs(y)), reference_name="float64 |x-y|/|y|",
         sample=_pair(positive=True), weighted=True, formula=r"|\hat y-y|/|y|",
         errors=_EPS, references=("jadon2022comprehensive",),
         equivalent=Equivalent("peer", "torchmetrics mean_absolute_percentage_error",
                               _eq_torchmetrics("mean_absolute_percentage_error"), requires=_TM),
         summary="relative absolute error (fraction)")
register(smape, module=SMAPELoss, section="sec-regression-forecasting", input_kind="regression",
         output_range=(0.0, 2.0), properties={"bounded", "nonnegative", "scale-free"}, gradient="subgradient",
         reference=_ref_elementwise(lambda x, y, eps=1e-8: 2 * abs(x - y) / (abs(x) + abs(y))),
         reference_name="float64 2|x-y|/(|x|+|y|)", sample=_pair(positive=True), weighted=True,
         formula=r"2|\hat y-y|/(|y|+|\hat y|)", summary="symmetric MAPE in [0, 2]", errors=_EPS,
         extreme=lambda g, dt, dev: Sample((torch.tensor([3e38, -3e38, 3e38, 1.0], dtype=dt, device=dev),
                                            torch.tensor([1.0, 3e38, 3e38, 1e-30], dtype=dt, device=dev)), {}),
         equivalent=Equivalent("peer", "torchmetrics symmetric_mean_absolute_percentage_error",
                               _eq_torchmetrics("symmetric_mean_absolute_percentage_error"), requires=_TM),
         references=("jadon2022comprehensive",))
_NORM = ErrorCase("unknown norm", _bad_kwarg(norm="max"), ValueError, r"norm must be 'range', 'mean' or 'std'")
_LOG_INPUT = ErrorCase("input <= -1", lambda s: Sample((s.args[0] - 100.0, s.args[1]), s.kwargs), ValueError,
                       r"every entry of input must be > -1")
register(rmse, module=None, section="sec-regression-forecasting", input_kind="series",
         output_range=_POS, properties={"nonnegative", "even"}, gradient="exact", reference=_ref_series(_np_rmse),
         reference_name="float64 numpy rmse", sample=_series_sample(), summary="root mean squared error per series",
         extreme=lambda g, dt, dev: Sample((torch.tensor([[1e30, -1e30, 0.0], [1e-30, 0.0, 2e-30]], dtype=dt, device=dev),
                                            torch.zeros(2, 3, dtype=dt, device=dev)), {}),
         references=("jadon2022comprehensive",))
for _fn, _np_fn, _props, _summary, _errors in (
    (rmsle, _np_rmsle, {"nonnegative"}, "root MSLE per series", (_LOG_INPUT,)),
    (nrmse, _np_nrmse, {"nonnegative", "scale-free"}, "RMSE over the target's range, mean or std", _EPS + (_NORM,)),
    (rrmse, _np_rrmse, {"nonnegative", "scale-free"}, "RMSE relative to the target's energy", _EPS),
    (rae, _np_rae, {"nonnegative", "scale-free"}, "absolute error relative to the mean forecast", _EPS),
    (rse, _np_rse, {"nonnegative", "scale-free"}, "squared error relative to the mean forecast (1 - R²)", _EPS),
):
    register(_fn, module=None, section="sec-regression-forecasting", input_kind="series",
             output_range=_POS, properties=_props, gradient="exact", reference=_ref_series(_np_fn),
             reference_name=f"float64 numpy {_fn.__name__}", sample=_series_sample(), summary=_summary,
             errors=_errors, references=("jadon2022comprehensive",))
register(mase, module=MASELoss, section="sec-regression-forecasting", input_kind="series",
         output_range=_POS, properties={"nonnegative", "scale-free"}, gradient="subgradient",
         reference=_ref_series(_np_mase), reference_name="float64 numpy MASE (Hyndman & Koehler)",
         sample=_series_sample(with_history=True, m=2),
         errors=(ErrorCase("m < 1", _bad_kwarg(m=0), ValueError, r"m \(the seasonal period\) must be an integer >= 1"),
                 ErrorCase("m a bool", _bad_kwarg(m=True), ValueError, r"m \(the seasonal period\) must be an integer"),
                 ErrorCase("history too short", _bad_kwarg(m=9), ValueError, r"insample needs more than m=9"),
                 ErrorCase("0-d history", lambda s: Sample((*s.args[:2], s.args[2][0, 0]), s.kwargs), ValueError,
                           r"insample must have a last \(time\) dimension"),
                 ErrorCase("integer history", lambda s: Sample((*s.args[:2], s.args[2].long()), s.kwargs), TypeError,
                           r"insample must be a floating-point tensor"),
                 ErrorCase("history on another device", lambda s: Sample((*s.args[:2], s.args[2].to("meta")), s.kwargs),
                           RuntimeError, r"insample is on device meta but input is on device cpu")) + _EPS,
         references=("hyndman2006another",),
         formula=r"\mathrm{MAE}/\mathrm{MAE}_{\text{seasonal naive}}", summary="MAE scaled by the in-sample naive forecast")
register(lmse_loss, module=LMSELoss, section="sec-regression-transformed", input_kind="regression",
         output_range=_POS, properties={"even", "bounded-influence", "nonnegative"}, gradient="exact",
         reference=_ref_elementwise(lambda x, y, per_sample=True: __import__("numpy").log1p((x - y) ** 2)),
         reference_name="float64 log1p(r**2)", sample=_pair(per_sample=True),
         extreme=_extreme_pair(1e20, per_sample=True), formula=r"\log(1+r^2)\ \text{(per sample)}",
         errors=(ErrorCase("per_sample not a bool", _bad_kwarg(per_sample="yes"), TypeError,
                           r"per_sample must be True or False"),),
         references=("park2022concise",),
         summary="log(1 + MSE); per sample the Cauchy loss")
register(madl_loss, module=MADLLoss, section="sec-regression-madl", input_kind="returns",
         output_range=_REAL, properties=set(), gradient="surrogate",
         reference=_ref_elementwise(lambda x, y, kappa: -__import__("numpy").tanh(kappa * x) * y),
         reference_name="float64 -tanh(κx)·y", sample=_pair(kappa=3.0), extreme=_extreme_pair(1e30, kappa=10.0),
         errors=(ErrorCase("kappa <= 0", _bad_kwarg(kappa=-1.0), ValueError, r"kappa must be a finite number > 0"),
                 ErrorCase("infinite kappa", _bad_kwarg(kappa=math.inf), ValueError, r"kappa must be a finite number > 0")),
         references=("michankow2024mean",),
         formula=r"-\operatorname{sign}(\hat R)R \approx -\tanh(\kappa\hat R)R", summary="negated return of trading on the predicted sign")
register(gaussian_nll_loss, module=GaussianNLLLoss, section="sec-regression-uncertainty",
         input_kind="distribution", output_range=_REAL, properties=set(), gradient="exact",
         reference=_ref_gaussian_nll, reference_name="float64 Gaussian NLL formula", sample=_with_scale("var"),
         errors=(ErrorCase("negative variance", lambda s: Sample((s.args[0], s.args[1], -s.args[2]), s.kwargs),
                           ValueError, r"every entry of var must be >= 0"),
                 ErrorCase("NaN variance", lambda s: Sample((s.args[0], s.args[1], torch.full_like(s.args[2], math.nan)),
                                                            s.kwargs), ValueError, r"every entry of var must be >= 0.0, got NaN"),
                 ErrorCase("var of another shape", lambda s: Sample((s.args[0], s.args[1], s.args[2][:-1]), s.kwargs),
                           ValueError, r"var must have the shape of input"),
                 ErrorCase("integer var", lambda s: Sample((s.args[0], s.args[1], s.args[2].long()), s.kwargs),
                           TypeError, r"var must be a floating-point tensor"),
                 ErrorCase("var on another device", lambda s: Sample((s.args[0], s.args[1], s.args[2].to("meta")),
                                                                     s.kwargs), RuntimeError, r"var is on device meta"),
                 _FULL) + _EPS,
         equivalent=Equivalent("builtin", "F.gaussian_nll_loss", _eq_gaussian_nll),
         references=("nix1994estimating", "kendall2017uncertainties"),
         formula=r"\tfrac12(\log\sigma^2+(y-\mu)^2/\sigma^2)", summary="heteroscedastic Gaussian likelihood")
register(laplace_nll_loss, module=LaplaceNLLLoss, section="sec-regression-uncertainty",
         input_kind="distribution", output_range=_REAL, properties=set(), gradient="exact",
         reference=_ref_laplace_nll, reference_name="torch.distributions.Laplace.log_prob (float64)",
         sample=_with_scale("scale"),
         errors=(ErrorCase("negative scale", lambda s: Sample((s.args[0], s.args[1], -s.args[2]), s.kwargs),
                           ValueError, r"every entry of scale must be >= 0"),
                 ErrorCase("NaN scale", lambda s: Sample((s.args[0], s.args[1], torch.full_like(s.args[2], math.nan)),
                                                         s.kwargs), ValueError, r"every entry of scale must be >= 0.0, got NaN"),
                 ErrorCase("scale of another shape", lambda s: Sample((s.args[0], s.args[1], s.args[2][:-1]), s.kwargs),
                           ValueError, r"input and scale must have the same shape"),
                 _FULL) + _EPS,
         equivalent=Equivalent("builtin", "-torch.distributions.Laplace.log_prob", _eq_laplace_nll),
         references=("kendall2017uncertainties",),
         formula=r"\log b+|y-\mu|/b", summary="heteroscedastic Laplace likelihood")
register(error_uncertainty_kl_loss, module=ErrorUncertaintyKLLoss,
         section="sec-regression-uncertainty", input_kind="samples", output_range=_POS, properties={"nonnegative"},
         gradient="exact", reference=_ref_error_kl, reference_name="float64 numpy soft histograms + KL",
         sample=_error_kl_sample, reductions=("mean", "sum"), reference_reduction="mean",
         errors=(ErrorCase("negative lam", _bad_kwarg(lam=-1.0), ValueError, r"lam must be a finite number >= 0"),
                 ErrorCase("non-positive bandwidth", _bad_kwarg(bandwidth=0.0), ValueError,
                           r"bandwidth must be a finite number > 0"),
                 ErrorCase("bins on another device", lambda s: Sample(s.args, {**s.kwargs, "bins": s.kwargs["bins"].to("meta")}),
                           RuntimeError, r"bins is on device meta but input is on device cpu"),
                 ErrorCase("2-D bins", lambda s: Sample(s.args, {**s.kwargs, "bins": s.kwargs["bins"][None]}), ValueError,
                           r"bins must be a 1-D tensor of at least 2 centres"),
                 ErrorCase("empty batch", lambda s: Sample(tuple(a[:0] for a in s.args), s.kwargs), ValueError,
                           r"input must hold at least one sample"),
                 ErrorCase("sigma of another shape", lambda s: Sample((*s.args[:2], s.args[2][:-1]), s.kwargs), ValueError,
                           r"input and sigma must have the same shape")),
         references=("chen2023learning",),
         formula=r"|\hat d-d| + \lambda\,\mathrm{KL}(h(|\hat d-d|)\,\|\,h(\hat\sigma))",
         summary="L1 plus matching the uncertainty histogram to the error histogram")
