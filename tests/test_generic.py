"""The generic suite: every registered loss, the same checks.

Driven by :mod:`lossbook.registry`; a loss is covered here the moment it is
registered. Chapter-specific identities live in ``tests/test_<module>.py``.
"""

from __future__ import annotations


import pytest
import torch

from lossbook.check import call, cast, draw, probe_for, probe_range, with_grad
from lossbook.registry import PROPERTIES, LossSpec, Sample, all_losses
from lossbook.utils import REDUCTIONS

SPECS = all_losses()
IDS = [s.name for s in SPECS]


def by_spec(predicate=lambda s: True):
    chosen = [s for s in SPECS if predicate(s)]
    return pytest.mark.parametrize("spec", chosen, ids=[s.name for s in chosen])


def make(spec: LossSpec, dtype=torch.float64, device="cpu", seed=0) -> Sample:
    return draw(spec, seed=seed, dtype=dtype, device=device)


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


@by_spec(lambda s: s.input_kind in PAIR_KINDS)
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


@by_spec(lambda s: "none" in s.reductions and s.input_kind in PAIR_KINDS | {"quantiles"})
def test_empty_batch_gives_zero_loss(spec):
    s = make(spec)
    empty = Sample(tuple(a[:0] for a in s.args), s.kwargs)
    for red in ("mean", "sum"):
        out = call(spec, empty, reduction=red)
        assert out.shape == () and float(out) == 0.0


@by_spec(lambda s: s.input_kind == "series")
def test_series_metrics_reject_empty_time_axis(spec):
    s = make(spec)
    x, y, *rest = s.args
    with pytest.raises(ValueError, match="non-empty last \\(time\\) dimension"):
        spec.fn(x[..., :0], y[..., :0], *rest, **s.kwargs)


# --------------------------------------------------------------------------- claimed properties
# Each property a record claims is checked numerically. A property with no
# probe (lossbook.check.PROPERTY_PROBES, the same probes readers' exercises run) for
# the record's input kind fails, so claims cannot go untested.


def _claims():
    for spec in SPECS:
        for prop in sorted(spec.properties):
            yield pytest.param(spec, prop, id=f"{spec.name}-{prop}")


@pytest.mark.parametrize("spec,prop", list(_claims()))
def test_claimed_property_holds(spec, prop):
    probe = probe_for(prop, spec.input_kind)
    assert probe is not None, f"no probe for property {prop!r} on inputs {spec.input_kind!r}: add one to lossbook.check"
    probe(spec)


@by_spec()
def test_output_range_holds(spec):
    probe_range(spec)


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
