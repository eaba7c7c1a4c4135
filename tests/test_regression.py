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


# --------------------------------------------------------------------------- adversarial review
# One test per defect class the review found; the registry runs each over every regression loss.

import inspect  # noqa: E402

from lossbook.check import call, draw  # noqa: E402
from lossbook.registry import Sample, all_losses  # noqa: E402

SPECS = all_losses("regression")
WEIGHTED = [s for s in SPECS if s.weighted]


def by_spec(specs):
    return pytest.mark.parametrize("spec", specs, ids=[s.name for s in specs])


def _positional(spec):
    return [k for k, p in inspect.signature(spec.fn).parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD]


def _meta(v):
    return v.to("meta") if isinstance(v, torch.Tensor) else v


@by_spec(WEIGHTED)
def test_weight_that_broadcasts_beyond_the_loss_is_refused(spec):
    # A (N, 1) weight on a (N,) loss used to give a silent (N, N) loss (and a wrong "sum"), also on
    # the paths that delegate to torch built-ins when unweighted.
    s = draw(spec)
    shape = tuple(call(spec, s, reduction="none").shape)
    traps = [shape + (1,), (2, *shape)] + ([(shape[0], 1)] if len(shape) == 1 else [])
    for trap in traps:
        for red in spec.reductions:
            with pytest.raises(ValueError, match=r"weight of shape .* does not broadcast to the shape of the loss"):
                call(spec, s, reduction=red, weight=torch.rand(trap, dtype=torch.float64))
    w = torch.rand(shape[-1:], dtype=torch.float64)  # a weight that broadcasts to the loss is still fine
    torch.testing.assert_close(call(spec, s, reduction="sum", weight=w), (call(spec, s, reduction="none") * w).sum())


