"""The generic suite: every registered loss, the same checks.

Driven by :mod:`lossbook.registry`; a loss is covered here the moment it is
registered. Chapter-specific identities live in ``tests/test_<module>.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

from lossbook.registry import PROPERTIES, LossSpec, Sample, all_losses
from lossbook.utils import REDUCTIONS

SPECS = all_losses()
IDS = [s.name for s in SPECS]


def by_spec(predicate=lambda s: True):
    chosen = [s for s in SPECS if predicate(s)]
    return pytest.mark.parametrize("spec", chosen, ids=[s.name for s in chosen])


def make(spec: LossSpec, dtype=torch.float64, device="cpu", seed=0) -> Sample:
    gen = torch.Generator().manual_seed(seed)
    return spec.sample(gen, dtype, torch.device(device))


def call(spec: LossSpec, sample: Sample, **kw) -> torch.Tensor:
    return spec.fn(*sample.args, **{**sample.kwargs, **kw})


def with_grad(sample: Sample) -> Sample:
    args = tuple(a.detach().clone().requires_grad_(i in sample.grad_args) for i, a in enumerate(sample.args))
    return Sample(args, sample.kwargs, sample.grad_args)


def cast(sample: Sample, dtype) -> Sample:
    args = tuple(a.to(dtype) if a.is_floating_point() else a for a in sample.args)
    kwargs = {k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
              for k, v in sample.kwargs.items()}
    return Sample(args, kwargs, sample.grad_args)


def test_registry_is_populated():
    assert len(SPECS) >= 20
    assert len(set(IDS)) == len(IDS)


@by_spec()
def test_spec_is_complete(spec):
    doc = spec.fn.__doc__
    assert "Example" in doc, f"{spec.name}: docstring needs an example"
    assert spec.reference is not None, f"{spec.name}: a registered loss needs a reference"
    assert spec.properties <= PROPERTIES.keys()
    if spec.module is not None:
        assert spec.module.__name__.endswith("Loss")


@by_spec()
def test_value_matches_reference(spec):
    s = make(spec)
    got = call(spec, s, reduction=spec.reference_reduction)
    want = torch.as_tensor(spec.reference(*s.args, **s.kwargs), dtype=torch.float64)
    torch.testing.assert_close(got, want.reshape(got.shape), rtol=spec.rtol, atol=spec.atol)


@by_spec(lambda s: s.weighted)
def test_weighted_path_matches_reference(spec):
    # Losses that delegate to a torch built-in when unweighted compute their own
    # formula when weighted: unit weights must give the reference values too.
    s = make(spec)
    got = call(spec, s, reduction="none", weight=torch.ones((), dtype=torch.float64))
    want = torch.as_tensor(spec.reference(*s.args, **s.kwargs), dtype=torch.float64)
    torch.testing.assert_close(got, want.reshape(got.shape), rtol=spec.rtol, atol=spec.atol)


@by_spec()
def test_gradcheck_float64(spec):
    s = with_grad(make(spec))
    inputs = tuple(s.args[i] for i in s.grad_args)

    def f(*grad_inputs):
        args = list(s.args)
        for i, t in zip(s.grad_args, grad_inputs):
            args[i] = t
        return spec.fn(*args, **s.kwargs, reduction="sum" if "sum" in spec.reductions else spec.reductions[0])

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@by_spec(lambda s: "none" in s.reductions)
def test_reductions_agree(spec):
    s = make(spec)
    none = call(spec, s, reduction="none")
    torch.testing.assert_close(call(spec, s, reduction="sum"), none.sum())
    torch.testing.assert_close(call(spec, s, reduction="mean"), none.mean())


@by_spec(lambda s: s.weighted)
def test_weighted_mean_is_sum_w_loss_over_sum_w(spec):
    s = make(spec)
    none = call(spec, s, reduction="none")
    w = torch.rand(none.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(call(spec, s, reduction="mean", weight=w), (w * none).sum() / w.sum())
    torch.testing.assert_close(call(spec, s, reduction="sum", weight=w), (w * none).sum())
    torch.testing.assert_close(call(spec, s, reduction="none", weight=w), w * none)


@by_spec()
def test_invalid_reduction_names_the_choices(spec):
    s = make(spec)
    with pytest.raises(ValueError, match=r"reduction must be one of 'none', 'mean', 'sum'|reduction must be one of"):
        call(spec, s, reduction="average")
    for unsupported in set(REDUCTIONS) - set(spec.reductions):
        with pytest.raises(ValueError, match="reduction must be one of"):
            call(spec, s, reduction=unsupported)


@by_spec(lambda s: s.module is not None)
def test_module_equals_functional(spec):
    s = make(spec)
    module = spec.module(**s.kwargs)
    red = spec.reductions[0]
    torch.testing.assert_close(module(*s.args), call(spec, s))
    torch.testing.assert_close(spec.module(**s.kwargs, reduction=red)(*s.args), call(spec, s, reduction=red))
    with pytest.raises(TypeError, match="unexpected keyword"):
        spec.module(not_a_hyperparameter=1)


@by_spec()
def test_non_contiguous_inputs(spec):
    s = make(spec)

    def strided(t):
        if t.dim() < 2 or not t.is_floating_point():
            return t
        return t.t().contiguous().t()  # same values, transposed strides

    s2 = Sample(tuple(strided(a) for a in s.args), s.kwargs)
    torch.testing.assert_close(call(spec, s2), call(spec, s))


@by_spec()
def test_float32_matches_float64(spec):
    s64 = make(spec)
    got = call(spec, cast(s64, torch.float32))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), call(spec, s64), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@by_spec(lambda s: s.extreme is not None)
def test_extreme_inputs_are_finite(spec, dtype):
    s = with_grad(cast(spec.extreme(torch.Generator().manual_seed(0), torch.float32, torch.device("cpu")), dtype))
    out = call(spec, s, reduction="sum" if "sum" in spec.reductions else spec.reductions[0])
    assert torch.isfinite(out).all(), f"{spec.name}: non-finite value {out}"
    out.backward()
    for i in s.grad_args:
        g = s.args[i].grad
        assert g is not None and torch.isfinite(g).all(), f"{spec.name}: non-finite gradient {g}"


@by_spec()
def test_registered_error_cases(spec):
    s = make(spec)
    for case in spec.errors:
        with pytest.raises(case.exception, match=case.match):
            call(spec, case.make(s))


PAIR_KINDS = {"regression", "series", "returns", "distribution"}


@by_spec(lambda s: s.inputs in PAIR_KINDS)
def test_pair_contract_errors(spec):
    s = make(spec)
    x, y, *rest = s.args
    with pytest.raises(ValueError, match=r"input and target must have the same shape, got"):
        spec.fn(x, y[..., :-1], *rest, **s.kwargs)
    with pytest.raises(TypeError, match=r"target must be a floating-point tensor, got dtype torch.int64"):
        spec.fn(x, y.long(), *rest, **s.kwargs)
    with pytest.raises(RuntimeError, match=r"target is on device meta but input is on device cpu"):
        spec.fn(x, y.to("meta"), *rest, **s.kwargs)


@by_spec(lambda s: s.compile)
def test_compiles_fullgraph(spec):
    s = make(spec)
    compiled = torch.compile(spec.fn, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(*s.args, **s.kwargs), call(spec, s))


@by_spec(lambda s: "none" in s.reductions and s.inputs in PAIR_KINDS | {"quantiles"})
def test_empty_batch_gives_zero_loss(spec):
    s = make(spec)
    empty = Sample(tuple(a[:0] for a in s.args), s.kwargs)
    for red in ("mean", "sum"):
        out = call(spec, empty, reduction=red)
        assert out.shape == () and float(out) == 0.0


@by_spec(lambda s: s.inputs == "series")
def test_series_metrics_reject_empty_time_axis(spec):
    s = make(spec)
    x, y, *rest = s.args
    with pytest.raises(ValueError, match="non-empty last \\(time\\) dimension"):
        spec.fn(x[..., :0], y[..., :0], *rest, **s.kwargs)


# --------------------------------------------------------------------------- claimed properties
# Each property a record claims is checked numerically. A property with no
# checker for the record's input kind fails, so claims cannot go untested.


def _outputs(spec, seeds=range(5)):
    return torch.cat([call(spec, make(spec, seed=k), reduction=spec.reductions[0]).flatten() for k in seeds])


def check_nonnegative(spec):
    assert (_outputs(spec) >= 0).all()


def check_range(spec):
    lo, hi = spec.output_range
    out = _outputs(spec)
    assert (out >= lo).all() and (out <= hi).all()


def check_bounded(spec):
    assert math.isfinite(spec.output_range[1]), "a bounded loss must state its upper bound in output_range"
    check_range(spec)


def _residual_loss(spec, r):
    """Per-element loss of residuals ``r`` against a zero target."""
    s = make(spec)
    if spec.inputs == "quantiles":
        q = len(s.kwargs["quantiles"])
        return spec.fn(r[:, None].expand(-1, q), torch.zeros_like(r), **s.kwargs, reduction="none")
    return spec.fn(r, torch.zeros_like(r), **s.kwargs, reduction="none")


def check_convex_regression(spec):
    s = make(spec)
    gen = torch.Generator().manual_seed(3)
    x0, y = s.args[0], s.args[1]
    for _ in range(20):
        a = x0 + torch.randn(x0.shape, generator=gen, dtype=x0.dtype) * 3
        b = x0 + torch.randn(x0.shape, generator=gen, dtype=x0.dtype) * 3
        lam = float(torch.rand((), generator=gen))
        f = lambda x: spec.fn(x, y, *s.args[2:], **s.kwargs, reduction="none")  # noqa: E731
        assert (f(lam * a + (1 - lam) * b) <= lam * f(a) + (1 - lam) * f(b) + 1e-10).all()


def check_symmetric_regression(spec):
    r = torch.linspace(-5, 5, 41, dtype=torch.float64)
    torch.testing.assert_close(_residual_loss(spec, r), _residual_loss(spec, -r))


def check_robust_regression(spec):
    # Bounded influence: the derivative stops growing; a 1000x larger residual
    # gets (almost) no larger gradient than any residual in [-1e3, 1e3].
    def grad_at(r):
        r = r.clone().requires_grad_(True)
        _residual_loss(spec, r).sum().backward()
        return r.grad.abs()
    near = grad_at(torch.linspace(-1e3, 1e3, 2001, dtype=torch.float64)).max()
    far = grad_at(torch.tensor([1e6, -1e6], dtype=torch.float64)).max()
    assert far <= near * 1.01


def check_scale_free(spec):
    s = make(spec)
    scaled = Sample(tuple(3.7 * a for a in s.args), s.kwargs)
    torch.testing.assert_close(call(spec, scaled), call(spec, s))


def check_symmetric_logits(spec):
    # The symmetry condition of noise-tolerant losses: the sum over all C labels is the same constant.
    totals = []
    for seed in range(3):
        s = make(spec, seed=seed)
        z, rest = s.args[0], s.args[2:]
        labels = [torch.full(z.shape[:1], k, dtype=torch.long) for k in range(z.shape[1])]
        totals.append(sum(spec.fn(z, y, *rest, **s.kwargs, reduction="none") for y in labels))
    totals = torch.cat(totals)
    torch.testing.assert_close(totals, torch.full_like(totals, float(totals[0])))


def check_convex_in_input(spec):
    # Midpoint convexity in the first argument, the other arguments fixed.
    s = make(spec)
    gen = torch.Generator().manual_seed(3)
    x0 = s.args[0]
    red = "none" if "none" in spec.reductions else spec.reductions[0]

    def f(x):
        return spec.fn(x, *s.args[1:], **s.kwargs, reduction=red)

    def draw():
        step = torch.randn(x0.shape, generator=gen, dtype=x0.dtype) * 3
        return -step.abs() if spec.inputs == "policy-paths" else x0 + step  # log-probabilities stay <= 0

    for _ in range(20):
        a, b = draw(), draw()
        lam = float(torch.rand((), generator=gen))
        rhs = lam * f(a) + (1 - lam) * f(b)
        assert (f(lam * a + (1 - lam) * b) <= rhs + 1e-9 * (1 + rhs.abs())).all()


def check_calibrated_margins(spec):
    # Bartlett-Jordan-McAuliffe: for every eta != 1/2 the best wrong-signed score is strictly worse.
    s = make(spec)
    alpha = torch.linspace(-10, 10, 4001, dtype=torch.float64)
    phi = lambda z: spec.fn(z, **s.kwargs, reduction="none")  # noqa: E731
    for eta in (0.55, 0.75, 0.95):
        risk = eta * phi(alpha) + (1 - eta) * phi(-alpha)
        assert float(risk[alpha <= 0].min()) > float(risk.min()) + 1e-6


def _expected_loss_minimizer(spec, eta, kwargs):
    c = eta.shape[0]
    v = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    classes = torch.arange(c)
    opt = torch.optim.LBFGS([v], max_iter=300, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        rows = (torch.softmax(v, -1) if spec.inputs == "probabilities" else v).expand(c, c)
        loss = (eta * spec.fn(rows, classes, **kwargs, reduction="none")).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return v.detach()


def check_proper_probabilities(spec):
    # The expected score sum_y eta_y S(q, y) is minimised at q = eta.
    s = make(spec)
    c = s.args[0].shape[-1]
    gen = torch.Generator().manual_seed(4)
    for _ in range(5):
        eta = torch.softmax(torch.randn(c, generator=gen, dtype=torch.float64), -1)
        q = torch.softmax(_expected_loss_minimizer(spec, eta, s.kwargs), -1)
        torch.testing.assert_close(q, eta, atol=1e-4, rtol=0)


def check_calibrated_logits(spec):
    # The minimiser of the expected loss over scores predicts the most likely class.
    s = make(spec)
    c = s.args[0].shape[-1]
    gen = torch.Generator().manual_seed(5)
    for _ in range(5):
        eta = torch.softmax(2 * torch.randn(c, generator=gen, dtype=torch.float64), -1)
        top2 = eta.topk(2).values
        if float(top2[0] - top2[1]) < 0.02:
            continue
        assert int(_expected_loss_minimizer(spec, eta, s.kwargs).argmax()) == int(eta.argmax())


PROPERTY_CHECKS = {
    ("symmetric", "logits"): check_symmetric_logits,
    ("nonnegative", None): check_nonnegative,
    ("bounded", None): check_bounded,
    ("scale-free", None): check_scale_free,
    ("convex", "regression"): check_convex_regression,
    ("convex", "quantiles"): check_convex_regression,
    ("symmetric", "regression"): check_symmetric_regression,
    ("symmetric", "series"): check_symmetric_regression,
    ("robust", "regression"): check_robust_regression,
    ("robust", "quantiles"): check_robust_regression,
    ("convex", "margins"): check_convex_in_input,
    ("convex", "logits"): check_convex_in_input,
    ("convex", "policy-paths"): check_convex_in_input,
    ("classification-calibrated", "margins"): check_calibrated_margins,
    ("classification-calibrated", "logits"): check_calibrated_logits,
    ("proper", "probabilities"): check_proper_probabilities,
}


def _claims():
    for spec in SPECS:
        for prop in sorted(spec.properties):
            yield pytest.param(spec, prop, id=f"{spec.name}-{prop}")


@pytest.mark.parametrize("spec,prop", list(_claims()))
def test_claimed_property_holds(spec, prop):
    check = PROPERTY_CHECKS.get((prop, spec.inputs)) or PROPERTY_CHECKS.get((prop, None))
    assert check is not None, f"no checker for property {prop!r} on inputs {spec.inputs!r}: add one"
    check(spec)


@by_spec()
def test_output_range_holds(spec):
    check_range(spec)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA parity needs a CUDA device (none here)")
@by_spec()
def test_cuda_parity(spec):
    s64 = make(spec)
    cpu = call(spec, s64)
    # bfloat16 keeps 8 significant bits (unit roundoff 2**-9 ~ 2e-3): the inputs are rounded once and
    # the result once more (losses compute in float32 inside). On CPU bfloat16 the worst registered
    # loss is within 0.9% (relative) of float64; 5e-2 leaves room for CUDA's reduction order.
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4), (torch.bfloat16, 5e-2)):
        s = make(spec, dtype=dtype, device="cuda")
        got = call(spec, s)
        if dtype == torch.bfloat16:
            assert got.dtype == torch.bfloat16, f"{spec.name}: bfloat16 in, {got.dtype} out"
        torch.testing.assert_close(got.cpu().double(), cpu, rtol=tol, atol=tol)
