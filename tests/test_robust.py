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


# --------------------------------------------------------------------------- defects of an adversarial review
# Each test below failed on the previous version of lossbook.robust.

import lossbook.validation as _V  # noqa: E402
from lossbook.registry import all_losses, all_modules, get, get_module  # noqa: E402

ROBUST_LOGITS = [s for s in all_losses("robust") if s.input_kind == "logits"]


def _draw(spec, dtype=torch.float64):
    return spec.sample(torch.Generator().manual_seed(0), dtype, torch.device("cpu"))


def test_apl_validates_once_and_takes_one_log_softmax(monkeypatch):
    calls = {"check": 0, "pass": 0}
    check, log_softmax, cross_entropy = _V.check_class_target, F.log_softmax, F.cross_entropy

    def counting_check(*a, **k):
        calls["check"] += 1
        return check(*a, **k)

    def counting(fn):
        def wrapped(*a, **k):
            calls["pass"] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(_V, "check_class_target", counting_check)
    monkeypatch.setattr(F, "log_softmax", counting(log_softmax))
    monkeypatch.setattr(F, "cross_entropy", counting(cross_entropy))
    z, y = logits()
    R.apl_loss(z, y, active="nce", passive="rce")
    assert calls == {"check": 1, "pass": 1}
    # the private terms compute without checks; no other family's private names are used
    assert callable(R._apl_terms) and not hasattr(R, "_flatten") and not hasattr(R, "_finish")


