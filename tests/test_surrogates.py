"""Identities of Chapter 1 (risk, surrogate losses and consistency)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lossbook import surrogates as S

D = torch.float64


def _z(n=50, seed=0, scale=3.0):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=D) * scale


# --------------------------------------------------------------------------- margin losses

_NUMPY = {
    "hinge": lambda z: np.maximum(0, 1 - z),
    "logistic": lambda z: np.log1p(np.exp(-z)),
    "exponential": lambda z: np.exp(-z),
    "squared_hinge": lambda z: np.maximum(0, 1 - z) ** 2,
    "squared": lambda z: (1 - z) ** 2,
    "modified_huber": lambda z: np.where(z >= -1, np.maximum(0, 1 - z) ** 2, -4 * z),
    "sigmoid": lambda z: 1 - np.tanh(z),
    "savage": lambda z: (1 + np.exp(z)) ** -2.0,
}


@pytest.mark.parametrize("kind", S.MARGIN_KINDS)
def test_margin_kinds_match_their_formulas(kind):
    z = _z()
    got = S.margin_loss(z, kind=kind, reduction="none")
    torch.testing.assert_close(got, torch.from_numpy(_NUMPY[kind](z.numpy())))


@pytest.mark.parametrize("kind", S.MARGIN_KINDS)
def test_margin_kinds_gradcheck(kind):
    z = (_z(12) + 0.0123).requires_grad_(True)  # keep away from the kinks at 1 and -1
    assert torch.autograd.gradcheck(lambda t: S.margin_loss(t, kind=kind, reduction="sum"), (z,))


def test_margin_losses_are_finite_for_huge_margins():
    z = torch.tensor([1e30, -1e30, 0.0], dtype=torch.float32)
    for kind in ("hinge", "logistic", "sigmoid", "savage", "modified_huber"):
        assert torch.isfinite(S.margin_loss(z, kind=kind, reduction="none")).all(), kind
    z = torch.tensor([1e15, -1e15, 0.0], dtype=torch.float32)  # squared losses overflow beyond ~1e19: the loss, not the numerics
    for kind in ("squared", "squared_hinge"):
        assert torch.isfinite(S.margin_loss(z, kind=kind, reduction="none")).all(), kind
    # the sigmoid loss keeps its relative precision for large margins (no 1 - tanh cancellation)
    big = torch.tensor([20.0], dtype=D)
    torch.testing.assert_close(S.margin_loss(big, kind="sigmoid"), 2 * torch.exp(-2 * big)[0], rtol=1e-6, atol=0)


def test_margin_loss_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        S.margin_loss(_z(), kind="cubic")


def test_convex_kinds_are_convex_and_the_others_are_not():
    z = torch.linspace(-4, 4, 801, dtype=D)
    for kind in S.MARGIN_KINDS:
        v = S.margin_loss(z, kind=kind, reduction="none")
        second = v[2:] - 2 * v[1:-1] + v[:-2]
        assert bool((second >= -1e-12).all()) == (kind in S.CONVEX_MARGIN_KINDS), kind


@pytest.mark.crosscheck
def test_logistic_margin_equals_soft_margin_and_bce_with_logits():
    f = _z(40, 1)
    y = torch.where(_z(40, 2) > 0, 1.0, -1.0).to(D)
    ours = S.margin_loss(y * f, kind="logistic")
    torch.testing.assert_close(ours, F.soft_margin_loss(f, y))
    torch.testing.assert_close(ours, F.binary_cross_entropy_with_logits(f, (y + 1) / 2))


@pytest.mark.crosscheck
def test_margin_losses_match_sklearn():
    from sklearn.metrics import hinge_loss, log_loss, zero_one_loss

    f = _z(60, 3)
    y = torch.where(_z(60, 4) > 0, 1.0, -1.0).to(D)
    assert math.isclose(float(S.margin_loss(y * f, kind="hinge")), hinge_loss(y.numpy(), f.numpy()), rel_tol=1e-12)
    p = torch.sigmoid(f).numpy()
    assert math.isclose(float(S.margin_loss(y * f, kind="logistic")), log_loss((y.numpy() > 0), p), rel_tol=1e-9)
    logits = torch.stack([-f, f], 1)
    assert math.isclose(float(S.zero_one_loss(logits, (y > 0).long())),
                        zero_one_loss((y.numpy() > 0), f.numpy() > 0), rel_tol=1e-12)


# --------------------------------------------------------------------------- calibration


def test_conditional_risk_definition():
    eta, alpha = torch.tensor(0.3, dtype=D), _z(7)
    want = 0.3 * S.margin_loss(alpha, kind="exponential", reduction="none") + 0.7 * torch.exp(alpha)
    torch.testing.assert_close(S.conditional_risk("exponential", eta, alpha), want)


@pytest.mark.parametrize("kind", S.MARGIN_KINDS)
def test_numerical_psi_matches_closed_form(kind):
    thetas = torch.linspace(-0.99, 0.99, 23, dtype=D)
    torch.testing.assert_close(S.calibration_function(kind, thetas), S.psi_transform(kind, thetas),
                               atol=1e-4, rtol=0)


def test_psi_bounds_excess_risk_on_a_grid():
    # psi(R01 - R01*) <= R_phi - R_phi* pointwise: at eta, a wrong-signed alpha has
    # excess 0-1 risk |2 eta - 1| and excess phi-risk >= psi(|2 eta - 1|).
    alpha = torch.linspace(-3, 0, 301, dtype=D)
    for kind in ("hinge", "logistic", "exponential", "squared"):
        for eta in (0.6, 0.8, 0.95):
            excess_phi = S.conditional_risk(kind, torch.tensor(eta, dtype=D), alpha)
            best = S.conditional_risk(kind, torch.tensor(eta, dtype=D), torch.linspace(-20, 20, 40001, dtype=D)).min()
            psi = S.psi_transform(kind, torch.tensor(2 * eta - 1, dtype=D))
            assert float((excess_phi - best).min()) >= float(psi) - 1e-6


def test_is_classification_calibrated_zoo():
    for kind in S.MARGIN_KINDS:
        assert S.is_classification_calibrated(kind), kind
    assert not S.is_classification_calibrated(lambda z: z ** 2)  # φ'(0) = 0
    assert not S.is_classification_calibrated(torch.exp)  # anti-calibrated
    assert not S.is_classification_calibrated(lambda z: torch.relu(-z))  # kink at 0: not differentiable
    assert not S.is_classification_calibrated(lambda z: torch.sigmoid(z))  # non-convex, increasing


# --------------------------------------------------------------------------- comp-sum


def _gce(logits, y, q):
    p = torch.softmax(logits, -1).gather(-1, y[:, None])[:, 0]
    return ((1 - p ** q) / q).mean()


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.5, 2.0, 3.0])
def test_comp_sum_is_gce_with_q_tau_minus_one(tau):
    g = torch.Generator().manual_seed(0)
    h, y = torch.randn(9, 5, generator=g, dtype=D), torch.randint(0, 5, (9,), generator=g)
    torch.testing.assert_close(S.comp_sum_loss(h, y, tau=tau), _gce(h, y, tau - 1.0))


def test_comp_sum_special_cases():
    g = torch.Generator().manual_seed(1)
    h, y = torch.randn(9, 5, generator=g, dtype=D), torch.randint(0, 5, (9,), generator=g)
    torch.testing.assert_close(S.comp_sum_loss(h, y, tau=1.0), F.cross_entropy(h, y))
    hy = h.gather(1, y[:, None])
    sum_exp = (torch.exp(h - hy).sum(1) - 1).mean()
    torch.testing.assert_close(S.comp_sum_loss(h, y, tau=0.0), sum_exp)
    torch.testing.assert_close(S.comp_sum_loss(h, y, tau=2.0), (1 - torch.softmax(h, 1).gather(1, y[:, None])).mean())
    # tau = 2 is half the L1 distance between p and the one-hot target
    mae = (torch.softmax(h, 1) - F.one_hot(y, 5)).abs().sum(1).mean() / 2
    torch.testing.assert_close(S.comp_sum_loss(h, y, tau=2.0), mae)


@settings(max_examples=40, deadline=None)
@given(tau=st.floats(0.0, 4.0), seed=st.integers(0, 10_000))
def test_comp_sum_continuous_in_tau_and_soft_targets_are_expectations(tau, seed):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(4, 3, generator=g, dtype=D) * 2
    q = torch.softmax(torch.randn(4, 3, generator=g, dtype=D), -1)
    per_class = torch.stack([S.comp_sum_loss(h, torch.full((4,), k), tau=tau, reduction="none") for k in range(3)], 1)
    torch.testing.assert_close(S.comp_sum_loss(h, q, tau=tau, reduction="none"), (q * per_class).sum(1))
    y = torch.zeros(4, dtype=torch.long)
    near = S.comp_sum_loss(h, y, tau=1.0 + 1e-7)
    torch.testing.assert_close(near, S.comp_sum_loss(h, y, tau=1.0), rtol=1e-5, atol=1e-6)


def test_comp_sum_is_bounded_for_tau_above_one():
    h = torch.tensor([[-1e4, 1e4, 0.0]], dtype=torch.float32)
    for tau in (1.5, 2.0, 3.0):
        val = float(S.comp_sum_loss(h, torch.tensor([0]), tau=tau))
        assert math.isclose(val, 1 / (tau - 1), rel_tol=1e-6)


# --------------------------------------------------------------------------- EnsLoss


def test_random_derivatives_are_convex_and_calibrated():
    gen = torch.Generator().manual_seed(0)
    z = torch.linspace(-6, 6, 121, dtype=D)
    for _ in range(10_000):
        g = S.sample_calibrated_derivative(gen)
        v = g(z)
        assert bool((v.diff() >= -1e-15).all()) and float(g(torch.zeros(1, dtype=D))) < 0


def test_derivative_and_loss_agree():
    g = S.sample_calibrated_derivative(torch.Generator().manual_seed(3))
    z = _z(20).requires_grad_(True)
    g.loss(z).sum().backward()
    torch.testing.assert_close(z.grad, g(z.detach()))
    assert S.is_classification_calibrated(g.loss)


def test_ensloss_surrogate_gradient_is_the_logistic_gradient_for_the_logistic_derivative():
    w = torch.randn(3, dtype=D, generator=torch.Generator().manual_seed(0), requires_grad=True)
    x = torch.randn(10, 3, dtype=D, generator=torch.Generator().manual_seed(1))
    y = torch.where(torch.randn(10, dtype=D, generator=torch.Generator().manual_seed(2)) > 0, 1.0, -1.0).to(D)
    logistic_derivative = S.CalibratedDerivative(a=1.0, b=0.0, c=1.0)
    S.ensloss_margin_surrogate(y * (x @ w), logistic_derivative).backward()
    got = w.grad.clone()
    w.grad = None
    S.margin_loss(y * (x @ w), kind="logistic").backward()
    torch.testing.assert_close(got, w.grad)


def test_ensloss_module_draws_in_train_mode_and_is_logistic_in_eval():
    crit = S.EnsLoss(generator=torch.Generator().manual_seed(0))
    z = _z(8)
    crit(z)
    first = crit.last
    crit(z)
    assert crit.last != first
    crit.eval()
    torch.testing.assert_close(crit(z), S.margin_loss(z, kind="logistic"))


# --------------------------------------------------------------------------- functional gradients, LTS


def test_boosting_targets_for_mse_and_logistic():
    f, y = _z(10), (_z(10, 1) > 0).to(D)
    mse = lambda out, t, reduction: 0.5 * (out - t) ** 2  # noqa: E731
    g, h = S.boosting_targets(mse, f, y)
    torch.testing.assert_close(g, f - y)
    torch.testing.assert_close(h, torch.ones_like(f))
    g, h = S.boosting_targets(F.binary_cross_entropy_with_logits, f, y)
    p = torch.sigmoid(f)
    torch.testing.assert_close(g, p - y)
    torch.testing.assert_close(h, p * (1 - p))


def test_lts_loss_hessian_is_psd_for_a_log_linear_policy():
    gen = torch.Generator().manual_seed(0)
    n_prob, depth, n_act, dim = 6, 4, 3, 5
    feats = torch.randn(n_prob, depth, n_act, dim, generator=gen, dtype=D)
    actions = torch.randint(0, n_act, (n_prob, depth), generator=gen)
    depths = torch.full((n_prob,), float(depth), dtype=D)

    def loss(theta):
        logp = torch.log_softmax(feats @ theta, -1).gather(-1, actions[..., None])[..., 0]
        return S.lts_loss(logp, depths)

    theta = torch.randn(dim, generator=gen, dtype=D) * 0.3
    hess = torch.autograd.functional.hessian(loss, theta)
    assert float(torch.linalg.eigvalsh(hess).min()) >= -1e-8 * float(hess.abs().max())


def test_lts_loss_counts_expected_expansions():
    lp = torch.log(torch.tensor([[0.5, 0.5, 1.0]], dtype=D))
    torch.testing.assert_close(S.lts_loss(lp, torch.tensor([3.0], dtype=D)), torch.tensor(12.0, dtype=D))


# --------------------------------------------------------------------------- review fixes (one test per defect class)


def test_comp_sum_validates_like_every_logits_loss():
    # the private target check let a probability target off the simplex through, and C = 0 gave
    # "class indices must lie in [0, -1]"
    h, y = torch.randn(4, 3, dtype=D), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="target must hold probability vectors"):
        S.comp_sum_loss(h, torch.full((4, 3), 0.5, dtype=D))
    with pytest.raises(ValueError, match="logits must have at least one class"):
        S.comp_sum_loss(h[:, :0], y)
    with pytest.raises(ValueError, match=r"probability target must have the shape"):
        S.comp_sum_loss(h, torch.zeros(4, 2, dtype=D))
    with pytest.raises(ValueError, match="tau must be a finite number >= 0"):
        S.comp_sum_loss(h, y, tau=math.nan)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("soft", [False, True])
def test_comp_sum_masked_logits_give_finite_loss_and_gradient(tau, soft):
    # a -inf logit with a probability target gave inf·0 = NaN
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(5, 4, generator=gen, dtype=D)
    h[:, 0] = -math.inf
    h.requires_grad_(True)
    if soft:
        t = torch.softmax(torch.randn(5, 4, generator=gen, dtype=D), -1)
        t[:, 0] = 0.0
        t = t / t.sum(-1, keepdim=True)
    else:
        t = torch.tensor([1, 2, 3, 1, 2])
    out = S.comp_sum_loss(h, t, tau=tau, reduction="sum")
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(h.grad).all() and (h.grad[:, 0] == 0).all()
    t2 = t[:, 1:] if soft else t - 1
    torch.testing.assert_close(S.comp_sum_loss(h.detach()[:, 1:], t2, tau=tau, reduction="sum"), out.detach())


def test_comp_sum_compiles_with_a_tensor_tau_and_dynamic_shapes():
    # `if tau == 1.0` on a 0-d tensor (a CompSumLoss buffer) broke the graph under fullgraph=True
    torch._dynamo.reset()
    fn = torch.compile(S.comp_sum_loss, fullgraph=True, backend="eager", dynamic=True)
    gen = torch.Generator().manual_seed(1)
    for n, tau in ((6, 0.5), (4, 1.0), (5, 1.7)):
        h, y = torch.randn(n, 4, generator=gen, dtype=D), torch.randint(0, 4, (n,), generator=gen)
        want = S.comp_sum_loss(h, y, tau=tau, reduction="none")
        torch.testing.assert_close(fn(h, y, tau=tau, reduction="none"), want)
        torch.testing.assert_close(fn(h, y, tau=torch.tensor(tau), reduction="none"), want)
        torch.testing.assert_close(S.CompSumLoss(tau=torch.tensor(tau), reduction="none")(h, y), want)


def test_lts_loss_refuses_nan_and_bad_depths_and_runs_on_meta():
    # NaN log-probabilities passed ((NaN > 0) is False) and bool() was called on meta tensors
    lp = torch.log(torch.tensor([[0.5, 0.5], [1.0, 0.25]], dtype=D))
    d = torch.tensor([2.0, 2.0], dtype=D)
    with pytest.raises(ValueError, match="every entry must be <= 0 \\(and not NaN\\), got NaN"):
        S.lts_loss(lp * math.nan, d)
    with pytest.raises(ValueError, match="every entry of depth must be > 0"):
        S.lts_loss(lp, d * 0)
    from lossbook.check import draw
    from lossbook.registry import all_losses
    for spec in all_losses("surrogates"):
        s = draw(spec)
        meta = lambda v: v.to("meta") if isinstance(v, torch.Tensor) else v  # noqa: E731
        shape = spec.fn(*s.args, **s.kwargs, reduction="none").shape
        out = spec.fn(*map(meta, s.args), **s.kwargs, reduction="none")
        assert out.is_meta and out.shape == shape, spec.name


def test_ensloss_is_a_registered_train_eval_module_and_a_bad_call_does_not_draw():
    from lossbook.registry import get_module
    spec = get_module("EnsLoss")
    assert spec.train_eval and spec.references == ("dai2024ensloss",)
    ms = spec.sample(torch.Generator().manual_seed(0), D, torch.device("cpu"))
    crit = spec.cls(**ms.init)
    for training in (True, False):
        crit.train(training)
        for smp in (ms.forward, *ms.steps):
            want = spec.reference(crit, smp)  # peeks at the next draw without consuming it
            torch.testing.assert_close(crit(*smp.args), want)
    crit.train()
    state = crit.generator.get_state()
    with pytest.raises(TypeError, match="margins must be a floating-point tensor"):
        crit(torch.tensor([1, 2]))
    assert torch.equal(crit.generator.get_state(), state)


def test_margin_loss_equivalent_matches_and_kinds_are_checked():
    from lossbook.check import call, draw
    from lossbook.registry import get
    spec = get("margin_loss")
    s = draw(spec)
    for reduction in ("none", "mean"):
        torch.testing.assert_close(call(spec, s, reduction=reduction), spec.equivalent.fn(s, reduction))
    assert spec.equivalent.fn(_with_kind(s, "hinge"), "mean") is None
    assert get("comp_sum_loss").references == ("mao2023crossentropy", "zhang2018generalized", "ghosh2017robust")
    assert get("margin_loss").references == ("bartlett2006convexity", "zhang2004statistical", "masnadi2008design")


def _with_kind(s, kind):
    from lossbook.registry import Sample
    return Sample(s.args, {**s.kwargs, "kind": kind})