@by_spec(WEIGHTED)
def test_bad_weights_name_the_weight(spec):
    s = draw(spec)
    shape = tuple(call(spec, s, reduction="none").shape)
    with pytest.raises(ValueError, match=r"weight must be non-negative \(and not NaN\)"):
        call(spec, s, weight=torch.full(shape, math.nan, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"weight must be a floating-point tensor"):
        call(spec, s, weight=torch.ones(shape, dtype=torch.long))
    with pytest.raises(RuntimeError, match=r"weight is on device meta but input is on device cpu"):
        call(spec, s, weight=torch.ones(shape, dtype=torch.float64, device="meta"))


NAN_CASES = [
    ("huber_loss", {"delta": math.nan}, "delta"), ("pseudo_huber_loss", {"delta": math.nan}, "delta"),
    ("huber_loss", {"delta": torch.tensor(math.nan)}, "delta"), ("huber_loss", {"delta": math.inf}, "delta"),
    ("pseudo_huber_loss", {"delta": -math.inf}, "delta"),
    ("madl_loss", {"kappa": math.nan}, "kappa"), ("madl_loss", {"kappa": torch.tensor(math.inf)}, "kappa"),
    ("error_uncertainty_kl_loss", {"bandwidth": math.nan}, "bandwidth"),
    ("error_uncertainty_kl_loss", {"lam": math.nan}, "lam"),
    ("error_uncertainty_kl_loss", {"lam": math.inf}, "lam"),
    ("quantile_loss", {"quantiles": (0.1, math.nan, 0.9)}, "quantile level"),
    ("quantile_loss", {"quantiles": torch.tensor([0.1, math.nan, 0.9])}, "quantiles"),
] + [(name, {"eps": bad}, "eps") for name in ("mape", "smape", "mase", "nrmse", "rrmse", "rae", "rse",
                                              "gaussian_nll_loss", "laplace_nll_loss")
     for bad in (math.nan, math.inf, -1.0, 0.0, torch.tensor(math.inf))]


@pytest.mark.parametrize("name,kwargs,key", NAN_CASES,
                         ids=[f"{n}-{k}-{i}" for i, (n, _, k) in enumerate(NAN_CASES)])
def test_nan_inf_and_out_of_domain_hyperparameters_are_refused(name, kwargs, key):
    # eps=inf used to give 0 silently in nrmse/rrmse/rae/rse (they never checked eps).
    spec = next(s for s in SPECS if s.name == name)
    s = draw(spec)
    with pytest.raises(ValueError, match=key):
        call(spec, Sample(s.args, {**s.kwargs, **kwargs}))


def test_nan_distribution_parameters_and_targets_are_refused():
    mu, y = torch.zeros(4, 2), torch.ones(4, 2)
    bad = torch.ones(4, 2)
    bad[1, 1] = math.nan
    with pytest.raises(ValueError, match=r"every entry of var must be >= 0.0, got NaN"):
        R.gaussian_nll_loss(mu, y, bad)
    with pytest.raises(ValueError, match=r"every entry of scale must be >= 0.0, got NaN"):
        R.laplace_nll_loss(mu, y, bad)
    with pytest.raises(ValueError, match=r"every entry of target must be > -1.0, got NaN"):
        R.msle_loss(mu, bad)


def test_flags_and_choices_are_checked():
    x, y = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(TypeError, match="full must be True or False"):
        R.gaussian_nll_loss(x, y, torch.ones(2, 3), full="yes")
    with pytest.raises(TypeError, match="full must be True or False"):
        R.laplace_nll_loss(x, y, torch.ones(2, 3), full=1)
    with pytest.raises(TypeError, match="per_sample must be True or False"):
        R.lmse_loss(x, y, per_sample="no")
    with pytest.raises(ValueError, match=r"m \(the seasonal period\) must be an integer >= 1, got True"):
        R.mase(x, y, torch.randn(2, 5), m=True)
    with pytest.raises(ValueError, match="norm must be 'range', 'mean' or 'std', got None"):
        R.nrmse(x, y, norm=None)
    with pytest.raises(ValueError, match=r"delta must be a number or a 0-d tensor, got a tensor of shape \(3,\)"):
        R.huber_loss(x, y, delta=torch.ones(3))


TWINS = [s for s in SPECS if s.module is not None]


@by_spec([s for s in TWINS if any(isinstance(v, float) for v in draw(s).kwargs.values())])
def test_module_twins_take_0d_tensor_hyperparameters(spec):
    s = draw(spec)
    floats = {k: v for k, v in s.kwargs.items() if isinstance(v, float)}
    module = spec.module(**{**s.kwargs, **{k: torch.tensor(v, dtype=torch.float64) for k, v in floats.items()}})
    assert set(floats) <= dict(module.named_buffers()).keys()
    torch.testing.assert_close(module(*s.args), call(spec, s))
    meta = module.to("meta")(*[_meta(a) for a in s.args])
    assert meta.is_meta and meta.shape == ()


def test_huber_and_quantile_twins_with_tensor_hyperparameters():
    g = torch.Generator().manual_seed(11)
    x, y = torch.randn(5, generator=g), torch.randn(5, generator=g) * 3
    for red in ("none", "mean", "sum"):
        torch.testing.assert_close(R.HuberLoss(delta=torch.tensor(2.0), reduction=red)(x, y),
                                   R.HuberLoss(delta=2.0, reduction=red)(x, y))
    torch.testing.assert_close(R.PseudoHuberLoss(delta=torch.tensor(0.5))(x, y), R.pseudo_huber_loss(x, y, delta=0.5))
    levels = torch.tensor([0.1, 0.5, 0.9])
    q = R.QuantileLoss(quantiles=levels)
    assert "quantiles" in dict(q.named_buffers())
    xq, yq = torch.randn(6, 3, generator=g), torch.randn(6, generator=g)
    torch.testing.assert_close(q(xq, yq), R.quantile_loss(xq, yq, quantiles=[0.1, 0.5, 0.9]))
    torch.testing.assert_close(q.to(torch.float64)(xq.double(), yq.double()),
                               R.quantile_loss(xq.double(), yq.double(), quantiles=[0.1, 0.5, 0.9]), rtol=1e-6, atol=1e-7)
    assert R.QuantileLoss(quantiles=levels).to("meta")(xq.to("meta"), yq.to("meta")).is_meta
    with pytest.raises(ValueError, match=r"every entry of quantiles must lie in the open interval \(0, 1\)"):
        R.quantile_loss(xq, yq, quantiles=torch.tensor([0.0, 0.5, 0.9]))
    with pytest.raises(ValueError, match=r"got 2 quantiles for input with 3 columns"):
        R.quantile_loss(xq, yq, quantiles=torch.tensor([0.1, 0.5]))


@by_spec(SPECS)
def test_meta_tensors_give_a_meta_result_of_the_right_shape(spec):
    s = draw(spec)
    meta = Sample(tuple(_meta(a) for a in s.args), {k: _meta(v) for k, v in s.kwargs.items()})
    for red in spec.reductions:
        want = call(spec, s, reduction=red)
        got = call(spec, meta, reduction=red)
        assert got.is_meta and got.shape == want.shape and got.dtype == want.dtype
    if spec.weighted:
        shape = call(spec, s, reduction="none").shape
        got = call(spec, meta, reduction="none", weight=torch.ones(shape, device="meta", dtype=torch.float64))
        assert got.is_meta and got.shape == shape


def _hyper_variants(s):
    """The sample's float hyperparameters scaled by 1.1 and 1.3: a schedule that changes between calls."""
    floats = {k: v for k, v in s.kwargs.items() if isinstance(v, float)}
    return [{**s.kwargs, **{k: v * f for k, v in floats.items()}} for f in (1.0, 1.1, 1.3)]


@by_spec([s for s in SPECS if s.compile])
def test_compiles_fullgraph_dynamic_with_changing_hyperparameters(spec):
    torch._dynamo.reset()
    s = draw(spec)
    compiled = torch.compile(spec.fn, fullgraph=True, dynamic=True, backend="eager")
    for kwargs in _hyper_variants(s):
        torch.testing.assert_close(compiled(*s.args, **kwargs), spec.fn(*s.args, **kwargs))
        tensors = {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, float) else v for k, v in kwargs.items()}
        torch.testing.assert_close(compiled(*s.args, **tensors), spec.fn(*s.args, **kwargs))
    if spec.weighted:
        w = torch.rand(call(spec, s, reduction="none").shape, dtype=torch.float64)
        torch.testing.assert_close(compiled(*s.args, **s.kwargs, weight=w), spec.fn(*s.args, **s.kwargs, weight=w))
    # a different batch size reuses the dynamic graph
    n = s.args[0].shape[0]
    half = Sample(tuple(a[: n // 2] if isinstance(a, torch.Tensor) and a.dim() and a.shape[0] == n else a
                        for a in s.args), s.kwargs)
    torch.testing.assert_close(compiled(*half.args, **half.kwargs), call(spec, half))


@by_spec(SPECS)
def test_bad_tensor_arguments_get_errors_that_name_them(spec):
    s = draw(spec)
    names = _positional(spec)
    for i, name in enumerate(names[: len(s.args)]):
        def swap(new):
            args = list(s.args)
            args[i] = new
            return Sample(tuple(args), s.kwargs)
        with pytest.raises(TypeError, match=rf"{name} must be a floating-point tensor, got dtype torch.int64"):
            call(spec, swap(s.args[i].long()))
        with pytest.raises(RuntimeError, match=rf"{name} is on device meta"):
            call(spec, swap(s.args[i].to("meta")))
        with pytest.raises(TypeError, match=rf"{name} must be a torch.Tensor, got list"):
            call(spec, swap(s.args[i].tolist()))


@by_spec(SPECS)
def test_degenerate_inputs_give_a_value_or_a_clear_value_error(spec):
    # 0-d, empty, non-contiguous, float16 and bfloat16 inputs: never an IndexError or a torch-internal error.
    s = draw(spec)
    cases = {
        "0-d": Sample(tuple(a.reshape(-1)[0] for a in s.args), s.kwargs),
        "empty": Sample(tuple(a[:0] for a in s.args), s.kwargs),
        "one row": Sample(tuple(a[:1] for a in s.args), s.kwargs),
    }
    for what, case in cases.items():
        try:
            out = call(spec, case)
        except ValueError as err:
            assert any(n in str(err) for n in _positional(spec) + ["series"]), f"{spec.name} {what}: {err}"
        else:
            assert out.dtype == torch.float64, f"{spec.name} {what}"
    strided = Sample(tuple(a.t().contiguous().t() if a.dim() == 2 else a for a in s.args), s.kwargs)
    torch.testing.assert_close(call(spec, strided), call(spec, s))
    for dtype in (torch.float16, torch.bfloat16):
        low = Sample(tuple(a.to(dtype) for a in s.args),
                     {k: v.to(dtype) if isinstance(v, torch.Tensor) else v for k, v in s.kwargs.items()})
        out = call(spec, low)
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), call(spec, s), rtol=3e-2, atol=3e-2)