def test_aldr_gradient_is_finite_at_zero_logits():
    z = torch.zeros(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    (g,) = torch.autograd.grad(R.aldr_kl_loss(z, y, torch.ones(6, dtype=torch.float64), reduction="sum"), z)
    assert torch.isfinite(g).all() and float(g.abs().max()) < 1e3  # was 3.8e37
    # the scale clamp changes nothing above 1e-2
    z2, _ = logits()
    zt = z2 / (z2.abs().sum(1, keepdim=True) / 5)
    lam = torch.full((8,), 0.7, dtype=torch.float64)
    torch.testing.assert_close(R.aldr_kl_loss(z2, y.new_zeros(8), lam, lam0=0.7, alpha=1e12, margin=1.0),
                               C.ldr_kl_loss(zt, y.new_zeros(8), lam=0.7, margin=1.0))


@pytest.mark.parametrize("spec", ROBUST_LOGITS, ids=[s.name for s in ROBUST_LOGITS])
def test_masked_logits_are_finite_where_cross_entropy_is(spec):
    s = _draw(spec)
    z, y, *rest = s.args
    keep = y != 0
    z = z[keep].clone()
    z[:, 0] = -math.inf
    z.requires_grad_(True)
    rest = [r[keep] for r in rest]
    out = spec.fn(z, y[keep], *rest, **s.kwargs, reduction="sum")
    assert torch.isfinite(torch.nn.functional.cross_entropy(z, y[keep]))
    assert torch.isfinite(out), f"{spec.name}: {out}"
    (g,) = torch.autograd.grad(out, z)
    assert torch.isfinite(g).all(), f"{spec.name}: gradient {g}"


def test_masked_classes_leave_the_normalisers():
    z, y = logits()
    y = y.clamp(min=1)
    masked = z.clone()
    masked[:, 0] = -math.inf
    torch.testing.assert_close(R.normalized_ce_loss(masked, y), R.normalized_ce_loss(z[:, 1:], y - 1))
    torch.testing.assert_close(R.normalized_focal_loss(masked, y), R.normalized_focal_loss(z[:, 1:], y - 1))
    # only the target left: 0, like cross-entropy
    only = torch.full((1, 3), -math.inf, dtype=torch.float64)
    only[0, 1] = 2.0
    assert float(R.normalized_ce_loss(only, torch.tensor([1]))) == 0.0
    assert float(R.normalized_focal_loss(only, torch.tensor([1]))) == 0.0
    mod = R.ALDRKLLoss(num_samples=8, num_classes=5).double()
    out = mod(masked, y, torch.arange(8))
    assert torch.isfinite(out) and torch.isfinite(mod.lambdas).all()


@pytest.mark.parametrize("fn,kwargs", [
    (R.aldr_kl_loss, {"margin": math.nan}), (R.aldr_kl_loss, {"margin": math.inf}),
    (R.aldr_kl_loss, {"alpha": math.inf}), (R.aldr_kl_loss, {"lam0": math.inf}),
    (R.aldr_kl_loss, {"margin": torch.tensor(math.nan)}),
    (R.gce_loss, {"q": math.nan}), (R.gce_loss, {"q": 0.0}), (R.gce_loss, {"truncation": math.nan}),
    (R.rce_loss, {"log_zero": -math.inf}), (R.rce_loss, {"log_zero": math.nan}),
    (R.sce_loss, {"alpha": math.inf}), (R.sce_loss, {"beta": -1.0}),
    (R.normalized_focal_loss, {"gamma": math.inf}), (R.apl_loss, {"gamma": -1.0}),
    (R.apl_loss, {"alpha": math.nan}), (R.sovr_loss, {"frac": math.nan}),
    (R.sovr_loss, {"margin_threshold": math.nan}),
], ids=lambda v: getattr(v, "__name__", None) or ",".join(f"{k}={w}" for k, w in v.items()))
def test_hyperparameters_out_of_their_domain_are_refused(fn, kwargs):
    z, y = logits()
    args = (z, y, torch.ones(8, dtype=torch.float64)) if fn is R.aldr_kl_loss else (z, y)
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        fn(*args, **kwargs)


def test_aldr_lambdas_must_be_finite():
    z, y = logits()
    with pytest.raises(ValueError, match="lam must be a finite number > 0"):
        R.aldr_kl_loss(z, y, torch.full((8,), math.inf, dtype=torch.float64))
    with pytest.raises(ValueError, match="lam_old"):
        R.aldr_lambda_update(z, torch.full((8,), math.nan, dtype=torch.float64))


@pytest.mark.parametrize("fn", [R.normalized_ce_loss, R.normalized_focal_loss, R.apl_loss])
def test_normalised_losses_need_two_classes(fn):
    z = torch.randn(4, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=rf"{fn.__name__} needs at least 2 classes, got C = 1"):
        fn(z, torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("bad,match", [
    ("label", r"target class indices"), ("negative index", r"index values must lie in \[0, 15\]"),
    ("index past the end", r"index values must lie in \[0, 15\]"), ("float index", r"index must have dtype"),
    ("short index", r"index must have shape"), ("classes", r"num_classes = 5"),
])
def test_aldr_module_validates_before_touching_its_state(bad, match):
    z, y = logits()
    index = torch.arange(8)
    mod = R.ALDRKLLoss(num_samples=16, num_classes=5).double()
    mod(z * 0.5, y, index)
    before = mod.lambdas.clone()
    if bad == "label":
        y = torch.full_like(y, 7)
    elif bad == "negative index":
        index = torch.tensor([0, 1, 2, 3, 4, 5, 6, -1])
    elif bad == "index past the end":
        index = index + 10
    elif bad == "float index":
        index = index.double()
    elif bad == "short index":
        index = index[:-1]
    else:
        z = z[:, :4]
        y = y.clamp(max=3)
    with pytest.raises((ValueError, TypeError), match=match):
        mod(z, y, index)
    assert torch.equal(mod.lambdas, before)


@pytest.mark.parametrize("fn,key", [(R.rce_loss, "log_zero"), (R.sce_loss, "log_zero"), (R.apl_loss, "log_zero"),
                                    (R.gce_loss, "q"), (R.sovr_loss, "frac"), (R.aldr_kl_loss, "margin")])
def test_compiles_fullgraph_dynamic_with_a_changing_hyperparameter(fn, key):
    torch._dynamo.reset()
    z, y = logits()
    extra = (torch.ones(8, dtype=torch.float64),) if fn is R.aldr_kl_loss else ()
    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="eager")
    base = {"log_zero": -4.0, "q": 0.5, "frac": 0.25, "margin": 0.5}[key]
    for factor in (1.0, 1.1, 1.2):
        kw = {key: base * factor}
        torch.testing.assert_close(compiled(z, y, *extra, **kw), fn(z, y, *extra, **kw))


@pytest.mark.parametrize("cls,kwargs", [
    (R.GCELoss, {"q": 0.7, "truncation": 0.2}), (R.SOVRLoss, {"frac": 0.5}), (R.SOVRLoss, {"margin_threshold": 0.3}),
    (R.RCELoss, {"log_zero": -4.0}), (R.SCELoss, {"alpha": 0.3, "beta": 0.5}), (R.APLLoss, {"gamma": 0.4}),
    (R.NormalizedFocalLoss, {"gamma": 0.8}),
], ids=lambda v: getattr(v, "__name__", None) or ",".join(v))
def test_module_twins_take_tensor_hyperparameters(cls, kwargs):
    z, y = logits()
    tensors = {k: torch.tensor(v, dtype=torch.float64) for k, v in kwargs.items()}
    torch.testing.assert_close(cls(**tensors)(z, y), cls(**kwargs)(z, y))
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        cls(**{**tensors, next(iter(kwargs)): torch.tensor(math.nan)})(z, y)


@pytest.mark.parametrize("spec", ROBUST_LOGITS, ids=[s.name for s in ROBUST_LOGITS])
def test_meta_tensors_give_meta_outputs(spec):
    s = _draw(spec)
    meta = [a.to("meta") for a in s.args]
    kwargs = {k: (torch.tensor(v).to("meta") if isinstance(v, float) else v) for k, v in s.kwargs.items()}
    out = spec.fn(*meta, **kwargs, reduction="none")
    assert out.is_meta and out.shape == (s.args[0].shape[0],)
    mod = R.ALDRKLLoss(num_samples=10, num_classes=4).to("meta")
    out = mod(meta[0], meta[1], torch.arange(6, device="meta"))
    assert out.is_meta and out.shape == ()


def test_sovr_breaks_ties_deterministically_towards_the_earlier_sample():
    z = torch.tensor([[1e4, 1e4, -1e4], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1, 2, 0])  # margins 0, 0, 3: one of the two ties is chosen, the first
    out = R.sovr_loss(z, y, frac=0.34, reduction="none")
    ovr, ce = R.ovr_loss(z, y, reduction="none"), F.cross_entropy(z, y, reduction="none")
    torch.testing.assert_close(out, torch.stack([ovr[0], ce[1], ce[2]]))


def test_stateful_and_model_losses_are_registered():
    mspec = get_module("ALDRKLLoss")
    assert mspec in all_modules("robust") and mspec.state == ("lambdas",)
    case = mspec.sample(torch.Generator().manual_seed(0), torch.float64, torch.device("cpu"))
    indices = [set(st.args[2].tolist()) for st in (case.forward, *case.steps)]
    assert indices[0] & indices[1] and indices[1] & indices[2]
    for name in ("trades_loss", "smooth_adv_comp_sum_loss"):
        spec = get(name)
        assert spec.input_kind == "model" and not spec.kind.tensors
        s = _draw(spec)
        assert isinstance(s.args[0], torch.nn.Module) and s.grad_args == ()
        # the attack is seeded through the sample's generator: the float64 reference replays it
        got = spec.fn(*s.args, **s.kwargs)
        torch.testing.assert_close(got.detach(), spec.reference(*s.args, **s.kwargs), rtol=1e-9, atol=1e-12)
    ovr = get("ovr_loss")
    assert ovr.equivalent is not None and ovr.equivalent.category == "builtin"
    s = _draw(ovr)
    for red in ("none", "mean"):
        torch.testing.assert_close(ovr.equivalent.fn(s, red), R.ovr_loss(*s.args, reduction=red))
    import pathlib
    bib = (pathlib.Path(__file__).parents[1] / "book" / "references.bib").read_text()
    for spec in [*all_losses("robust"), mspec]:
        assert spec.references, f"{spec.name}: no bibliography keys"
        for key in spec.references:
            assert "{" + key + "," in bib, key


def test_model_losses_validate_and_reduce():
    model = _toy_model()
    x = torch.rand(5, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    for fn in (R.trades_loss, R.smooth_adv_comp_sum_loss):
        per = fn(model, x, y, steps=2, generator=g(), reduction="none")
        assert per.shape == (5,)
        torch.testing.assert_close(fn(model, x, y, steps=2, generator=g()), per.mean())
        assert float(fn(model, x[:0], y[:0], steps=2).detach()) == 0.0
        with pytest.raises(TypeError, match="y must hold class indices"):
            fn(model, x, y.double())
        with pytest.raises(ValueError, match=r"target class indices must lie in \[0, 2\]"):
            fn(model, x, y + 3)
        with pytest.raises(ValueError, match="clamp"):
            fn(model, x, y, clamp=(1.0, 0.0))
        with pytest.raises(ValueError, match="eps"):
            fn(model, x, y, eps=math.nan)
    with pytest.raises(ValueError, match=r"target class indices must lie in \[0, 2\]"):
        R.pgd_attack(model, x, y - 1, steps=1)


# --------------------------------------------------------------------------- the chapter's worked example


@given(st.integers(0, 2**31 - 1))
@settings(max_examples=25, deadline=None)
def test_nce_charges_a_wrong_label_what_ce_charges(seed):
    """NCE(z, k) / NCE(z, y) = CE(z, k) / CE(z, y): the normaliser does not depend on the label."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(16, 7, generator=g, dtype=torch.float64) * 3
    y, k = torch.randint(0, 7, (2, 16), generator=g)
    nce = lambda t: R.normalized_ce_loss(z, t, reduction="none")  # noqa: E731
    ce = lambda t: F.cross_entropy(z, t, reduction="none")  # noqa: E731
    torch.testing.assert_close(nce(k) / nce(y), ce(k) / ce(y))


def test_noisy_risk_is_affine_in_the_clean_risk_only_for_a_symmetric_loss():
    """Exact noisy risk under symmetric noise: MAE keeps the order of two predictors, CE does not."""
    C, rho = 10, 0.4
    M = R.transition_matrix(C, rho).double()
    y = torch.arange(C).repeat(3)

    def risks(fn, scale):
        z = scale * F.one_hot(y, C).double()
        per_label = torch.stack([fn(z, torch.full_like(y, k), reduction="none") for k in range(C)], 1)
        clean = per_label.gather(1, y[:, None]).mean()
        noisy = (M[y] * per_label).sum(1).mean()
        K = per_label.sum(1).mean()
        torch.testing.assert_close(noisy, rho * K / (C - 1) + (1 - rho * C / (C - 1)) * clean)
        return float(clean), float(noisy)

    (mc5, mn5), (mc1, mn1) = risks(R.mae_prob_loss, 5.0), risks(R.mae_prob_loss, 1.0)
    assert mc5 < mc1 and mn5 < mn1
    (cc5, cn5), (cc1, cn1) = risks(F.cross_entropy, 5.0), risks(F.cross_entropy, 1.0)
    assert cc5 < cc1 and cn5 > cn1


def test_smooth_adv_comp_sum_on_the_identity_model_has_a_closed_form():
    """With f(x) = x and C = 3, PGD on the centred change reaches a box corner of norm eps*sqrt(8/3)."""
    z = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([0])
    eps = 0.5
    loss = R.smooth_adv_comp_sum_loss(torch.nn.Identity(), z, y, tau=1.0, nu=1.0, eps=eps, step_size=0.25,
                                      steps=10, clamp=None, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss, F.cross_entropy(z, y) + eps * math.sqrt(8 / 3))
