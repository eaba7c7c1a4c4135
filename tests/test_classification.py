"""Identities and cross-checks of Chapter 4 (lossbook.classification).

The generic suite (tests/test_generic.py) already checks every registered loss
against a float64 oracle, gradcheck, reductions, extreme logits, compile, and
claimed properties. Here: the chapter's identities (plan §4(d)) and peer-library
cross-checks.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lossbook import classification as C
from lossbook.classification import LinearCrossEntropyLoss, default_chunk_size, linear_cross_entropy
from torch.utils._python_dispatch import TorchDispatchMode


def logits(n=8, c=5, scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).to(dtype), torch.randint(0, c, (n,), generator=g)


seeds = st.integers(0, 2**16)


# --------------------------------------------------------------------------- cross-entropy


@pytest.mark.crosscheck
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_cross_entropy_matches_torch_with_weights_and_smoothing(smoothing):
    z, y = logits()
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5], dtype=torch.float64)
    for red in ("none", "mean", "sum"):
        got = C.cross_entropy(z, y, weight=w, label_smoothing=smoothing, reduction=red)
        want = F.cross_entropy(z, y, weight=w, label_smoothing=smoothing, reduction=red)
        torch.testing.assert_close(got, want)


def test_cross_entropy_label_smoothing_is_soft_target():
    z, y = logits()
    eps = 0.2
    q = (1 - eps) * F.one_hot(y, 5).double() + eps / 5
    torch.testing.assert_close(C.cross_entropy(z, y, label_smoothing=eps), C.cross_entropy(z, q))


def test_cross_entropy_dense_and_ignore_index():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (2, 3, 3), generator=g)
    y[0, 0, 0] = -100
    torch.testing.assert_close(C.cross_entropy(z, y), F.cross_entropy(z, y))
    assert C.cross_entropy(z, y, reduction="none").shape == (2, 3, 3)


def test_cross_entropy_empty_batch_is_zero():
    out = C.cross_entropy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert float(out) == 0.0


# --------------------------------------------------------------------------- focal and its series


def test_focal_gamma0_is_cross_entropy():
    z, y = logits()
    torch.testing.assert_close(C.focal_loss(z, y, gamma=0.0, reduction="none"), F.cross_entropy(z, y, reduction="none"))


@settings(max_examples=25, deadline=None)
@given(seeds, st.floats(0.0, 4.0))
def test_focal_equals_its_series(seed, gamma):
    # -(1-p)^γ log p = Σ_j (1-p)^(j+γ)/j, truncated where p_t >= 0.05 converges quickly.
    z, y = logits(scale=1.0, seed=seed)
    pt = F.softmax(z, -1).gather(1, y[:, None]).squeeze(1)
    keep = pt >= 0.05
    series = sum((1 - pt) ** (j + gamma) / j for j in range(1, 400))
    torch.testing.assert_close(C.focal_loss(z, y, gamma=gamma, reduction="none")[keep], series[keep], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_focal_saturated_logits_have_finite_gradients(gamma, dtype):
    z = torch.tensor([[50.0, -50.0, 0.0], [1e4, -1e4, 0.0], [-60.0, 60.0, 0.0]], dtype=dtype).requires_grad_()
    y = torch.tensor([0, 0, 0])
    out = C.focal_loss(z, y, gamma=gamma, reduction="sum")
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(z.grad).all()
    # the confidently right sample contributes (essentially) no gradient
    assert z.grad[1].abs().max() < 1e-3


def test_log1m_softmax_matches_float64_direct_formula():
    z, _ = logits(scale=4.0)
    want = torch.log1p(-F.softmax(z, -1))
    torch.testing.assert_close(C.log1m_softmax(z), want)
    # and stays accurate where 1 - p underflows in float32
    z32 = torch.tensor([[30.0, 0.0, 0.0]])
    got = C.log1m_softmax(z32)[0, 0]
    torch.testing.assert_close(got, torch.tensor(math.log(2.0) - 30.0), rtol=1e-6, atol=1e-6)


@given(scale=st.floats(0.1, 50.0), seed=st.integers(0, 2**16))
def test_log1m_softmax_at_is_log1m_softmax_at_the_target(scale, seed):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(7, 5, generator=gen, dtype=torch.float64) * scale
    y = torch.randint(0, 5, (7,), generator=gen)
    log_pt, log_1m_pt = C.log1m_softmax_at(z, y)
    torch.testing.assert_close(log_pt, F.log_softmax(z, -1).gather(1, y[:, None]).squeeze(1))
    torch.testing.assert_close(log_1m_pt, C.log1m_softmax(z).gather(1, y[:, None]).squeeze(1))


def test_log1m_softmax_at_saturated_logits_has_finite_gradients():
    z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [30.0, 0.0, 0.0]], requires_grad=True)
    log_pt, log_1m_pt = C.log1m_softmax_at(z, torch.tensor([0, 0, 0]))
    torch.testing.assert_close(log_1m_pt[2].detach(), torch.tensor(math.log(2.0) - 30.0), rtol=1e-6, atol=1e-6)
    (log_pt + log_1m_pt).sum().backward()
    assert torch.isfinite(log_1m_pt).all() and torch.isfinite(z.grad).all()


def test_focal_alpha_semantics():
    z, y = logits()
    base = C.focal_loss(z, y, gamma=2.0, reduction="none")
    torch.testing.assert_close(C.focal_loss(z, y, gamma=2.0, alpha=0.25, reduction="none"), 0.25 * base)
    a = torch.arange(1, 6, dtype=torch.float64)
    torch.testing.assert_close(C.focal_loss(z, y, gamma=2.0, alpha=a, reduction="none"), a[y] * base)


def test_focal_soft_targets_reduce_to_index_targets():
    z, y = logits()
    torch.testing.assert_close(C.focal_loss(z, F.one_hot(y, 5).double(), gamma=1.5), C.focal_loss(z, y, gamma=1.5))


@pytest.mark.crosscheck
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_matches_kornia(gamma):
    kornia = pytest.importorskip("kornia", reason="kornia is a test extra")
    z, y = logits()
    # kornia's "none" keeps the class axis (zeros off-target); its scalar alpha weighs class 0 by 1 - alpha
    # (a background convention), so we compare without alpha and with per-class weights.
    want = kornia.losses.focal_loss(z, y, alpha=None, gamma=gamma, reduction="none").sum(1)
    torch.testing.assert_close(C.focal_loss(z, y, gamma=gamma, reduction="none"), want)
    w = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.25], dtype=torch.float64)
    want_w = kornia.losses.focal_loss(z, y, alpha=None, gamma=gamma, reduction="none", weight=w).sum(1)
    torch.testing.assert_close(C.focal_loss(z, y, gamma=gamma, alpha=w, reduction="none"), want_w)


@pytest.mark.crosscheck
def test_sigmoid_focal_matches_torchvision():
    ops = pytest.importorskip("torchvision.ops", reason="torchvision does not import next to the CPU torch build here")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(6, 4, generator=g) > 0.5).double()
    torch.testing.assert_close(C.sigmoid_focal_loss(x, t, reduction="none"),
                               ops.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2, reduction="none"))


@pytest.mark.crosscheck
def test_sigmoid_focal_gamma0_no_alpha_is_bce_with_logits():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64) * 3
    t = torch.rand(6, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(C.sigmoid_focal_loss(x, t, gamma=0.0, alpha=None, reduction="none"),
                               F.binary_cross_entropy_with_logits(x, t, reduction="none"))


def test_sigmoid_focal_soft_target_matches_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64) * 3
    t = torch.rand(6, 4, generator=g, dtype=torch.float64)
    p = torch.sigmoid(x)
    pt = p * t + (1 - p) * (1 - t)
    want = (0.3 * t + 0.7 * (1 - t)) * (1 - pt) ** 1.5 * F.binary_cross_entropy_with_logits(x, t, reduction="none")
    torch.testing.assert_close(C.sigmoid_focal_loss(x, t, gamma=1.5, alpha=0.3, reduction="none"), want)


# --------------------------------------------------------------------------- PolyLoss


def test_poly1_eps0_is_cross_entropy():
    z, y = logits()
    torch.testing.assert_close(C.poly1_loss(z, y, epsilon=0.0, reduction="none"), F.cross_entropy(z, y, reduction="none"))


@settings(max_examples=25, deadline=None)
@given(seeds, st.integers(1, 6))
def test_poly_minus_first_terms_is_ce_tail(seed, n):
    # ε_j = -1/j for j <= N removes the first N terms of the CE series Σ_j (1-p)^j / j.
    z, y = logits(scale=1.0, seed=seed)
    pt = F.softmax(z, -1).gather(1, y[:, None]).squeeze(1)
    got = C.poly_loss(z, y, epsilons=[-1.0 / j for j in range(1, n + 1)], reduction="none")
    ce = F.cross_entropy(z, y, reduction="none")
    torch.testing.assert_close(got, ce - sum((1 - pt) ** j / j for j in range(1, n + 1)))
    keep = pt >= 0.05
    tail = sum((1 - pt) ** j / j for j in range(n + 1, 600))
    torch.testing.assert_close(got[keep], tail[keep], rtol=1e-6, atol=1e-6)


def test_poly1_soft_targets_match_paper_formula():
    z, y = logits()
    q = 0.9 * F.one_hot(y, 5).double() + 0.1 / 5
    pt = (q * F.softmax(z, -1)).sum(1)
    want = -(q * F.log_softmax(z, -1)).sum(1) + 2.0 * (1 - pt)
    torch.testing.assert_close(C.poly1_loss(z, q, epsilon=2.0, reduction="none"), want)


def test_poly1_focal_reduces_to_focal_and_poly1():
    z, y = logits()
    torch.testing.assert_close(C.poly1_focal_loss(z, y, epsilon=0.0, gamma=2.0), C.focal_loss(z, y, gamma=2.0))
    torch.testing.assert_close(C.poly1_focal_loss(z, y, epsilon=1.5, gamma=0.0), C.poly1_loss(z, y, epsilon=1.5))


# --------------------------------------------------------------------------- squentropy and square loss


def test_squentropy_is_ce_when_off_target_logits_are_zero():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (8,), generator=g)
    z = F.one_hot(y, 5).double() * torch.randn(8, 1, generator=g, dtype=torch.float64) * 3
    torch.testing.assert_close(C.squentropy_loss(z, y, reduction="none"), F.cross_entropy(z, y, reduction="none"))


def test_squentropy_gradient_formula():
    z, y = logits()
    z.requires_grad_(True)
    C.squentropy_loss(z, y, reduction="sum").backward()
    want = F.softmax(z.detach(), -1) + 2 * z.detach() / 4
    off = F.one_hot(y, 5) == 0
    torch.testing.assert_close(z.grad[off], want[off])


def test_rescaled_square_loss_is_square_loss_when_k1():
    z, y = logits()
    want = ((z - 2.0 * F.one_hot(y, 5)) ** 2).mean(1)
    torch.testing.assert_close(C.rescaled_square_loss(z, y, k=1.0, M=2.0, reduction="none"), want)


# --------------------------------------------------------------------------- LDR family and hinges


@settings(max_examples=25, deadline=None)
@given(seeds, st.floats(0.1, 10.0))
def test_ldr_margin0_is_temperature_scaled_ce(seed, lam):
    z, y = logits(seed=seed)
    want = lam * (F.cross_entropy(z / lam, y, reduction="none") - math.log(5))
    torch.testing.assert_close(C.ldr_kl_loss(z, y, lam=lam, margin=0.0, reduction="none"), want)


@pytest.mark.parametrize("margin", [0.0, 1.0, 2.5])
def test_ldr_limits(margin):
    z, y = logits()
    cs = C.crammer_singer_loss(z, y, margin=margin, reduction="none")
    small = C.ldr_kl_loss(z, y, lam=1e-4, margin=margin, reduction="none")
    # λ → 0: within λ log C of max(0, max_k≠y ...) — the max includes k = y (value 0)
    assert ((small - cs).abs() <= 1e-4 * math.log(5) + 1e-12).all()
    big = C.ldr_kl_loss(z, y, lam=1e6, margin=margin, reduction="none")
    mean = (z - z.gather(1, y[:, None]) + margin * (F.one_hot(y, 5) == 0)).mean(1)
    torch.testing.assert_close(big, mean, rtol=1e-4, atol=1e-4)


def test_ldr_softplus_mean_transform():
    z, y = logits()
    sp = F.softplus(z)
    zt = sp / sp.mean(1, keepdim=True)
    torch.testing.assert_close(C.ldr_kl_loss(z, y, lam=0.5, margin=1.0, logit_transform="softplus_mean"),
                               C.ldr_kl_loss(zt, y, lam=0.5, margin=1.0))


@pytest.mark.parametrize("lam", [0.05, 1.0, 50.0])
@pytest.mark.parametrize("margin", [0.0, 2.0])
def test_ldr_softplus_mean_is_bounded_for_any_logit_scale(lam, margin):
    # normalised scores s_k > 0 with mean 1: the loss lies in (1 - C, c + C) for c >= 0,
    # while the loss of the raw logits grows with their scale
    g = torch.Generator().manual_seed(3)
    z = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (64,), generator=g)
    for scale in (1.0, 1e2, 1e4):
        got = C.ldr_kl_loss(scale * z, y, lam=lam, margin=margin, logit_transform="softplus_mean",
                            reduction="none")
        assert (got > 1 - 5).all() and (got < margin + 5).all()
    raw = C.ldr_kl_loss(1e4 * z, y, lam=lam, margin=margin, reduction="none")
    assert float(raw.max()) > 1e3


def test_ldr_softplus_mean_gradients_are_exact_and_finite_at_underflow():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (6,), generator=g)
    assert torch.autograd.gradcheck(
        lambda x: C.ldr_kl_loss(x, y, lam=0.7, margin=1.0, logit_transform="softplus_mean"), (z,))
    # a row whose softplus values all underflow (0/0 written naively) and one of huge logits
    for dtype in (torch.float32, torch.float64):
        zz = torch.tensor([[-1e4, -2e4, -1e4 + 1.0], [1e4, -1e4, 0.0]], dtype=dtype, requires_grad=True)
        out = C.ldr_kl_loss(zz, torch.tensor([0, 2]), lam=1.0, margin=1.0,
                            logit_transform="softplus_mean", reduction="sum")
        (grad,) = torch.autograd.grad(out, zz)
        assert torch.isfinite(out) and torch.isfinite(grad).all()
    # the log-space branch agrees with the direct formula where both are representable
    z64 = torch.tensor([[-100.0, -101.0, -99.0]], dtype=torch.float64)
    sp = F.softplus(z64)
    torch.testing.assert_close(C.ldr_kl_loss(z64, torch.tensor([1]), logit_transform="softplus_mean"),
                               C.ldr_kl_loss(z64.float(), torch.tensor([1]),
                                             logit_transform="softplus_mean").double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(C.ldr_kl_loss(z64, torch.tensor([1]), logit_transform="softplus_mean"),
                               C.ldr_kl_loss(sp / sp.mean(1, keepdim=True), torch.tensor([1])))


@pytest.mark.crosscheck
def test_crammer_singer_matches_sklearn_hinge():
    from sklearn.metrics import hinge_loss
    z, y = logits(n=30)
    want = hinge_loss(y.numpy(), z.numpy(), labels=list(range(5)))
    torch.testing.assert_close(C.crammer_singer_loss(z, y, margin=1.0), torch.tensor(want, dtype=torch.float64))
    # and LDR-KL at λ = 1e-4 within λ log C of it
    assert abs(float(C.ldr_kl_loss(z, y, lam=1e-4, margin=1.0)) - want) <= 1e-4 * math.log(5) + 1e-12


@pytest.mark.crosscheck
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_weston_watkins_matches_multi_margin_loss(margin):
    z, y = logits()
    want = F.multi_margin_loss(z, y, p=1, margin=margin, reduction="none")
    torch.testing.assert_close(C.weston_watkins_loss(z, y, margin=margin, reduction="none") / 5, want)


# --------------------------------------------------------------------------- logit adjustment


def test_logit_adjustment_tau0_is_ce_and_counts_equal_prior():
    z, y = logits()
    counts = torch.tensor([100.0, 50.0, 20.0, 10.0, 5.0], dtype=torch.float64)
    torch.testing.assert_close(C.logit_adjusted_cross_entropy(z, y, class_prior=counts, tau=0.0), F.cross_entropy(z, y))
    torch.testing.assert_close(C.logit_adjusted_cross_entropy(z, y, class_prior=counts),
                               C.logit_adjusted_cross_entropy(z, y, class_prior=counts / counts.sum()))


def test_logit_adjustment_population_minimiser_is_balanced_bayes():
    # Minimising E_y~p[LA-CE(z, y)] over z gives softmax(z + log π) = p, i.e. z = log p - log π + const:
    # its argmax is the balanced-error Bayes rule argmax p(y|x)/π_y.
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    prior = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    z = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([z], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = sum(p[k] * C.logit_adjusted_cross_entropy(z, torch.tensor([k]), class_prior=prior) for k in range(3))
        loss.backward()
        return loss
    opt.step(closure)
    want = p.log() - prior.log()
    torch.testing.assert_close(z.detach()[0] - z.detach()[0].mean(), want - want.mean(), rtol=1e-5, atol=1e-6)
    assert int(z.argmax()) == int((p / prior).argmax()) == 2


def test_posthoc_adjustment_shifts_by_log_prior():
    z, _ = logits()
    prior = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05], dtype=torch.float64)
    torch.testing.assert_close(C.posthoc_logit_adjust(z, prior, tau=0.5), z - 0.5 * prior.log())
    dense = torch.randn(2, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(C.posthoc_logit_adjust(dense, prior), dense - prior.log()[None, :, None])


# --------------------------------------------------------------------------- shared contract


@pytest.mark.parametrize("fn", [C.focal_loss, C.poly1_loss, C.squentropy_loss, C.ldr_kl_loss, C.weston_watkins_loss])
def test_dense_inputs_match_flattened(fn):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (2, 3), generator=g)
    dense = fn(z, y, reduction="none")
    flat = fn(z.movedim(1, -1).reshape(-1, 4), y.reshape(-1), reduction="none")
    assert dense.shape == (2, 3)
    torch.testing.assert_close(dense.reshape(-1), flat)


def test_target_shape_errors_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"class-index target must have shape \(3,\)"):
        C.focal_loss(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"input must have shape \(N, C\)"):
        C.poly1_loss(torch.zeros(4), torch.zeros(4, dtype=torch.long))


# --------------------------------------------------------------------------- linear_cross_entropy
# Equal to the naive materialised version, chunk-invariant, and O(chunk·V) memory.



def make(n=37, d=16, v=53, dtype=torch.float32, seed=0, bias=True, ignore=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
    w = (torch.randn(v, d, generator=g, dtype=torch.float64) / d**0.5).to(dtype)
    b = (torch.randn(v, generator=g, dtype=torch.float64) * 0.1).to(dtype) if bias else None
    y = torch.randint(0, v, (n,), generator=g)
    if ignore:
        y[torch.randperm(n, generator=g)[:ignore]] = -100
    return h, w, b, y


def naive(h, w, y, b=None, **kw):
    z = h @ w.T
    if b is not None:
        z = z + b
    return F.cross_entropy(z, y, **kw)


def leaves(*ts):
    return [None if t is None else t.detach().clone().requires_grad_(True) for t in ts]


def grads_of(loss_fn, h, w, b, y, upstream=None, **kw):
    h, w, b = leaves(h, w, b)
    out = loss_fn(h, w, y, b=b, **kw) if loss_fn is naive else loss_fn(h, w, y, bias=b, **kw)
    (out * upstream if upstream is not None else out).sum().backward()
    return out.detach(), h.grad, w.grad, None if b is None else b.grad


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("ignore", [0, 5], ids=["all", "ignored"])
def test_values_and_grads_match_naive_float32(reduction, smoothing, with_bias, ignore):
    h, w, b, y = make(bias=with_bias, ignore=ignore)
    upstream = torch.rand(y.shape, generator=torch.Generator().manual_seed(9)) if reduction == "none" else None
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    got = grads_of(linear_cross_entropy, h, w, b, y, upstream, chunk_size=8, **kw)
    want = grads_of(naive, h, w, b, y, upstream, **kw)
    for g, t in zip(got, want):
        if t is None:
            assert g is None
            continue
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, t, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_float64_matches_naive_tightly(reduction):
    h, w, b, y = make(dtype=torch.float64, ignore=3)
    got = grads_of(linear_cross_entropy, h, w, b, y, chunk_size=5, reduction=reduction, label_smoothing=0.1)
    want = grads_of(naive, h, w, b, y, reduction=reduction, label_smoothing=0.1)
    for g, t in zip(got, want):
        torch.testing.assert_close(g, t, rtol=1e-12, atol=1e-12)


def test_gradcheck_with_bias_and_ignored_rows():
    h, w, b, y = make(n=7, d=3, v=5, dtype=torch.float64, ignore=2)
    h, w, b = leaves(h, w, b)
    f = lambda h, w, b: linear_cross_entropy(h, w, y, bias=b, label_smoothing=0.3, reduction="none",  # noqa: E731
                                             chunk_size=3)
    assert torch.autograd.gradcheck(f, (h, w, b))


def test_leading_dimensions_are_kept():
    h, w, b, y = make(n=24)
    h3, y3 = h.reshape(2, 3, 4, -1), y.reshape(2, 3, 4)
    out = linear_cross_entropy(h3, w, y3, bias=b, reduction="none", chunk_size=7)
    assert out.shape == (2, 3, 4)
    torch.testing.assert_close(out.reshape(-1), naive(h, w, y, b, reduction="none"), rtol=1e-5, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), v=st.integers(2, 30), chunk=st.integers(1, 50), seed=st.integers(0, 2**16),
       smoothing=st.sampled_from([0.0, 0.1]), reduction=st.sampled_from(["none", "mean", "sum"]))
def test_chunk_invariance(n, v, chunk, seed, smoothing, reduction):
    h, w, b, y = make(n=n, d=6, v=v, dtype=torch.float64, seed=seed, ignore=n // 4)
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    got = grads_of(linear_cross_entropy, h, w, b, y, chunk_size=chunk, **kw)
    ref = grads_of(linear_cross_entropy, h, w, b, y, chunk_size=n, **kw)  # one block
    for g, t in zip(got, ref):
        torch.testing.assert_close(g, t, rtol=1e-12, atol=1e-12)


def test_retain_graph_backward_twice_accumulates_the_same_gradient():
    h, w, b, y = make(ignore=2)
    h, w, b = leaves(h, w, b)
    loss = linear_cross_entropy(h, w, y, bias=b, chunk_size=10, label_smoothing=0.1)
    loss.backward(retain_graph=True)
    first = [t.grad.clone() for t in (h, w, b)]
    loss.backward()
    for t, g in zip((h, w, b), first):
        torch.testing.assert_close(t.grad, 2 * g)
    # and the graph can also be used through autograd.grad with a different upstream gradient
    loss2 = linear_cross_entropy(h, w, y, bias=b, reduction="none", chunk_size=10)
    up = torch.arange(y.numel(), dtype=torch.float32)
    (gh1,) = torch.autograd.grad(loss2, h, up, retain_graph=True)
    (gh2,) = torch.autograd.grad(loss2, h, 2 * up)
    torch.testing.assert_close(gh2, 2 * gh1)


def test_only_needed_gradients_are_computed():
    h, w, b, y = make()
    w = w.clone().requires_grad_(True)
    linear_cross_entropy(h, w, y, bias=b).backward()  # hidden and bias are constants here
    assert w.grad is not None and w.grad.shape == w.shape


def test_all_ignored_mean_is_zero_with_zero_gradient():
    h, w, b, y = make(n=4)
    y = torch.full_like(y, -100)
    h, w = leaves(h, w)
    out = linear_cross_entropy(h, w, y, bias=b)
    assert float(out.detach()) == 0.0
    out.backward()
    assert float(h.grad.abs().sum()) == 0.0 and float(w.grad.abs().sum()) == 0.0


def test_empty_batch():
    _, w, b, _ = make()
    h = torch.zeros(0, w.shape[1], requires_grad=True)
    y = torch.zeros(0, dtype=torch.long)
    assert float(linear_cross_entropy(h, w, y)) == 0.0
    assert linear_cross_entropy(h, w, y, reduction="none").shape == (0,)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_computed_in_float32(dtype):
    h, w, b, y = make()
    h16, w16, b16 = h.to(dtype), w.to(dtype), b.to(dtype)
    out = linear_cross_entropy(h16, w16, y, bias=b16, chunk_size=8)
    assert out.dtype == dtype
    want = naive(h16.float(), w16.float(), y, b16.float())
    torch.testing.assert_close(out.float(), want, rtol=1e-2, atol=1e-2)
    h16, w16 = leaves(h16, w16)
    linear_cross_entropy(h16, w16, y, chunk_size=8).backward()
    assert h16.grad.dtype == dtype and w16.grad.dtype == dtype


def test_module_twin_matches_function():
    h, w, b, y = make(ignore=3)
    m = LinearCrossEntropyLoss(bias=b, label_smoothing=0.1, chunk_size=6)
    torch.testing.assert_close(m(h, w, y), linear_cross_entropy(h, w, y, bias=b, label_smoothing=0.1))
    assert "bias" in dict(m.named_buffers())


def test_errors_name_the_fix():
    h, w, b, y = make()
    with pytest.raises(ValueError, match=r"hidden must have shape \(\.\.\., D\)"):
        linear_cross_entropy(h[:, :3], w, y)
    with pytest.raises(ValueError, match="target must have the leading shape"):
        linear_cross_entropy(h, w, y[:-1])
    with pytest.raises(TypeError, match="same dtype"):
        linear_cross_entropy(h.double(), w, y)
    with pytest.raises(ValueError, match=r"bias must have shape \(V,\)"):
        linear_cross_entropy(h, w, y, bias=b[:-1])
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        linear_cross_entropy(h, w, y, chunk_size=0)
    with pytest.raises(ValueError, match="target class indices must lie in"):
        linear_cross_entropy(h, w, y + 1000)


def test_default_chunk_size():
    assert default_chunk_size(8192, 32768) == 512
    assert default_chunk_size(10, 32768) == 10
    assert default_chunk_size(5, 1 << 30) == 1


# --------------------------------------------------------------------------- memory, without timing


def test_nothing_of_size_n_by_v_is_saved_for_backward():
    n, d, v = 64, 8, 512
    h, w, b, y = make(n=n, d=d, v=v)
    h, w, b = leaves(h, w, b)
    saved: list[int] = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = linear_cross_entropy(h, w, y, bias=b, chunk_size=16)
    assert saved and max(saved) <= max(n * d, v * d) < n * v
    # the naive version does save an (N, V) tensor: the check can fail
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        naive(h, w, y, b)
    assert max(saved) >= n * v
    loss.backward()


class _LargestAllocation(TorchDispatchMode):
    """Records the largest tensor any op returns (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_largest_tensor_in_forward_and_backward_is_one_block():
    n, d, v, chunk = 96, 8, 300, 16
    h, w, b, y = make(n=n, d=d, v=v, ignore=4)
    h, w, b = leaves(h, w, b)
    with _LargestAllocation() as mode:
        linear_cross_entropy(h, w, y, bias=b, chunk_size=chunk, label_smoothing=0.1).backward()
    assert h.grad is not None and w.grad is not None
    assert mode.largest <= max(chunk * v, v * d, n * d) < n * v, mode.largest
    with _LargestAllocation() as mode:
        naive(h, w, y, b).backward()
    assert mode.largest >= n * v  # the probe sees the naive logits


# --------------------------------------------------------------------------- adversarial review: one test per defect
# Each test below failed on the version of lossbook.classification before the review.

LOGIT_LOSSES = {
    "cross_entropy": {}, "focal_loss": {"gamma": 0.5, "alpha": 0.25}, "poly1_loss": {"epsilon": 1.0},
    "poly_loss": {"epsilons": (-1.0, 0.3)}, "poly1_focal_loss": {"epsilon": 1.0, "gamma": 0.5},
    "squentropy_loss": {}, "rescaled_square_loss": {"k": 2.0, "M": 3.0}, "ldr_kl_loss": {"lam": 0.7, "margin": 1.0},
    "crammer_singer_loss": {"margin": 1.0}, "weston_watkins_loss": {"margin": 1.0},
    "logit_adjusted_cross_entropy": {"tau": 0.8},
}


def _kwargs(name, c):
    kw = dict(LOGIT_LOSSES[name])
    if name == "logit_adjusted_cross_entropy":
        kw["class_prior"] = torch.arange(1, c + 1, dtype=torch.float64)
    return kw


def test_review_validation_names_the_argument_and_the_fix():
    z, y = logits(n=6, c=4)
    # a float target of the wrong shape for an index-only loss: a ValueError naming the expected shape
    with pytest.raises(ValueError, match=r"class-index targets \(torch.int64\) of shape \(6,\)"):
        C.poly1_focal_loss(z, torch.zeros(6, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="takes class-index targets"):
        C.squentropy_loss(z, y.double())
    # a float target of the index shape for a loss that also takes probabilities: says to use .long()
    with pytest.raises(TypeError, match=r"use target.long\(\)"):
        C.cross_entropy(z, y.double())
    with pytest.raises(ValueError, match=r"input must have at least one class"):
        C.focal_loss(torch.zeros(3, 0), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="target must hold probability vectors"):
        C.focal_loss(z, torch.rand(6, 4, dtype=torch.float64) + 1)
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        C.cross_entropy(z, y, ignore_index=1.5)
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        linear_cross_entropy(torch.zeros(2, 3), torch.zeros(4, 3), [0, 1])
    with pytest.raises(TypeError, match="epsilons must be a sequence"):
        C.poly_loss(z, y, epsilons=1.0)
    with pytest.raises(ValueError, match=r"every entry of target must lie in \[0, 1\]"):
        C.sigmoid_focal_loss(z, torch.full_like(z, 2.0))


@pytest.mark.parametrize("kwargs", [{}, {"label_smoothing": 0.1}, {"label_smoothing": torch.tensor(0.1)},
                                    {"weight": torch.tensor([1.0, 2.0, 3.0])}],
                         ids=["plain", "ls", "ls-tensor", "weight"])
def test_review_fully_ignored_batch_is_zero_with_zero_gradient(kwargs):
    z = torch.randn(4, 3, requires_grad=True)
    out = C.cross_entropy(z, torch.full((4,), -100), **kwargs)
    assert float(out.detach()) == 0.0
    out.backward()
    assert float(z.grad.abs().sum()) == 0.0
    # a dense batch with every pixel ignored, and one with an empty spatial axis
    dense = C.cross_entropy(torch.randn(2, 3, 2, 2), torch.full((2, 2, 2), -100), **kwargs)
    assert float(dense) == 0.0
    assert float(C.cross_entropy(torch.randn(2, 3, 0), torch.zeros(2, 0, dtype=torch.long), **kwargs)) == 0.0
    # and a partly ignored batch still matches torch
    y = torch.tensor([0, -100, 2, 1])
    torch.testing.assert_close(C.cross_entropy(z, y, **kwargs),
                               F.cross_entropy(z, y, **{k: float(v) if k == "label_smoothing" else v
                                                        for k, v in kwargs.items()}))


def test_review_focal_alpha_contract():
    z, y = logits(n=6, c=4)
    for bad in (torch.tensor([0.5, -0.1, 0.2, 0.3], dtype=torch.float64), torch.tensor([0.5, math.nan, 0.2, 0.3]),
                torch.tensor(-0.5), -0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
            C.focal_loss(z, y, alpha=bad)
        with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
            C.poly1_focal_loss(z, y, alpha=bad)
    with pytest.raises(ValueError, match=r"one weight per class, shape \(C,\) = \(4,\), got shape \(3,\)"):
        C.focal_loss(z, y, alpha=torch.ones(3))
    # a 0-d tensor alpha is the scalar alpha
    torch.testing.assert_close(C.focal_loss(z, y, alpha=torch.tensor(0.25, dtype=torch.float64)),
                               C.focal_loss(z, y, alpha=0.25))
    for bad in (1.5, -0.1, math.nan, torch.tensor(math.nan)):
        with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
            C.sigmoid_focal_loss(z, torch.rand_like(z), alpha=bad)


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_review_sigmoid_focal_second_derivatives_are_finite_and_exact(soft):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 3, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    t = torch.rand(4, 3, generator=g, dtype=torch.float64) if soft else (torch.rand(4, 3, generator=g) > 0.5).double()
    t[0, 0], t[0, 1] = 0.0, 1.0
    for gamma in (0.0, 0.5, 2.0):
        f = lambda x: C.sigmoid_focal_loss(x, t, gamma=gamma, alpha=0.3, reduction="sum")  # noqa: E731
        h = torch.autograd.functional.hessian(f, x)
        assert torch.isfinite(h).all()
        assert torch.autograd.gradgradcheck(f, (x,))


def test_review_linear_cross_entropy_gradient_penalty_matches_naive():
    h, w, b, y = make(n=9, d=4, v=7, dtype=torch.float64, ignore=2)
    h, w, b = leaves(h, w, b)

    def penalty_grads(loss_fn):
        out = loss_fn()
        (gh,) = torch.autograd.grad(out, h, create_graph=True)
        return torch.autograd.grad(out + gh.square().sum(), (h, w, b))

    got = penalty_grads(lambda: linear_cross_entropy(h, w, y, bias=b, label_smoothing=0.2, chunk_size=4))
    want = penalty_grads(lambda: naive(h, w, y, b, label_smoothing=0.2))
    for a, r in zip(got, want):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)
    f = lambda h, w, b: linear_cross_entropy(h, w, y, bias=b, reduction="none", chunk_size=4)  # noqa: E731
    assert torch.autograd.gradgradcheck(f, (h, w, b))


@pytest.mark.parametrize("name", list(LOGIT_LOSSES))
def test_review_compiles_fullgraph_dynamic_and_with_changing_hyperparameters(name):
    fn, z, y = getattr(C, name), *logits(n=6, c=4)
    kw = _kwargs(name, 4)
    for dynamic in (True, False):
        torch._dynamo.reset()
        compiled = torch.compile(fn, fullgraph=True, backend="eager", dynamic=dynamic)
        for factor in (1.0, 1.1, 1.2):
            changed = {k: v * factor if isinstance(v, float) else v for k, v in kw.items()}
            torch.testing.assert_close(compiled(z, y, **changed), fn(z, y, **changed))


def test_review_module_twins_take_tensor_hyperparameters():
    z, y = logits(n=6, c=4)
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    torch.testing.assert_close(C.FocalLoss(gamma=t(2.0))(z, y), C.FocalLoss(gamma=2.0)(z, y))
    torch.testing.assert_close(C.FocalLoss(gamma=t(0.0), alpha=t(0.3))(z, y), 0.3 * F.cross_entropy(z, y))
    torch.testing.assert_close(C.CrossEntropyLoss(label_smoothing=t(0.1))(z, y),
                               F.cross_entropy(z, y, label_smoothing=0.1))
    torch.testing.assert_close(C.SigmoidFocalLoss(gamma=t(1.5), alpha=t(0.4))(z, torch.sigmoid(z)),
                               C.sigmoid_focal_loss(z, torch.sigmoid(z), gamma=1.5, alpha=0.4))
    torch.testing.assert_close(C.PolyLoss(epsilons=t([1.0, -0.5]))(z, y), C.poly_loss(z, y, epsilons=(1.0, -0.5)))
    torch.testing.assert_close(C.Poly1FocalLoss(epsilon=t(1.5), gamma=t(0.5))(z, y),
                               C.poly1_focal_loss(z, y, epsilon=1.5, gamma=0.5))
    for cls, fn in ((C.LDRKLLoss, C.ldr_kl_loss), (C.CrammerSingerLoss, C.crammer_singer_loss),
                    (C.WestonWatkinsLoss, C.weston_watkins_loss)):
        torch.testing.assert_close(cls(margin=t(0.7))(z, y), fn(z, y, margin=0.7))
    prior = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    torch.testing.assert_close(C.LogitAdjustedCrossEntropyLoss(class_prior=prior, tau=t(0.8))(z, y),
                               C.logit_adjusted_cross_entropy(z, y, class_prior=prior, tau=0.8))
    h, w, b, yy = make(dtype=torch.float64, ignore=3)
    torch.testing.assert_close(LinearCrossEntropyLoss(label_smoothing=t(0.1), chunk_size=6)(h, w, yy),
                               naive(h, w, yy, label_smoothing=0.1))


def test_review_nan_hyperparameters_are_refused():
    z, y = logits(n=6, c=4)
    with pytest.raises(ValueError, match="class_prior must be positive"):
        C.logit_adjusted_cross_entropy(z, y, class_prior=torch.tensor([0.5, math.nan, 0.2, 0.1]))
    with pytest.raises(ValueError, match="class_prior must be positive"):
        C.posthoc_logit_adjust(z, torch.tensor([0.5, math.inf, 0.2, 0.1]))
    with pytest.raises(ValueError, match="alpha"):
        C.focal_loss(z, y, alpha=torch.full((4,), math.nan))
    for name, key in (("focal_loss", "gamma"), ("poly1_loss", "epsilon"), ("poly1_focal_loss", "epsilon"),
                      ("ldr_kl_loss", "lam"), ("ldr_kl_loss", "margin"), ("crammer_singer_loss", "margin"),
                      ("weston_watkins_loss", "margin"), ("logit_adjusted_cross_entropy", "tau"),
                      ("rescaled_square_loss", "k"), ("cross_entropy", "label_smoothing")):
        for bad in (math.nan, torch.tensor(math.nan)):
            with pytest.raises(ValueError, match=key):
                getattr(C, name)(z, y, **{**_kwargs(name, 4), key: bad})
    with pytest.raises(ValueError, match="weight"):
        C.cross_entropy(z, y, weight=torch.tensor([1.0, math.nan, 1.0, 1.0], dtype=torch.float64))
    h, w, b, yy = make()
    with pytest.raises(ValueError, match="bias must be finite or -inf"):
        linear_cross_entropy(h, w, yy, bias=torch.full_like(b, math.nan))


@pytest.mark.parametrize("name", list(LOGIT_LOSSES))
def test_review_meta_tensors_give_meta_output(name):
    fn = getattr(C, name)
    kw = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in _kwargs(name, 4).items()}
    z, y = torch.zeros(6, 4, 3, device="meta"), torch.zeros(6, 3, dtype=torch.long, device="meta")
    out = fn(z, y, **kw, reduction="none")
    assert out.device.type == "meta" and out.shape == (6, 3)
    assert fn(z, y, **kw).shape == ()
    h, w = torch.zeros(5, 3, device="meta"), torch.zeros(7, 3, device="meta")
    yy = torch.zeros(5, dtype=torch.long, device="meta")
    assert linear_cross_entropy(h, w, yy, reduction="none").shape == (5,)


@pytest.mark.parametrize("name", list(LOGIT_LOSSES))
def test_review_masked_logits_give_finite_values_and_gradients(name):
    fn = getattr(C, name)
    z, y = logits(n=8, c=4)
    y = y.clamp(min=1)  # class 0 is never the target
    z = z.clone()
    z[:, 0] = -math.inf
    # a second batch where every class but the target is masked (p_t = 1 exactly)
    z2 = torch.full((2, 3), -math.inf, dtype=torch.float64)
    z2[0, 1], z2[1, 2] = 0.5, -3.0
    y2 = torch.tensor([1, 2])
    for zz, yy in ((z, y), (z2, y2)):
        zz = zz.clone().requires_grad_(True)
        try:
            out = fn(zz, yy, **_kwargs(name, zz.shape[1]), reduction="sum")
        except ValueError as err:  # squares of -inf: refused by name
            assert name in {"squentropy_loss", "rescaled_square_loss"} and "-inf" in str(err)
            continue
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(zz.grad).all(), (name, out, zz.grad)
        want = F.cross_entropy(zz.detach(), yy, reduction="sum")
        assert torch.isfinite(want)
    # cross-entropy with label smoothing has every class in the target: refused by name, not inf
    with pytest.raises(ValueError, match="-inf"):
        C.cross_entropy(z, y, label_smoothing=0.1)
    # probability targets with no mass on the masked class: finite, no 0·(-inf)
    q = torch.softmax(torch.randn(8, 4, dtype=torch.float64), -1)
    q[:, 0] = 0
    q = q / q.sum(1, keepdim=True)
    for fn in (C.cross_entropy, C.focal_loss, C.poly1_loss):
        zz = z.clone().requires_grad_(True)
        out = fn(zz, q)
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(zz.grad).all(), (fn.__name__, out, zz.grad)


@pytest.mark.parametrize("c", [1, 4])
@pytest.mark.parametrize("name", list(LOGIT_LOSSES))
def test_review_zero_logits_give_finite_gradients(name, c):
    fn = getattr(C, name)
    z = torch.zeros(5, c, dtype=torch.float64, requires_grad=True)
    y = torch.arange(5) % c
    try:
        out = fn(z, y, **_kwargs(name, c), reduction="sum")
    except ValueError as err:
        assert c == 1 and "at least 2 classes" in str(err)
        return
    (g,) = torch.autograd.grad(out, z)
    assert torch.isfinite(out) and torch.isfinite(g).all() and float(g.abs().max()) < 1e3, (name, g)


@pytest.mark.parametrize("name", [n for n in LOGIT_LOSSES if n not in {"squentropy_loss", "rescaled_square_loss"}])
def test_review_extreme_logits_match_float64(name):
    # ties of 1e30 (where logsumexp rounds to the largest logit in float32) and 1e4
    fn = getattr(C, name)
    z = torch.tensor([[1e30, -1e30, 0.0], [1e30, 1e30, -1e30], [1e4, -1e4, 1e4], [-1e4, 1e4 + 1, 1e4]])
    y = torch.tensor([0, 1, 2, 2])
    kw = _kwargs(name, 3)
    got = fn(z, y, **kw, reduction="none").double()
    # the registered float64 numpy oracle, on the logits shifted by the row maximum (exact here, and
    # every one of these losses is shift-invariant), so that the 1e30 ties are resolved in float64 too
    from lossbook.registry import get
    zs = z.double() - z.double().amax(1, keepdim=True)
    want = torch.as_tensor(get(name).reference(zs, y, **kw), dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_registered_references_are_bib_keys_of_the_papers_implemented():
    import pathlib

    from lossbook.registry import get
    bib = (pathlib.Path(__file__).parents[1] / "book" / "references.bib").read_text()
    want = {
        "cross_entropy": {"szegedy2016rethinking", "muller2019when"},
        "focal_loss": {"lin2017focal"},
        "ldr_kl_loss": {"zhu2023label"},
        "crammer_singer_loss": {"crammer2001algorithmic"},
        "weston_watkins_loss": {"weston1999support"},
        "logit_adjusted_cross_entropy": {"menon2021longtail"},
        "rescaled_square_loss": {"hui2021evaluation"},
        "squentropy_loss": {"hui2023cut"},
        "linear_cross_entropy": {"wijmans2025cut"},
    }
    for name, keys in want.items():
        got = set(get(name).references)
        assert keys <= got, (name, got)
        assert all("{" + k + "," in bib for k in got), name