@by_spec([s for s in SPECS if "none" in s.reductions and s.input_kind != "samples"])
def test_empty_batch_mean_and_sum_are_zero(spec):
    s = draw(spec)
    n = s.args[0].shape[0]
    empty = Sample(tuple(a[:0] if a.shape[0] == n else a for a in s.args), s.kwargs)
    for red in ("mean", "sum"):
        out = call(spec, empty, reduction=red)
        assert out.shape == () and float(out) == 0.0
        if spec.weighted:
            w = torch.ones(call(spec, empty, reduction="none").shape, dtype=torch.float64)
            assert float(call(spec, empty, reduction=red, weight=w)) == 0.0


def test_float16_is_computed_in_float32_then_cast():
    # A float16 residual of 300 squares to 90000 > 65504: torch's float16 kernel gives inf for the mean,
    # the float32 computation gives 22500 (representable). The elementwise 90000 stays inf in float16.
    x = torch.tensor([300.0, 0.0, 0.0, 0.0], dtype=torch.float16)
    zero = torch.zeros(4, dtype=torch.float16)
    want = F.mse_loss(x.double(), zero.double())
    for w in (None, torch.ones(4, dtype=torch.float16)):
        out = R.mse_loss(x, zero, weight=w)
        assert out.dtype == torch.float16 and torch.isfinite(out)
        torch.testing.assert_close(out.double(), want, rtol=1e-3, atol=0)
    assert torch.isinf(R.mse_loss(x, zero, reduction="none")[0])  # 90000 is not a float16
    torch.testing.assert_close(R.rmse(x[None], zero[None]).double(), want.sqrt(), rtol=1e-3, atol=0)
    var = torch.full((4,), 4.0, dtype=torch.float16)
    got = R.gaussian_nll_loss(x, zero, var)
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.double(), F.gaussian_nll_loss(x.double(), zero.double(), var.double()),
                               rtol=1e-3, atol=0)
    x4 = torch.tensor([400.0, 0.0, 0.0, 0.0], dtype=torch.float16)  # 0.5 * 400**2 = 80000 > 65504
    huber = R.huber_loss(x4, zero, delta=1000.0)
    torch.testing.assert_close(huber.double(), torch.tensor(20000.0, **f64), rtol=1e-3, atol=0)


