"""Chapter 3 identities, properties and cross-checks for lossbook.regression.

The generic suite (tests/test_generic.py) already checks values, gradients,
reductions and errors for every registered loss; this file checks what the
chapter derives.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lossbook import regression as R

f64 = dict(dtype=torch.float64)
floats = st.floats(-50, 50, allow_nan=False)
residuals = st.lists(floats, min_size=1, max_size=30).map(lambda v: torch.tensor(v, **f64))
deltas = st.floats(0.05, 20.0)


def zeros_like(x):
    return torch.zeros_like(x)


# --------------------------------------------------------------------------- Huber family


@settings(max_examples=60, deadline=None)
@given(residuals, deltas)
def test_huber_is_delta_times_smooth_l1(r, delta):
    torch.testing.assert_close(R.huber_loss(r, zeros_like(r), delta=delta, reduction="none"),
                               delta * F.smooth_l1_loss(r, zeros_like(r), beta=delta, reduction="none"))


@settings(max_examples=60, deadline=None)
@given(residuals)
def test_huber_with_large_delta_is_half_square(r):
    torch.testing.assert_close(R.huber_loss(r, zeros_like(r), delta=1e3, reduction="none"), 0.5 * r**2)


@settings(max_examples=60, deadline=None)
@given(residuals)
def test_huber_over_delta_tends_to_abs(r):
    delta = 1e-7
    torch.testing.assert_close(R.huber_loss(r, zeros_like(r), delta=delta, reduction="none") / delta, r.abs(),
                               atol=1e-6, rtol=0)


@settings(max_examples=60, deadline=None)
@given(residuals, deltas)
def test_huber_weighted_path_equals_builtin(r, delta):
    ones = torch.ones_like(r)
    torch.testing.assert_close(R.huber_loss(r, zeros_like(r), delta=delta, weight=ones),
                               F.huber_loss(r, zeros_like(r), delta=delta))


@settings(max_examples=60, deadline=None)
@given(residuals, deltas)
def test_pseudo_huber_matches_scipy(r, delta):
    from scipy.special import pseudo_huber

    got = R.pseudo_huber_loss(r, zeros_like(r), delta=delta, reduction="none").numpy()
    np.testing.assert_allclose(got, pseudo_huber(delta, r.numpy()), rtol=1e-10, atol=1e-14)


def test_pseudo_huber_regimes():
    small = torch.tensor([1e-5, -2e-5], **f64)
    big = torch.tensor([1e5, -3e5], **f64)
    delta = 2.0
    torch.testing.assert_close(R.pseudo_huber_loss(small, zeros_like(small), delta=delta, reduction="none"),
                               small**2 / 2, rtol=1e-8, atol=0)
    torch.testing.assert_close(R.pseudo_huber_loss(big, zeros_like(big), delta=delta, reduction="none"),
                               delta * big.abs() - delta**2, rtol=1e-4, atol=0)


def test_pseudo_huber_finite_at_float32_max():
    r = torch.tensor([3.0e38, -3.0e38, 1e-30], requires_grad=True)
    out = R.pseudo_huber_loss(r, torch.zeros(3), delta=1.0, reduction="none")
    assert torch.isfinite(out).all()
    out.sum().backward()
    torch.testing.assert_close(r.grad, torch.tensor([1.0, -1.0, 1e-30]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-20, 20), min_size=1, max_size=30).map(lambda v: torch.tensor(v, **f64)))
def test_log_cosh_matches_naive_where_finite(r):
    torch.testing.assert_close(R.log_cosh_loss(r, zeros_like(r), reduction="none"), torch.log(torch.cosh(r)))


def test_log_cosh_no_overflow_and_tanh_gradient():
    r = torch.tensor([1e4, -1e4, 0.3], requires_grad=True)
    out = R.log_cosh_loss(r, torch.zeros(3), reduction="none")
    torch.testing.assert_close(out.detach(), torch.tensor([1e4 - math.log(2), 1e4 - math.log(2), math.log(math.cosh(0.3))]))
    out.sum().backward()
    torch.testing.assert_close(r.grad, torch.tanh(r.detach()))


# --------------------------------------------------------------------------- quantiles


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=5, max_size=40), st.sampled_from([0.1, 0.25, 0.5, 0.75, 0.9]))
def test_pinball_constant_minimiser_is_the_quantile(values, tau):
    y = torch.tensor(values, **f64)
    q = float(np.quantile(y.numpy(), tau, method="inverted_cdf"))
    risk = lambda c: float(R.quantile_loss(torch.full((len(values), 1), c, **f64), y, quantiles=[tau]))  # noqa: E731
    # the empirical quantile is a minimiser: no nearby constant does better
    for c in (q - 0.5, q - 1e-3, q + 1e-3, q + 0.5):
        assert risk(q) <= risk(c) + 1e-12


@settings(max_examples=40, deadline=None)
@given(residuals)
def test_pinball_at_half_is_half_mae(u):
    torch.testing.assert_close(R.quantile_loss(torch.zeros(len(u), 1, **f64), u, quantiles=[0.5]),
                               0.5 * R.mae_loss(zeros_like(u), u))


@pytest.mark.crosscheck
@pytest.mark.parametrize("tau", [0.1, 0.5, 0.9])
def test_quantile_matches_sklearn_pinball(tau):
    from sklearn.metrics import mean_pinball_loss

    g = torch.Generator().manual_seed(0)
    y, p = torch.randn(100, generator=g, **f64), torch.randn(100, generator=g, **f64)
    ours = float(R.quantile_loss(p[:, None], y, quantiles=[tau]))
    assert ours == pytest.approx(mean_pinball_loss(y.numpy(), p.numpy(), alpha=tau), rel=1e-12)


def test_quantile_target_may_have_input_shape():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 2, generator=g), torch.randn(5, generator=g)
    torch.testing.assert_close(R.quantile_loss(x, y, quantiles=[0.2, 0.7]),
                               R.quantile_loss(x, y[:, None].expand(5, 2), quantiles=[0.2, 0.7]))


def test_quantile_rejects_wrong_input_rank():
    with pytest.raises(ValueError, match=r"input must have shape \(N, Q\)"):
        R.quantile_loss(torch.zeros(3), torch.zeros(3), quantiles=[0.5])


# --------------------------------------------------------------------------- transformed scales and metrics


@pytest.mark.crosscheck
def test_msle_rmsle_mape_match_sklearn():
    from sklearn.metrics import mean_absolute_percentage_error, mean_squared_log_error, root_mean_squared_log_error

    g = torch.Generator().manual_seed(1)
    y, p = torch.rand(50, generator=g, **f64) * 10 + 0.5, torch.rand(50, generator=g, **f64) * 10 + 0.5
    assert float(R.msle_loss(p, y)) == pytest.approx(mean_squared_log_error(y.numpy(), p.numpy()), rel=1e-12)
    assert float(R.rmsle(p, y)) == pytest.approx(root_mean_squared_log_error(y.numpy(), p.numpy()), rel=1e-12)
    assert float(R.mape(p, y)) == pytest.approx(mean_absolute_percentage_error(y.numpy(), p.numpy()), rel=1e-12)


@pytest.mark.crosscheck
def test_smape_and_log_cosh_match_torchmetrics():
    from torchmetrics.functional.regression import log_cosh_error, symmetric_mean_absolute_percentage_error

    g = torch.Generator().manual_seed(2)
    y, p = torch.rand(64, generator=g) * 5 + 0.1, torch.rand(64, generator=g) * 5 + 0.1
    torch.testing.assert_close(R.smape(p, y), symmetric_mean_absolute_percentage_error(p, y))
    torch.testing.assert_close(R.log_cosh_loss(p, y), log_cosh_error(p, y))


@pytest.mark.crosscheck
def test_rse_is_one_minus_r2_sklearn():
    from sklearn.metrics import r2_score

    g = torch.Generator().manual_seed(3)
    y, p = torch.randn(40, generator=g, **f64), torch.randn(40, generator=g, **f64)
    assert float(R.rse(p, y)) == pytest.approx(1 - r2_score(y.numpy(), p.numpy()), rel=1e-12)


@pytest.mark.crosscheck
def test_pseudo_huber_is_kornia_charbonnier_shape():
    # kornia's charbonnier loss is sqrt(r^2 + 1) - 1, i.e. pseudo-Huber with delta = 1.
    kornia_losses = pytest.importorskip("kornia.losses", reason="kornia is a test extra")
    g = torch.Generator().manual_seed(4)
    p, y = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    torch.testing.assert_close(R.pseudo_huber_loss(p, y, delta=1.0, reduction="none"),
                               kornia_losses.charbonnier_loss(p, y, reduction="none"))


def test_scale_free_metrics_in_percent_and_fraction():
    y = torch.tensor([[100.0, 200.0]])
    p = torch.tensor([[110.0, 180.0]])
    assert float(R.mape(p, y)) == pytest.approx(0.1)
    assert float(R.smape(torch.tensor([50.0]), torch.tensor([100.0]))) == pytest.approx(2 / 3)


def test_mase_is_one_for_the_naive_forecast_on_its_own_history():
    # The seasonal-naive forecast scored on the history that defines the scale gives MASE = 1.
    g = torch.Generator().manual_seed(5)
    history = torch.randn(40, generator=g, **f64).cumsum(0)
    m = 4
    naive, actual = history[:-m], history[m:]
    assert float(R.mase(naive, actual, history, m=m)) == pytest.approx(1.0, rel=1e-12)


def test_nrmse_variants_and_bad_norm():
    y = torch.tensor([[1.0, 2.0, 3.0, 6.0]], **f64)
    p = y + 1
    assert float(R.nrmse(p, y, norm="range")) == pytest.approx(1 / 5)
    assert float(R.nrmse(p, y, norm="mean")) == pytest.approx(1 / 3)
    assert float(R.nrmse(p, y, norm="std")) == pytest.approx(1 / float(y.std(correction=0)))
    with pytest.raises(ValueError, match="norm must be 'range', 'mean' or 'std'"):
        R.nrmse(p, y, norm="max")


def test_mbe_sign():
    assert float(R.mbe(torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0]))) == 1.0


# --------------------------------------------------------------------------- LMSE and MADL


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(floats, floats), min_size=1, max_size=20))
def test_lmse_gradient_is_mse_gradient_over_one_plus_mse(pairs):
    x = torch.tensor([a for a, _ in pairs], **f64, requires_grad=True)
    y = torch.tensor([b for _, b in pairs], **f64)
    (g_l,) = torch.autograd.grad(R.lmse_loss(x, y), x)
    (g_m,) = torch.autograd.grad(R.mse_loss(x, y), x)
    torch.testing.assert_close(g_l, g_m / (1 + R.mse_loss(x, y).detach()))


def test_lmse_batch_refuses_none_reduction():
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum'"):
        R.lmse_loss(torch.zeros(3), torch.zeros(3), reduction="none")


def test_lmse_batch_has_the_same_minimiser_as_mse():
    y = torch.tensor([0.0, 1.0, 5.0], **f64)
    grid = torch.linspace(-1, 6, 7001, **f64)
    lm = torch.stack([R.lmse_loss(c.expand(3), y) for c in grid])
    ms = torch.stack([R.mse_loss(c.expand(3), y) for c in grid])
    assert lm.argmin() == ms.argmin()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5).filter(lambda v: abs(v) > 1e-2), floats), min_size=1, max_size=20))
def test_smooth_madl_tends_to_exact(pairs):
    p = torch.tensor([a for a, _ in pairs], **f64)
    r = torch.tensor([b for _, b in pairs], **f64)
    torch.testing.assert_close(R.madl_loss(p, r, kappa=1e4), R.madl_loss(p, r), atol=1e-8, rtol=0)


def test_exact_madl_is_sign_of_product_times_abs_return():
    p = torch.tensor([0.5, -0.2, 0.3])
    r = torch.tensor([0.1, 0.3, -2.0])
    want = -(torch.sign(p * r) * r.abs()).mean()
    torch.testing.assert_close(R.madl_loss(p, r), want)


# --------------------------------------------------------------------------- uncertainty


@pytest.mark.crosscheck
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_matches_torch(full):
    g = torch.Generator().manual_seed(6)
    mu, y = torch.randn(20, 3, generator=g, **f64), torch.randn(20, 3, generator=g, **f64)
    var = torch.rand(20, 3, generator=g, **f64)
    var[0, 0] = 0.0  # below eps: both clamp
    for v in (var, var[:, :1]):
        torch.testing.assert_close(R.gaussian_nll_loss(mu, y, v, full=full),
                                   F.gaussian_nll_loss(mu, y, v, full=full))


def test_gaussian_nll_gradient_passes_through_the_variance_floor_like_torch():
    var = torch.tensor([1e-9, 0.5], **f64, requires_grad=True)
    var_t = var.detach().clone().requires_grad_(True)
    mu, y = torch.zeros(2, **f64), torch.ones(2, **f64)
    R.gaussian_nll_loss(mu, y, var).backward()
    F.gaussian_nll_loss(mu, y, var_t).backward()
    torch.testing.assert_close(var.grad, var_t.grad)


@pytest.mark.crosscheck
def test_gaussian_nll_is_crps_free_normal_logpdf_scipy():
    from scipy.stats import norm

    g = torch.Generator().manual_seed(7)
    mu, y, var = torch.randn(30, generator=g, **f64), torch.randn(30, generator=g, **f64), torch.rand(30, generator=g, **f64) + 0.1
    want = -norm.logpdf(y.numpy(), mu.numpy(), np.sqrt(var.numpy()))
    np.testing.assert_allclose(R.gaussian_nll_loss(mu, y, var, full=True, reduction="none").numpy(), want, rtol=1e-12)


def test_optimal_scales():
    a = 0.37
    b = torch.logspace(-3, 1, 4001, **f64)
    mu, y = torch.zeros_like(b), torch.full_like(b, a)
    assert float(b[R.laplace_nll_loss(mu, y, b, reduction="none").argmin()]) == pytest.approx(a, rel=3e-3)
    assert float(b[R.gaussian_nll_loss(mu, y, b, reduction="none").argmin()]) == pytest.approx(a**2, rel=3e-3)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 3), min_size=1, max_size=50), st.floats(0.01, 2.0))
def test_soft_histogram_is_a_distribution(values, w):
    h = R.soft_histogram(torch.tensor(values, **f64), torch.linspace(0, 3, 7, **f64), w)
    assert (h >= 0).all()
    assert float(h.sum()) == pytest.approx(1.0, abs=1e-12)


def test_soft_histogram_tends_to_hard_histogram():
    g = torch.Generator().manual_seed(8)
    x = torch.rand(300, generator=g, **f64) * 3
    centres = torch.linspace(0, 3, 7, **f64)
    hard = torch.bincount((x[:, None] - centres).abs().argmin(1), minlength=7).double() / 300
    gaps = [float((R.soft_histogram(x, centres, w) - hard).abs().max()) for w in (0.3, 0.03, 0.003, 0.0003)]
    assert all(a > b for a, b in zip(gaps, gaps[1:])) and gaps[-1] < 1e-3


def test_soft_histogram_batches_over_leading_dims():
    x = torch.rand(4, 10, **f64)
    centres = torch.linspace(0, 1, 5, **f64)
    batched = R.soft_histogram(x, centres, 0.1)
    assert batched.shape == (4, 5)
    torch.testing.assert_close(batched[2], R.soft_histogram(x[2], centres, 0.1))


def test_error_kl_is_l1_when_histograms_match_and_stops_gradient_on_errors():
    bins = torch.linspace(0, 2, 9, **f64)
    x = torch.tensor([0.0, 0.5, 1.0, 1.5], **f64, requires_grad=True)
    y = torch.zeros(4, **f64)
    sigma = (x - y).abs().detach().clone().requires_grad_(True)
    loss = R.error_uncertainty_kl_loss(x, y, sigma, bins=bins, bandwidth=0.2, lam=3.0)
    assert float(loss.detach()) == pytest.approx(float((x - y).abs().mean()), abs=1e-12)  # KL = 0
    loss.backward()
    # the prediction gets only the L1 gradient: the error histogram is a fixed target
    torch.testing.assert_close(x.grad, torch.sign(x.detach()) / 4)
    assert float(sigma.grad.abs().max()) < 1e-10  # at the optimum of the KL term
    total = R.error_uncertainty_kl_loss(x, y, sigma, bins=bins, bandwidth=0.2, reduction="sum")
    assert float(total.detach()) == pytest.approx(4 * float(loss.detach()))


def test_knn_gradient_recovers_a_linear_function():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(300, 3, generator=g, **f64)
    beta = torch.tensor([1.0, -2.0, 0.5], **f64)
    est = R.knn_gradient(x, x @ beta + 4.0, torch.zeros(3, **f64), k=30)
    torch.testing.assert_close(est, beta)
    with pytest.raises(ValueError, match="k must be an integer with d < k <= n"):
        R.knn_gradient(x, x @ beta, torch.zeros(3, **f64), k=2)


# --------------------------------------------------------------------------- conventions


def test_half_precision_is_computed_in_float32():
    r = torch.tensor([300.0, -300.0, 0.5], dtype=torch.bfloat16)
    out = R.log_cosh_loss(r, torch.zeros_like(r), reduction="none")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), R.log_cosh_loss(r.float(), torch.zeros(3), reduction="none"),
                               rtol=1e-2, atol=1e-2)


def test_weight_must_be_nonnegative_and_broadcast():
    x, y = torch.zeros(4, 2), torch.ones(4, 2)
    with pytest.raises(ValueError, match="weight must be non-negative"):
        R.huber_loss(x, y, weight=-torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"weight of shape \(3,\) does not broadcast to the shape of the loss"):
        R.log_cosh_loss(x, y, weight=torch.ones(3))
    # per-row weights broadcast over columns
    w = torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    torch.testing.assert_close(R.mse_loss(x, y, weight=w), torch.tensor(1.0))


def test_module_twins_move_tensor_hyperparameters_with_the_module():
    bins = torch.linspace(0, 1, 5)
    m = R.ErrorUncertaintyKLLoss(bins=bins, bandwidth=0.1)
    assert "bins" in dict(m.named_buffers())
    assert m.to(torch.float64).bins.dtype == torch.float64
    assert "delta=2.0" in repr(R.HuberLoss(delta=2.0))
