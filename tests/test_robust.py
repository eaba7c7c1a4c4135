"""Identities and checks of Chapter 5 (lossbook.robust).

Generic checks (oracle values, gradcheck, extremes, symmetry via PROPERTY_CHECKS)
run in tests/test_generic.py; here the chapter's identities (plan §5(d)), the
noise models, ALDR-KL's update, and the adversarial helpers.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lossbook import classification as C
from lossbook import robust as R

seeds = st.integers(0, 2**16)


def logits(n=8, c=5, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=torch.float64) * scale, torch.randint(0, c, (n,), generator=g)


def label_sum(fn, z, **kw):
    return sum(fn(z, torch.full((z.shape[0],), k), reduction="none", **kw) for k in range(z.shape[1]))


# --------------------------------------------------------------------------- noise models


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
def test_transition_matrix_is_row_stochastic(kind):
    T = R.transition_matrix(6, 0.35, kind=kind)
    torch.testing.assert_close(T.sum(1), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(T.diag(), torch.full((6,), 0.65, dtype=torch.float64))


def test_symmetric_noise_flips_to_other_classes_uniformly():
    y = torch.arange(10).repeat(5000)
    noisy = R.corrupt_labels(y, 0.4, num_classes=10, generator=torch.Generator().manual_seed(0))
    flipped = noisy != y
    assert abs(float(flipped.double().mean()) - 0.4) < 0.01
    offsets = ((noisy - y) % 10)[flipped]
    counts = torch.bincount(offsets, minlength=10)[1:].double()
    assert (counts / counts.sum() - 1 / 9).abs().max() < 0.01


def test_pairflip_noise_goes_to_next_class():
    y = torch.arange(10).repeat(1000)
    noisy = R.corrupt_labels(y, 0.3, kind="pairflip", num_classes=10, generator=torch.Generator().manual_seed(0))
    flipped = noisy != y
    assert ((noisy[flipped] - y[flipped]) % 10 == 1).all()
    assert abs(float(flipped.double().mean()) - 0.3) < 0.02


def test_corrupt_labels_is_seeded_and_accepts_a_matrix():
    y = torch.arange(4).repeat(50)
    a = R.corrupt_labels(y, 0.5, num_classes=4, generator=torch.Generator().manual_seed(3))
    b = R.corrupt_labels(y, 0.5, num_classes=4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    T = torch.zeros(4, 4)
    T[:, 2] = 1.0
    assert (R.corrupt_labels(y, 0.0, num_classes=4, matrix=T) == 2).all()


# --------------------------------------------------------------------------- symmetric sums


@settings(max_examples=20, deadline=None)
@given(seeds)
def test_symmetric_sums(seed):
    z, _ = logits(seed=seed)
    n = z.shape[0]
    torch.testing.assert_close(label_sum(R.normalized_ce_loss, z), torch.ones(n, dtype=torch.float64))
    torch.testing.assert_close(label_sum(R.normalized_focal_loss, z, gamma=0.5), torch.ones(n, dtype=torch.float64))
    torch.testing.assert_close(label_sum(R.mae_prob_loss, z), torch.full((n,), 2.0 * 4, dtype=torch.float64))
    A = math.log(1e-4)
    torch.testing.assert_close(label_sum(R.rce_loss, z), torch.full((n,), -A * 4, dtype=torch.float64))


@pytest.mark.parametrize("base", [C.focal_loss, F.cross_entropy, C.poly1_loss])
def test_normalize_loss_sums_to_one(base):
    z, y = logits()
    norm = R.normalize_loss(base, 5)
    torch.testing.assert_close(label_sum(norm, z), torch.ones(8, dtype=torch.float64))


def test_normalize_loss_of_ce_is_nce():
    z, y = logits()
    torch.testing.assert_close(R.normalize_loss(F.cross_entropy, 5)(z, y), R.normalized_ce_loss(z, y))


def test_is_symmetric_classifies_the_losses():
    for fn in (R.normalized_ce_loss, R.mae_prob_loss, R.rce_loss, R.normalized_focal_loss, R.apl_loss):
        assert R.is_symmetric(fn, 5), fn.__name__
    for fn in (F.cross_entropy, C.focal_loss, R.gce_loss, R.sce_loss):
        assert not R.is_symmetric(fn, 5), fn.__name__


# --------------------------------------------------------------------------- GCE, RCE, SCE, APL


def test_gce_limits():
    z, y = logits()
    ce = F.cross_entropy(z, y, reduction="none")
    torch.testing.assert_close(R.gce_loss(z, y, q=1e-7, reduction="none"), ce, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(R.gce_loss(z, y, q=1.0, reduction="none"), R.mae_prob_loss(z, y, reduction="none") / 2)


def test_gce_truncation_caps_the_loss_and_its_gradient():
    z, y = logits(scale=5.0)
    z.requires_grad_(True)
    k = 0.5
    out = R.gce_loss(z, y, q=0.7, truncation=k, reduction="none")
    cap = (1 - k ** 0.7) / 0.7
    pt = F.softmax(z.detach(), -1).gather(1, y[:, None]).squeeze(1)
    assert (out <= cap + 1e-12).all()
    out.sum().backward()
    assert (z.grad[pt < k] == 0).all()


def test_rce_matches_official_formula_with_clamps():
    # official: p = clamp(softmax, 1e-7, 1); onehot = clamp(onehot, 1e-4, 1); rce = -Σ p log onehot
    z, y = logits(scale=1.0)
    p = F.softmax(z, -1).clamp(1e-7, 1.0)
    onehot = F.one_hot(y, 5).double().clamp(1e-4, 1.0)
    want = -(p * onehot.log()).sum(1)
    torch.testing.assert_close(R.rce_loss(z, y, reduction="none"), want, rtol=1e-6, atol=4 * 9.22 * 1e-7)
    torch.testing.assert_close(R.rce_loss(z, y, log_zero=-4.0, reduction="none"),
                               4.0 * (1 - F.softmax(z, -1).gather(1, y[:, None]).squeeze(1)))


def test_sce_and_apl_are_their_sums():
    z, y = logits()
    torch.testing.assert_close(R.sce_loss(z, y, alpha=0.1, beta=1.0),
                               0.1 * F.cross_entropy(z, y) + R.rce_loss(z, y))
    torch.testing.assert_close(R.apl_loss(z, y, active="nfl", passive="mae", alpha=2.0, beta=3.0, gamma=0.5),
                               2.0 * R.normalized_focal_loss(z, y, gamma=0.5) + 1.5 * R.mae_prob_loss(z, y))


@pytest.mark.parametrize("fn", [R.mae_prob_loss, R.rce_loss, R.normalized_focal_loss, R.gce_loss])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_saturated_logits_finite_gradients(fn, dtype):
    z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [80.0, -80.0, 0.0]], dtype=dtype).requires_grad_()
    out = fn(z, torch.tensor([0, 0, 1]), reduction="sum")
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(z.grad).all()


# --------------------------------------------------------------------------- ALDR-KL


def test_aldr_lambda_update_is_the_closed_form_maximiser():
    z, _ = logits()
    lam_old = torch.linspace(0.3, 1.5, 8, dtype=torch.float64)
    lam0, alpha = 1.0, 3.0
    new = R.aldr_lambda_update(z, lam_old, lam0=lam0, alpha=alpha)
    zt = z / (z.abs().sum(1, keepdim=True) / 5)
    p = F.softmax(zt / lam_old[:, None], -1)
    kl = (p * (p * 5).log()).sum(1)
    grid = torch.linspace(-2, 3, 200001, dtype=torch.float64)
    obj = -grid[None] * kl[:, None] - alpha * math.log(5) / (2 * lam0) * (grid[None] - lam0) ** 2
    torch.testing.assert_close(new, grid[obj.argmax(1)], atol=3e-5, rtol=0)
    assert (new >= lam0 * (1 - 1 / alpha) - 1e-12).all() and (new <= lam0).all()


def test_aldr_alpha_to_infinity_reduces_to_ldr_kl():
    z, y = logits()
    lam = R.aldr_lambda_update(z, torch.ones(8, dtype=torch.float64), lam0=0.7, alpha=1e12)
    torch.testing.assert_close(lam, torch.full((8,), 0.7, dtype=torch.float64))
    zt = z / (z.abs().sum(1, keepdim=True) / 5)
    torch.testing.assert_close(R.aldr_kl_loss(z, y, lam, lam0=0.7, alpha=1e12, margin=1.0),
                               C.ldr_kl_loss(zt, y, lam=0.7, margin=1.0))


def test_aldr_module_updates_its_buffer_like_the_official_code():
    torch.manual_seed(0)
    z, y = logits()
    index = torch.tensor([0, 3, 5, 7, 9, 11, 12, 14])
    mod = R.ALDRKLLoss(num_samples=16, num_classes=5, lam0=1.0, alpha=2.0, margin=1.0).double()
    out = mod(z, y, index)
    # official ALDRLoss_V1 (without its 1e-5 smoothing of p), written out in float64
    zt = z / (z.norm(p=1, dim=1, keepdim=True) / 5)
    p = F.softmax(zt / 1.0, -1)
    kl = (p * (5 * p).log()).sum(1, keepdim=True)
    lam = 1.0 - kl / (2.0 * math.log(5))
    extra = -0.5 * 2.0 * math.log(5) / 1.0 * (lam - 1.0) ** 2
    diff = 1.0 * (1 - F.one_hot(y, 5)) + zt - zt.gather(1, y[:, None])
    want = (lam * torch.log(torch.mean(torch.exp(diff / lam), 1, keepdim=True)) + extra).mean()
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(mod.lambdas[index], lam[:, 0])
    untouched = torch.ones(16, dtype=torch.bool)
    untouched[index] = False
    assert (mod.lambdas[untouched] == 1.0).all()


# --------------------------------------------------------------------------- OVR and SOVR


@pytest.mark.crosscheck
def test_ovr_is_bce_with_logits_on_one_hot():
    z, y = logits()
    want = F.binary_cross_entropy_with_logits(z, F.one_hot(y, 5).double(), reduction="none").sum(1)
    torch.testing.assert_close(R.ovr_loss(z, y, reduction="none"), want)


def test_sovr_switches_the_smallest_margins():
    z, y = logits(n=10)
    m = R.logit_margin(z, y)
    out = R.sovr_loss(z, y, frac=0.4, reduction="none")
    ovr, ce = R.ovr_loss(z, y, reduction="none"), F.cross_entropy(z, y, reduction="none")
    chosen = torch.zeros(10, dtype=torch.bool)
    chosen[m.argsort()[:4]] = True
    torch.testing.assert_close(out, torch.where(chosen, ovr, ce))
    torch.testing.assert_close(R.sovr_loss(z, y, frac=0.0), F.cross_entropy(z, y))
    torch.testing.assert_close(R.sovr_loss(z, y, frac=1.0), R.ovr_loss(z, y))
    thr = R.sovr_loss(z, y, margin_threshold=0.0, reduction="none")
    torch.testing.assert_close(thr, torch.where(m < 0, ovr, ce))


# --------------------------------------------------------------------------- attacks


def _toy_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_ball_and_the_box(norm):
    model = _toy_model()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=g)
    eps = 0.1
    xa = R.pgd_attack(model, x, y, eps=eps, step_size=0.03, steps=15, norm=norm, generator=g)
    d = xa - x
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + 1e-9).all()
    assert (xa >= 0).all() and (xa <= 1).all()
    assert all(p.grad is None for p in model.parameters())
    # the attack increases the loss
    assert F.cross_entropy(model(xa), y) > F.cross_entropy(model(x), y)


def test_pgd_is_reproducible_with_a_generator():
    model = _toy_model()
    x = torch.rand(5, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    a = R.pgd_attack(model, x, y, eps=0.05, steps=3, generator=torch.Generator().manual_seed(1))
    b = R.pgd_attack(model, x, y, eps=0.05, steps=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_trades_and_smooth_adv_comp_sum_reduce_to_their_clean_losses():
    model = _toy_model()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (8,), generator=g)
    ce = F.cross_entropy(model(x), y)
    torch.testing.assert_close(R.trades_loss(model, x, y, beta=0.0, generator=g), ce)
    torch.testing.assert_close(R.smooth_adv_comp_sum_loss(model, x, y, tau=1.0, nu=0.0, generator=g), ce)
    # τ = 2 is 1 - p_y; τ in (1, 2) is GCE with q = τ - 1
    py = F.softmax(model(x), -1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(R.smooth_adv_comp_sum_loss(model, x, y, tau=2.0, nu=0.0, generator=g), (1 - py).mean())
    torch.testing.assert_close(R.smooth_adv_comp_sum_loss(model, x, y, tau=1.7, nu=0.0, generator=g),
                               R.gce_loss(model(x), y, q=0.7))
    # the adversarial terms are non-negative and differentiable
    t = R.trades_loss(model, x, y, beta=6.0, generator=g)
    assert t >= ce - 1e-12
    t.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
