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