def test_overflow_cases_match_the_float64_reference():
    # Each case overflowed in float32 although its value is representable.
    big = torch.tensor([[3e38, -3e38, 3e38, 1e-30]])
    other = torch.tensor([[1.0, 3e38, 3e38, 1.0]])
    want = 2 * (big.double() - other.double()).abs() / (big.double().abs() + other.double().abs())
    torch.testing.assert_close(R.smape(big, other, reduction="none").double(), want, rtol=1e-6, atol=0)
    torch.testing.assert_close(R.mape(torch.tensor([3e38]), torch.tensor([-3e38]), reduction="none").double(),
                               torch.tensor([2.0], **f64), rtol=1e-6, atol=0)
    r = torch.tensor([[1e20, -1e20, 3e19], [1e-25, 0.0, 2e-25]])
    want = (r.double() ** 2).mean(-1).sqrt()
    torch.testing.assert_close(R.rmse(r, torch.zeros_like(r), reduction="none").double(), want, rtol=1e-6, atol=0)
    torch.testing.assert_close(R.nrmse(r, torch.ones_like(r) * torch.tensor([0.0, 0.0, 1.0]), reduction="none").double(),
                               ((r.double() - torch.tensor([0.0, 0.0, 1.0], **f64)) ** 2).mean(-1).sqrt(), rtol=1e-6, atol=0)
    x = torch.tensor([1e20, -1e20, 5e9, 3.0, 0.0], requires_grad=True)
    out = R.lmse_loss(x, torch.zeros(5), per_sample=True, reduction="none")
    torch.testing.assert_close(out.double(), torch.log1p(x.detach().double() ** 2), rtol=1e-6, atol=0)
    out.sum().backward()
    torch.testing.assert_close(x.grad.double(), (2 * x.detach().double() / (1 + x.detach().double() ** 2)),
                               rtol=1e-5, atol=0)
    for red in ("mean", "sum"):
        xb = torch.tensor([1e20, -1e20, 0.0])
        s = (xb.double() ** 2).mean() if red == "mean" else (xb.double() ** 2).sum()
        torch.testing.assert_close(R.lmse_loss(xb, torch.zeros(3), reduction=red).double(), torch.log1p(s),
                                   rtol=1e-6, atol=0)


