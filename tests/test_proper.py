"""Identities of Chapter 2 (proper losses, output maps and Fenchel-Young losses)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lossbook import proper as P
from lossbook.surrogates import margin_loss

D = torch.float64


def _logits(n=8, c=5, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=D) * scale, torch.randint(0, c, (n,), generator=g)


def _simplex(c, seed):
    return torch.softmax(torch.randn(c, generator=torch.Generator().manual_seed(seed), dtype=D), -1)


# --------------------------------------------------------------------------- properness


@pytest.mark.parametrize("score", [P.log_score, P.brier_score, P.spherical_score], ids=lambda f: f.__name__)
def test_proper_scores_recover_eta(score):
    for seed in range(20):
        eta = _simplex(4, seed)
        torch.testing.assert_close(P.expected_score_minimizer(score, eta), eta, atol=1e-4, rtol=0)


def test_binary_spherical_minimizer():
    q = P.expected_score_minimizer(P.spherical_score, torch.tensor([0.8, 0.2], dtype=D))
    assert abs(float(q[0]) - 0.8) < 1e-4


@pytest.mark.parametrize("gamma,want", [(1.0, 0.686), (2.0, 0.627), (5.0, 0.562)])
def test_focal_is_not_proper(gamma, want):
    def focal(q, t, reduction):
        return P.focal_score(q, t, gamma=gamma, reduction=reduction)
    q = P.expected_score_minimizer(focal, torch.tensor([0.8, 0.2], dtype=D))
    assert abs(float(q[0]) - want) < 1e-3


def _binary_sparsemax_expected(t, eta):
    # target 1 at margin t = z1 - z2, target 2 at -t
    z = torch.stack([t, torch.zeros_like(t)], -1)
    l1 = P.sparsemax_loss(z, torch.zeros(t.shape, dtype=torch.long), reduction="none")
    l2 = P.sparsemax_loss(z, torch.ones(t.shape, dtype=torch.long), reduction="none")
    return eta * l1 + (1 - eta) * l2


def test_binary_sparsemax_loss_is_proper_on_the_interior():
    t = torch.linspace(-2, 2, 40001, dtype=D)
    for eta in (0.1, 0.3, 0.55, 0.8, 0.95):
        t_star = t[_binary_sparsemax_expected(t, eta).argmin()]
        assert abs(float(t_star) - (2 * eta - 1)) < 2e-4
        p = P.sparsemax(torch.stack([t_star, torch.zeros(())]))
        assert abs(float(p[0]) - eta) < 2e-4


def test_savage_representation():
    q = torch.softmax(torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=D), -1)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(P.savage_score(P.shannon_entropy, q, y), P.log_score(q, y, reduction="none"))
    torch.testing.assert_close(P.savage_score(P.gini_entropy, q, y), P.brier_score(q, y, reduction="none"))
    # the spherical score's Bayes risk is -||q||_2
    neg_norm = lambda p: -torch.linalg.vector_norm(p, dim=-1)  # noqa: E731
    torch.testing.assert_close(P.savage_score(neg_norm, q, y), P.spherical_score(q, y, reduction="none"))


def test_scores_with_probability_targets_are_expected_scores():
    q = torch.softmax(torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=D), -1)
    eta = torch.softmax(torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=D), -1)
    for score in (P.log_score, P.brier_score, P.spherical_score, P.focal_score):
        per = torch.stack([score(q, torch.full((5,), k), reduction="none") for k in range(3)], 1)
        torch.testing.assert_close(score(q, eta, reduction="none"), (eta * per).sum(1))


@pytest.mark.crosscheck
def test_scores_match_sklearn():
    from sklearn.metrics import brier_score_loss, log_loss

    q = torch.softmax(torch.randn(30, 4, generator=torch.Generator().manual_seed(3), dtype=D), -1)
    y = torch.randint(0, 4, (30,), generator=torch.Generator().manual_seed(4))
    assert math.isclose(float(P.log_score(q, y)), log_loss(y.numpy(), q.numpy(), labels=range(4)), rel_tol=1e-10)
    want = brier_score_loss(y.numpy(), q.numpy(), labels=range(4), scale_by_half=False)
    assert math.isclose(float(P.brier_score(q, y)), want, rel_tol=1e-10)
    # binary: sklearn's brier_score_loss(y, p) is half the two-class sum
    p = q[:, 0] / (q[:, 0] + q[:, 1])
    yb = (y % 2)
    two = torch.stack([1 - p, p], 1)
    assert math.isclose(float(P.brier_score(two, yb)) / 2, brier_score_loss(yb.numpy(), p.numpy()), rel_tol=1e-10)


# --------------------------------------------------------------------------- Fenchel-Young


def test_fy_shannon_is_cross_entropy_and_its_gradient_is_softmax_minus_onehot():
    h, y = _logits()
    torch.testing.assert_close(P.fenchel_young_loss(h, y), F.cross_entropy(h, y))
    h = h.requires_grad_(True)
    P.fenchel_young_loss(h, y, reduction="sum").backward()
    torch.testing.assert_close(h.grad, torch.softmax(h.detach(), -1) - F.one_hot(y, 5))


@pytest.mark.parametrize("reg,alpha", [("squared", 1.5), ("tsallis", 1.5), ("tsallis", 1.2), ("tsallis", 3.0)])
def test_fy_gradient_is_prediction_minus_target(reg, alpha):
    h, y = _logits(seed=1)
    h = h.requires_grad_(True)
    P.fenchel_young_loss(h, y, regularizer=reg, alpha=alpha, reduction="sum").backward()
    pred = P.sparsemax(h.detach()) if reg == "squared" else P.tsallis_entmax(h.detach(), alpha)
    torch.testing.assert_close(h.grad, pred - F.one_hot(y, 5))


def test_fy_squared_is_sparsemax_loss_and_tsallis_two_is_squared():
    h, _ = _logits(seed=2)
    q = torch.softmax(torch.randn(8, 5, generator=torch.Generator().manual_seed(9), dtype=D), -1)
    for target in (_logits(seed=2)[1], q):
        sq = P.fenchel_young_loss(h, target, regularizer="squared", reduction="none")
        torch.testing.assert_close(sq, P.sparsemax_loss(h, target, reduction="none"))
        torch.testing.assert_close(P.fenchel_young_loss(h, target, regularizer="tsallis", alpha=2.0,
                                                        reduction="none"), sq)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), reg=st.sampled_from(["shannon", "squared", "tsallis"]))
def test_fy_is_nonnegative_and_zero_at_its_prediction(seed, reg):
    h, y = _logits(4, 4, seed)
    assert (P.fenchel_young_loss(h, y, regularizer=reg, reduction="none") >= -1e-12).all()
    pred = {"shannon": torch.softmax(h, -1), "squared": P.sparsemax(h), "tsallis": P.tsallis_entmax(h, 1.5)}[reg]
    zero = P.fenchel_young_loss(h, pred, regularizer=reg, reduction="none")
    torch.testing.assert_close(zero, torch.zeros_like(zero), atol=1e-9, rtol=0)


@pytest.mark.crosscheck
def test_tsallis_matches_entmax():
    import entmax

    h, y = _logits(seed=3)
    torch.testing.assert_close(P.tsallis_entmax(h, 1.5), entmax.entmax15(h, dim=-1))
    torch.testing.assert_close(P.fenchel_young_loss(h, y, regularizer="tsallis", alpha=1.5, reduction="none"),
                               entmax.entmax15_loss(h, y))


# --------------------------------------------------------------------------- sparsemax


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-50, 50))
def test_sparsemax_is_on_the_simplex_and_shift_invariant(seed, shift):
    h, _ = _logits(4, 6, seed)
    p = P.sparsemax(h)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(4, dtype=D))
    torch.testing.assert_close(P.sparsemax(h + shift), p, atol=1e-9, rtol=0)


def test_sparsemax_is_the_euclidean_projection():
    # KKT: p = [z - tau]_+ with the support exactly where z > tau; compare with a brute-force search
    z = torch.tensor([0.3, 1.2, -0.5, 0.9], dtype=D)
    p = P.sparsemax(z)
    best = None
    for mask in range(1, 16):
        s = torch.tensor([(mask >> i) & 1 for i in range(4)], dtype=torch.bool)
        tau = (z[s].sum() - 1) / s.sum()
        cand = torch.where(s, z - tau, torch.zeros_like(z))
        if (cand >= 0).all():
            dist = float((cand - z).square().sum())
            best = min(best or (math.inf, None), (dist, cand), key=lambda t: t[0])
    torch.testing.assert_close(p, best[1])


def test_sparsemax_jacobian_matches_autograd():
    z = torch.tensor([[0.3, 1.2, -0.5, 0.9], [2.0, 0.0, 0.1, -1.0]], dtype=D)
    for row in z:
        auto = torch.autograd.functional.jacobian(P.sparsemax, row)
        torch.testing.assert_close(auto, P.sparsemax_jacobian(row))


def test_sparsemax_loss_zero_iff_separated_by_one():
    z = torch.tensor([[2.0, 1.0, 0.0], [1.9, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=D)
    loss = P.sparsemax_loss(z, torch.tensor([0, 0, 0]), reduction="none")
    assert float(loss[0]) == 0.0 and float(loss[1]) > 0 and float(loss[2]) > 0


@settings(max_examples=50, deadline=None)
@given(t=st.floats(-6, 6))
def test_binary_sparsemax_loss_is_a_quarter_modified_huber(t):
    z = torch.tensor([[t, 0.0]], dtype=D)
    got = P.sparsemax_loss(z, torch.tensor([0]))
    want = margin_loss(torch.tensor([t], dtype=D), kind="modified_huber") / 4
    torch.testing.assert_close(got, want)


@pytest.mark.crosscheck
def test_sparsemax_matches_entmax():
    import entmax

    h, y = _logits(16, 7, 4)
    torch.testing.assert_close(P.sparsemax(h), entmax.sparsemax(h, dim=-1))
    torch.testing.assert_close(P.sparsemax_loss(h, y, reduction="none"), entmax.sparsemax_loss(h, y))
    mod = entmax.SparsemaxLoss(reduction="elementwise_mean")
    torch.testing.assert_close(P.sparsemax_loss(h, y), mod(h, y))


def test_sparse_softmax_with_k_equal_c_is_softmax_and_cross_entropy():
    h, y = _logits()
    torch.testing.assert_close(P.sparse_softmax(h, k=5), torch.softmax(h, -1))
    torch.testing.assert_close(P.sparse_softmax_loss(h, y, k=5), F.cross_entropy(h, y))
    p = P.sparse_softmax(h, k=2)
    assert ((p > 0).sum(-1) == 2).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(8, dtype=D))


# --------------------------------------------------------------------------- spherical family


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100), shift=st.floats(-100, 100))
def test_z_loss_is_shift_and_scale_invariant(seed, scale, shift):
    h, y = _logits(4, 6, seed)
    torch.testing.assert_close(P.z_loss(scale * h + shift, y, a=0.5, b=2.0), P.z_loss(h, y, a=0.5, b=2.0))


def test_z_loss_gradient_is_orthogonal_to_ones_and_to_the_logits():
    h, y = _logits(seed=5)
    h = h.requires_grad_(True)
    P.z_loss(h, y, reduction="sum").backward()
    g = h.grad
    torch.testing.assert_close((g * torch.ones_like(g)).sum(-1), torch.zeros(8, dtype=D), atol=1e-12, rtol=0)
    torch.testing.assert_close((g * h.detach()).sum(-1), torch.zeros(8, dtype=D), atol=1e-12, rtol=0)


def test_z_loss_depends_only_on_the_spherical_statistics():
    # permuting the non-target logits keeps o_c, sum(o) and sum(o^2): same loss
    h, _ = _logits(1, 6, 6)
    y = torch.tensor([2])
    perm = h.clone()
    perm[0, [0, 1, 3, 4, 5]] = h[0, [5, 3, 1, 0, 4]]
    torch.testing.assert_close(P.z_loss(perm, y), P.z_loss(h, y))


def test_z_loss_range_and_constant_logits():
    c = 10
    a, b = 1.0, 3.0
    best = torch.zeros(1, c, dtype=D)
    best[0, 0] = 1.0
    lo = F.softplus(torch.tensor(a * (b - math.sqrt(c - 1)), dtype=D)) / a
    torch.testing.assert_close(P.z_loss(best, torch.tensor([0])), lo)
    flat = torch.zeros(1, c, dtype=D, requires_grad=True)
    out = P.z_loss(flat, torch.tensor([0]))
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(flat.grad).all()


def test_log_z_penalty_formula():
    h, _ = _logits()
    torch.testing.assert_close(P.log_z_penalty(h, coef=0.3, reduction="none"), 0.3 * torch.logsumexp(h, -1) ** 2)


def test_spherical_and_taylor_softmax_are_distributions():
    h, _ = _logits()
    for fn in (P.spherical_softmax, P.taylor_softmax):
        p = fn(h)
        assert (p > 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(8, dtype=D))
    torch.testing.assert_close(P.spherical_softmax(h), P.spherical_softmax(-h))  # even in o


# --------------------------------------------------------------------------- learned canonical link


def test_single_logistic_component_is_bce_with_logits():
    v = torch.randn(20, generator=torch.Generator().manual_seed(0), dtype=D) * 3
    y = (torch.rand(20, generator=torch.Generator().manual_seed(1), dtype=D) > 0.5).to(D)
    one = torch.ones(1, dtype=D)
    got = P.canonical_link_loss(v, y, weights=one, slopes=one, biases=0 * one)
    torch.testing.assert_close(got, F.binary_cross_entropy_with_logits(v, y))


def test_learned_link_is_proper_and_psi_is_convex_for_random_parameters():
    torch.manual_seed(0)
    link = P.LearnedCanonicalLink(6).double()
    with torch.no_grad():
        for p in link.parameters():
            p.add_(torch.randn_like(p))
    v = torch.linspace(-8, 8, 401, dtype=D, requires_grad=True)
    (d1,) = torch.autograd.grad(link.psi(v).sum(), v, create_graph=True)
    torch.testing.assert_close(d1, link(v))  # Ψ' = F
    (d2,) = torch.autograd.grad(d1.sum(), v)
    assert (d2 >= 0).all()
    # the expected loss eta*l(1, v) + (1-eta)*l(0, v) is minimised where F(v) = eta
    grid = torch.linspace(-15, 15, 60001, dtype=D)
    with torch.no_grad():
        for eta in (0.1, 0.5, 0.77):
            risk = link.loss(grid, torch.full_like(grid, eta), reduction="none")
            assert abs(float(link(grid[risk.argmin()])) - eta) < 1e-3


def test_link_loss_is_linear_in_the_target_and_stable():
    link = P.LearnedCanonicalLink(3).double()
    v = torch.tensor([1e30, -1e30, 0.5], dtype=D)
    for t in (0.0, 1.0):
        assert torch.isfinite(link.loss(v, torch.full_like(v, t), reduction="none")).all()
    w = torch.randn(5, dtype=D)
    l0 = link.loss(w, torch.zeros(5, dtype=D), reduction="none")
    l1 = link.loss(w, torch.ones(5, dtype=D), reduction="none")
    torch.testing.assert_close(link.loss(w, torch.full((5,), 0.3, dtype=D), reduction="none"), 0.7 * l0 + 0.3 * l1)
    torch.testing.assert_close(l0 - l1, w)  # Ψ(v) - (Ψ(v) - v)


def test_numpy_is_not_needed_for_scores():
    # the scores accept any float dtype and return it
    q = torch.tensor([[0.25, 0.75]], dtype=torch.float32)
    assert P.brier_score(q, torch.tensor([1])).dtype == torch.float32
    assert np.isclose(float(P.brier_score(q, torch.tensor([1]))), 0.125)


def test_link_log_loss_is_bce_for_one_logistic_component_and_matches_probabilities():
    link = P.LearnedCanonicalLink(1).double()
    v = torch.randn(10, dtype=D, generator=torch.Generator().manual_seed(0)) * 3
    y = (v > 0.3).to(D)
    torch.testing.assert_close(link.log_loss(v, y), F.binary_cross_entropy_with_logits(v, y))
    link = P.LearnedCanonicalLink(5).double()
    p = link(v)
    want = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    torch.testing.assert_close(link.log_loss(v, y), want)


# --------------------------------------------------------------------------- review fixes (one test per defect class)

_PROBS_LOSSES = [P.log_score, P.brier_score, P.spherical_score, P.focal_score]


@pytest.mark.parametrize("score", _PROBS_LOSSES, ids=lambda f: f.__name__)
def test_a_nan_probability_or_an_off_simplex_target_is_refused(score):
    # log_score with a NaN probability returned 0.693 (the value check let NaN through)
    q = torch.tensor([[math.nan, 0.5], [0.5, 0.5]], dtype=D)
    with pytest.raises(ValueError, match="probs must hold probability vectors .*no NaN"):
        score(q, torch.tensor([1, 0]))
    good = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=D)
    with pytest.raises(ValueError, match="target must hold probability vectors"):
        score(good, torch.full((2, 2), 0.7, dtype=D))
    with pytest.raises(ValueError, match="probs must have at least one class"):
        score(good[:, :0], torch.tensor([0, 0]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_z_loss_gradient_at_constant_logits_is_bounded(dtype):
    # the std was clamped at float tiny: a gradient of ~1e18 at zero logits (inf in float16)
    z = torch.zeros(3, 4, dtype=dtype, requires_grad=True)
    P.z_loss(z, torch.tensor([0, 1, 2]), reduction="sum").backward()
    assert torch.isfinite(z.grad).all() and float(z.grad.abs().max()) < 1e3
    g = z.grad.double()
    assert abs(float(g.sum())) <= 1e-3 * float(g.abs().sum())  # still orthogonal to the ones vector
    # rows with a spread above eps are unchanged: the loss is still scale-invariant there
    h, y = _logits(seed=3)
    torch.testing.assert_close(P.z_loss(0.01 * h, y), P.z_loss(h, y))
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        P.z_loss(h, y, eps=0.0)


def _masked_inputs(soft):
    z, y = _logits(n=6, c=5, seed=4)
    z[:, 0] = -math.inf
    y = torch.where(y == 0, torch.ones_like(y), y)
    if soft:
        t = torch.softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(5), dtype=D), -1)
        t[:, 0] = 0.0
        y = t / t.sum(-1, keepdim=True)
    return z.requires_grad_(True), y


_MASKED = [
    ("fy_shannon", lambda z, y: P.fenchel_young_loss(z, y, reduction="sum"), True),
    ("fy_squared", lambda z, y: P.fenchel_young_loss(z, y, regularizer="squared", reduction="sum"), True),
    ("fy_tsallis", lambda z, y: P.fenchel_young_loss(z, y, regularizer="tsallis", alpha=1.4, reduction="sum"), True),
    ("sparsemax_loss", lambda z, y: P.sparsemax_loss(z, y, reduction="sum"), True),
    ("z_loss", lambda z, y: P.z_loss(z, y, reduction="sum"), False),
    ("sparse_softmax_loss", lambda z, y: P.sparse_softmax_loss(z, y, k=2, reduction="sum"), False),
    ("sparse_softmax_loss_k5", lambda z, y: P.sparse_softmax_loss(z, y, k=5, reduction="sum"), False),
]


_MASKED_CASES = [pytest.param(name, fn, soft, id=f"{name}-{'soft' if soft else 'index'}")
                 for name, fn, takes_soft in _MASKED for soft in ((False, True) if takes_soft else (False,))]


@pytest.mark.parametrize("name,fn,soft", _MASKED_CASES)
def test_masked_logits_give_finite_losses_and_gradients(name, fn, soft):
    # a -inf on a non-target class made 0·(-inf) = NaN in one-hot products (F.cross_entropy is finite)
    z, y = _masked_inputs(soft)
    out = fn(z, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(z.grad).all()
    assert (z.grad[:, 0] == 0).all()  # a masked class gets no gradient
    # and the masked class changes nothing: same as dropping the column
    z2 = z.detach()[:, 1:]
    y2 = y[:, 1:] if soft else y - 1
    if name != "sparse_softmax_loss_k5":
        torch.testing.assert_close(fn(z2, y2), out.detach())


def test_sparsemax_loss_is_accurate_for_large_logits_in_float32_and_refuses_nan():
    # the quadratic form cancelled: 0.5 instead of 0 at ±1e4 in float32
    h = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 0, 2])
    want = torch.tensor([0.0, 20000.0, 1 / 3])
    for fn in (P.sparsemax_loss, lambda a, b, **kw: P.fenchel_young_loss(a, b, regularizer="squared", **kw)):
        torch.testing.assert_close(fn(h, y, reduction="none"), want)
    z, t = _logits(seed=6, scale=0.5)
    assert (P.sparsemax_loss(z.float() + 1e4, t, reduction="none") >= 0).all()
    torch.testing.assert_close(P.sparsemax_loss(z.float() + 1e3, t), P.sparsemax_loss(z, t).float(), atol=2e-4, rtol=0)
    bad = h.clone()
    bad[0, 1] = math.nan  # gave "index -1 is out of bounds"
    with pytest.raises(ValueError, match="logits contains NaN"):
        P.sparsemax_loss(bad, y)
    with pytest.raises(ValueError, match="theta contains NaN"):
        P.fenchel_young_loss(bad, y, regularizer="tsallis")
    with pytest.raises(ValueError, match="input contains NaN"):
        P.sparsemax(bad)


@pytest.mark.parametrize("alpha", [math.inf, math.nan, 1.0, -2.0])
def test_tsallis_alpha_must_be_finite_and_above_one(alpha):
    # alpha = inf gave a negative loss
    z, y = _logits(seed=7)
    with pytest.raises(ValueError, match="alpha must be a finite number > 1"):
        P.fenchel_young_loss(z, y, regularizer="tsallis", alpha=alpha)
    with pytest.raises(ValueError, match="alpha must be a finite number > 1"):
        P.tsallis_entmax(z, alpha=alpha)


_SECOND_ORDER = [
    ("fy_squared", lambda t, y: P.fenchel_young_loss(t, y, regularizer="squared", reduction="sum"), P.sparsemax),
    ("fy_tsallis_1.3", lambda t, y: P.fenchel_young_loss(t, y, regularizer="tsallis", alpha=1.3, reduction="sum"),
     lambda u: P.tsallis_entmax(u, alpha=1.3)),
    ("fy_tsallis_2.5", lambda t, y: P.fenchel_young_loss(t, y, regularizer="tsallis", alpha=2.5, reduction="sum"),
     lambda u: P.tsallis_entmax(u, alpha=2.5)),
    ("fy_shannon", lambda t, y: P.fenchel_young_loss(t, y, reduction="sum"), lambda u: torch.softmax(u, -1)),
    ("sparsemax_loss", lambda t, y: P.sparsemax_loss(t, y, reduction="sum"), P.sparsemax),
]


@pytest.mark.parametrize("name,loss,pmap", _SECOND_ORDER, ids=[c[0] for c in _SECOND_ORDER])
def test_fy_hessian_is_the_jacobian_of_the_prediction(name, loss, pmap):
    # the prediction was computed without gradient: double backward gave a zero Hessian
    th = torch.randn(3, 4, dtype=D, generator=torch.Generator().manual_seed(0)) * 0.4
    y = torch.tensor([0, 1, 3])
    hess = torch.autograd.functional.hessian(lambda u: loss(u.view(3, 4), y), th.flatten()).view(3, 4, 3, 4)
    step = 1e-6
    for i in range(3):
        fd = torch.stack([(pmap(th[i] + step * e) - pmap(th[i] - step * e)) / (2 * step)
                          for e in torch.eye(4, dtype=D)], 1)
        assert float(fd.abs().sum()) > 0.1  # a non-trivial support
        torch.testing.assert_close(hess[i, :, i, :], fd, atol=1e-5, rtol=1e-4)
    t = th.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda u: loss(u, y), (t,), eps=1e-6, atol=1e-5, rtol=1e-4)
    # tsallis_entmax itself now has the exact Jacobian too
    if "tsallis" in name:
        u = th[0].clone().requires_grad_(True)
        jac = torch.autograd.functional.jacobian(pmap, u)
        torch.testing.assert_close(jac, torch.autograd.functional.jacobian(pmap, th[0]))
        assert torch.autograd.gradcheck(pmap, (u,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["z_loss", "fenchel_young_loss", "focal_score", "sparse_softmax_loss"])
def test_compiles_with_dynamic_shapes_and_changing_hyperparameters(name):
    # z_loss failed under dynamic=True (math.isfinite on b); fenchel_young_loss was marked compile=False
    from lossbook.registry import get
    spec = get(name)
    assert spec.compile
    torch._dynamo.reset()
    fn = torch.compile(spec.fn, fullgraph=True, backend="eager", dynamic=True)
    for seed, scale in ((0, 1.0), (1, 1.1), (2, 1.3)):
        s = spec.sample(torch.Generator().manual_seed(seed), D, torch.device("cpu"))
        kw = {k: v * scale if isinstance(v, float) else v for k, v in s.kwargs.items()}
        args = tuple(a[: 6 - seed] for a in s.args)
        torch.testing.assert_close(fn(*args, **kw, reduction="none"), spec.fn(*args, **kw, reduction="none"))
    tensor_kw = {k: torch.tensor(v) if isinstance(v, float) else v for k, v in s.kwargs.items()}
    torch.testing.assert_close(fn(*s.args, **tensor_kw), spec.fn(*s.args, **s.kwargs))


def test_module_twins_take_0d_tensor_hyperparameters():
    # ZLoss(b=tensor) and FenchelYoungLoss(alpha=tensor) raised: the checks wanted Python floats
    q = torch.softmax(torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=D), -1)
    z, y = _logits(n=5, c=3, seed=8)
    cases = [
        (P.FocalScoreLoss(gamma=torch.tensor(1.5)), P.focal_score, (q, y), {"gamma": 1.5}),
        (P.ZLoss(a=torch.tensor(1.5), b=torch.tensor(2.0)), P.z_loss, (z, y), {"a": 1.5, "b": 2.0}),
        (P.FenchelYoungLoss(regularizer="tsallis", alpha=torch.tensor(1.3)), P.fenchel_young_loss, (z, y),
         {"regularizer": "tsallis", "alpha": 1.3}),
        (P.SparseSoftmaxLoss(k=torch.tensor(2)), P.sparse_softmax_loss, (z, y), {"k": 2}),
    ]
    for module, fn, args, kwargs in cases:
        assert len(list(module.buffers())) >= 1
        torch.testing.assert_close(module(*args), fn(*args, **kwargs))
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        P.FocalScoreLoss(gamma=torch.tensor(math.nan))(q, y)


def test_nan_link_parameters_fail_and_every_loss_runs_on_meta():
    # canonical_link_loss let NaN slopes through ((NaN <= 0) is False) and called bool() on meta tensors
    s = P._canonical_sample(torch.Generator().manual_seed(0), D, torch.device("cpu"))
    with pytest.raises(ValueError, match="slopes must be > 0"):
        P.canonical_link_loss(*s.args, **{**s.kwargs, "slopes": s.kwargs["slopes"] * math.nan})
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        P.canonical_link_loss(s.args[0], s.args[1] + 2, **s.kwargs)
    from lossbook.check import draw
    from lossbook.registry import all_losses
    for spec in all_losses("proper"):
        smp = draw(spec)
        meta = lambda v: v.to("meta") if isinstance(v, torch.Tensor) else v  # noqa: E731
        for reduction, shape in (("none", spec.fn(*smp.args, **smp.kwargs, reduction="none").shape), ("mean", ())):
            out = spec.fn(*map(meta, smp.args), **{k: meta(v) for k, v in smp.kwargs.items()}, reduction=reduction)
            assert out.is_meta and out.shape == shape, spec.name


def test_learned_link_is_a_registered_learnable_module():
    from lossbook.registry import get_module
    spec = get_module("LearnedCanonicalLink")
    assert spec.learnable and spec.input_kind == "margins" and spec.references == ("lam2023legendretron",)
    ms = spec.sample(torch.Generator().manual_seed(0), D, torch.device("cpu"))
    link = spec.cls(**ms.init).double()
    for smp in (ms.forward, *ms.steps):
        torch.testing.assert_close(link(*smp.args), spec.reference(link, smp))
    link(*ms.forward.args).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in link.parameters())


def test_equivalents_match_and_references_are_bib_keys():
    from lossbook.check import call, draw
    from lossbook.registry import get
    bib = open(__import__("pathlib").Path(__file__).parents[1] / "book" / "references.bib").read()
    for name in ("log_score", "brier_score", "sparsemax_loss", "fenchel_young_loss"):
        spec = get(name)
        assert spec.equivalent is not None, name
        s = draw(spec)
        for reduction in ("none", "mean"):
            want = spec.equivalent.fn(s, reduction)
            torch.testing.assert_close(call(spec, s, reduction=reduction), want.to(D), rtol=1e-5, atol=1e-6)
    for name in ("log_score", "brier_score", "spherical_score", "focal_score", "fenchel_young_loss",
                 "sparsemax_loss", "sparse_softmax_loss", "z_loss", "log_z_penalty", "canonical_link_loss"):
        keys = get(name).references
        assert keys and all("{" + k + "," in bib for k in keys), name
    assert "brier1950verification" in get("brier_score").references
    assert "blondel2020learning" in get("fenchel_young_loss").references
    assert get("log_z_penalty").references == ("chowdhery2023palm",)


def test_focal_score_gradient_at_a_certain_prediction_is_its_limit():
    # 0 < gamma < 1 gave 0·inf = NaN at q_y = 1
    for gamma, slope in ((0.5, 0.0), (2.0, 0.0), (0.0, -1.0)):
        q = torch.tensor([[1.0, 0.0], [0.3, 0.7]], dtype=D, requires_grad=True)
        P.focal_score(q, torch.tensor([0, 1]), gamma=gamma, reduction="sum").backward()
        assert torch.isfinite(q.grad).all() and float(q.grad[0, 0]) == slope


@pytest.mark.parametrize("fn", [P.z_loss, lambda z, y: P.sparse_softmax_loss(z, y, k=2)], ids=["z_loss", "sparse_softmax"])
def test_class_index_losses_check_shapes_before_refusing_probability_targets(fn):
    # a float target of the wrong shape gave "logits and target must have the same shape"
    z, y = _logits(n=6, c=4)
    with pytest.raises(ValueError, match="probability target must have the shape"):
        fn(z, torch.zeros(6, 2, dtype=D))
    with pytest.raises(TypeError, match="this loss takes class-index targets"):
        fn(z, torch.full((6, 4), 0.25, dtype=D))


# --------------------------------------------------------------------------- the chapter's worked example


def test_worked_example_by_hand():
    # q = (0.5, 0.3, 0.2), y = 0, z = log q: the values the chapter computes by hand
    q, y = torch.tensor([[0.5, 0.3, 0.2]], dtype=D), torch.tensor([0])
    z = torch.log(q)
    assert abs(float(P.brier_score(q, y)) - 0.38) < 1e-12
    assert abs(float(P.spherical_score(q, y)) + 0.5 / math.sqrt(0.38)) < 1e-12
    assert abs(float(P.focal_score(q, y, gamma=2.0)) - 0.25 * math.log(2)) < 1e-12
    assert abs(float(P.fenchel_young_loss(z, y)) - math.log(2)) < 1e-12
    assert abs(float(P.sparse_softmax_loss(z, y, k=2)) - math.log(1.6)) < 1e-12
    assert float(P.log_z_penalty(z, coef=1.0)) < 1e-24
    tau = (math.log(0.5) + math.log(0.3) - 1) / 2  # support {0, 1}
    want = torch.tensor([math.log(0.5) - tau, math.log(0.3) - tau, 0.0], dtype=D)
    torch.testing.assert_close(P.sparsemax(z)[0], want)
    by_hand = -math.log(0.5) + 0.5 * sum(math.log(v) ** 2 - tau**2 for v in (0.5, 0.3)) + 0.5
    assert abs(float(P.sparsemax_loss(z, y)) - by_hand) < 1e-12


def test_sparsemax_loss_closed_form_and_zero_condition():
    z, y = _logits(n=200, c=6, seed=3)
    p = P.sparsemax(z)
    tau = ((z - p) * (p > 0)).sum(-1) / (p > 0).sum(-1)  # p = z - tau on the support
    by_hand = -z.gather(1, y[:, None])[:, 0] + 0.5 * torch.where(p > 0, z**2 - tau[:, None] ** 2, 0).sum(-1) + 0.5
    torch.testing.assert_close(by_hand, P.sparsemax_loss(z, y, reduction="none"))
    zero = P.sparsemax_loss(z, y, reduction="none") < 1e-12
    rest = z.scatter(1, y[:, None], -math.inf).max(-1).values
    assert torch.equal(zero, z.gather(1, y[:, None])[:, 0] >= 1 + rest) and zero.any() and not zero.all()


def test_canonical_link_loss_scales_with_the_score_and_link():
    # v -> cv, b -> cb, s -> s/c keeps every probability and multiplies the loss by c
    g = torch.Generator().manual_seed(0)
    v, t = torch.randn(16, generator=g, dtype=D), (torch.rand(16, generator=g) > 0.5).to(D)
    w, s, b = (torch.tensor([0.2, 0.5, 0.3], dtype=D), torch.tensor([0.5, 1.0, 3.0], dtype=D),
               torch.tensor([-1.0, 0.0, 2.0], dtype=D))
    base = P.canonical_link_loss(v, t, weights=w, slopes=s, biases=b, reduction="none")
    for c in (0.5, 0.01, 7.0):
        scaled = P.canonical_link_loss(c * v, t, weights=w, slopes=s / c, biases=c * b, reduction="none")
        torch.testing.assert_close(scaled, c * base)


def test_focal_minimiser_is_nearly_a_logit_scaling_at_gamma_2():
    # the chapter's exercise: logit q* / logit eta is about 0.37 for eta in [0.6, 0.95]
    def fs(q, t, reduction):
        return P.focal_score(q, t, gamma=2.0, reduction=reduction)

    ratios = []
    for eta in (0.6, 0.7, 0.8, 0.9, 0.95):
        q = float(P.expected_score_minimizer(fs, torch.tensor([eta, 1 - eta], dtype=D))[0])
        ratios.append(math.log(q / (1 - q)) / math.log(eta / (1 - eta)))
    assert 0.36 < min(ratios) and max(ratios) < 0.38


def test_learned_link_probabilities_stay_in_the_unit_interval_in_float32():
    # K weights on the simplex sum to 1 only up to rounding: saturated sigmoids must not give p > 1
    torch.manual_seed(0)
    link = P.LearnedCanonicalLink(8)
    with torch.no_grad():
        link.weight_logits.normal_(0, 3)
        prob = link(torch.linspace(-1e4, 1e4, 20001))
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0