def test_scaling_keeps_the_bits_of_ordinary_values():
    # The overflow guards divide by powers of two: on ordinary inputs the values are bit-for-bit the
    # naive formulas (the book's committed outputs depend on them).
    g = torch.Generator().manual_seed(12)
    for dtype in (torch.float32, torch.float64):
        x = (torch.randn(5, 9, generator=g, dtype=torch.float64) * 3).to(dtype)
        y = (torch.randn(5, 9, generator=g, dtype=torch.float64) * 3).to(dtype)
        assert torch.equal(R.rmse(x, y, reduction="none"), (x - y).square().mean(-1).sqrt())
        assert torch.equal(R.smape(x, y, reduction="none"), 2.0 * (x - y).abs() / (y.abs() + x.abs()).clamp_min(1e-8))
        assert torch.equal(R.mape(x, y, reduction="none"), (x - y).abs() / y.abs().clamp_min(1e-8))
        assert torch.equal(R.lmse_loss(x, y, per_sample=True, reduction="none"), torch.log1p((x - y).square()))
        assert torch.equal(R.lmse_loss(x, y), torch.log1p((x - y).square().mean()))


def test_registry_records_equivalents_and_references():
    from lossbook.registry import get

    bib = (__import__("pathlib").Path(__file__).resolve().parent.parent / "book" / "references.bib").read_text()
    for name in ("mse_loss", "mae_loss", "huber_loss", "gaussian_nll_loss", "laplace_nll_loss", "msle_loss", "mape",
                 "smape", "log_cosh_loss"):
        assert get(name).equivalent is not None, name
    for spec in SPECS:
        for key in spec.references:
            assert "{" + key + "," in bib, f"{spec.name}: {key} is not in references.bib"
    for name in ("mse_loss", "mae_loss", "huber_loss", "gaussian_nll_loss", "laplace_nll_loss"):
        spec = get(name)
        s = draw(spec)
        for red in ("mean", "none"):
            torch.testing.assert_close(spec.equivalent.fn(s, red), call(spec, s, reduction=red))


# --------------------------------------------------------------------------- the chapter's worked example


def test_worked_example_by_hand():
    """The five residuals of the chapter's worked example, with the entries computed by hand."""
    r = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0], **f64)
    y = torch.full_like(r, 3.0)
    p = y + r
    huber = R.huber_loss(p, y, delta=1.0, reduction="none")
    assert float(huber[4]) == 2.5 and float(huber[1]) == 0.125
    pinball = R.quantile_loss(p[:, None], y, quantiles=[0.9], reduction="none")[:, 0]
    torch.testing.assert_close(pinball, torch.tensor([2.7, 0.45, 0.0, 0.05, 0.3], **f64))
    smape = R.smape(p, y, reduction="none")
    torch.testing.assert_close(smape[[0, 4]], torch.tensor([2.0, 2 / 3], **f64))
    msle = R.msle_loss(p, y, reduction="none")
    torch.testing.assert_close(msle[[0, 4]], torch.tensor([math.log(4) ** 2, math.log(7 / 4) ** 2], **f64))
    torch.testing.assert_close(R.madl_loss(p, y, reduction="none"), -torch.sign(p) * y)


@settings(max_examples=40, deadline=None)
@given(residuals, deltas, st.floats(0.01, 1000.0))
def test_huber_and_pseudo_huber_scale_with_delta(r, delta, c):
    """Changing the units: l_{c delta}(c r) = c^2 l_delta(r) (the chapter's units exercise)."""
    for loss in (R.huber_loss, R.pseudo_huber_loss):
        scaled = loss(c * r, zeros_like(r), delta=c * delta, reduction="none")
        torch.testing.assert_close(scaled, c**2 * loss(r, zeros_like(r), delta=delta, reduction="none"),
                                   rtol=1e-9, atol=1e-9 * c**2)
