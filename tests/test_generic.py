"""The generic suite: every registered loss, the same checks.

Driven by :mod:`lossbook.registry`; a loss is covered here the moment it is
registered. Chapter-specific identities live in ``tests/test_<module>.py``.
"""

from __future__ import annotations


import pytest
import torch

import math

from lossbook.check import call, cast, draw, probe_for, probe_range, with_grad
from lossbook.kinds import KINDS
from lossbook.registry import PROPERTIES, LossSpec, Sample, all_losses, all_modules
from lossbook.utils import REDUCTIONS

SPECS = all_losses()
IDS = [s.name for s in SPECS]


def by_spec(predicate=lambda s: True, tensors_only=True):
    # Model-taking losses (kind.tensors False) get their own tests at the end of this file.
    chosen = [s for s in SPECS if predicate(s) and (s.kind.tensors or not tensors_only)]
    return pytest.mark.parametrize("spec", chosen, ids=[s.name for s in chosen])


def float_kwargs(s: Sample) -> dict:
    """The sample's plain float hyperparameters (not bools, not ints)."""
    return {k: v for k, v in s.kwargs.items() if isinstance(v, float)}


def first_reduction(spec: LossSpec) -> str:
    return "sum" if "sum" in spec.reductions else spec.reductions[0]


def make(spec: LossSpec, dtype=torch.float64, device="cpu", seed=0) -> Sample:
    return draw(spec, seed=seed, dtype=dtype, device=device)


def test_registry_is_populated():
    assert len(SPECS) >= 20
    assert len(set(IDS)) == len(IDS)


@by_spec(tensors_only=False)
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


def differentiable_call(spec: LossSpec):
    """``(f, inputs)``: the loss as a function of its differentiable arguments only, at the float64 sample."""
    s = with_grad(make(spec))
    inputs = tuple(s.args[i] for i in s.grad_args)

    def f(*grad_inputs):
        args = list(s.args)
        for i, t in zip(s.grad_args, grad_inputs):
            args[i] = t
        return spec.fn(*args, **s.kwargs, reduction=first_reduction(spec))

    return f, inputs


@by_spec(lambda s: s.gradient != "none")
def test_gradcheck_float64(spec):
    f, inputs = differentiable_call(spec)
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


@by_spec(tensors_only=False)
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
@by_spec(lambda s: s.extreme is not None and s.gradient != "none")
def test_extreme_inputs_are_finite(spec, dtype):
    s = with_grad(cast(spec.extreme(torch.Generator().manual_seed(0), torch.float32, torch.device("cpu")), dtype))
    out = call(spec, s, reduction="sum" if "sum" in spec.reductions else spec.reductions[0])
    assert torch.isfinite(out).all(), f"{spec.name}: non-finite value {out}"
    out.backward()
    for i in s.grad_args:
        g = s.args[i].grad
        assert g is not None and torch.isfinite(g).all(), f"{spec.name}: non-finite gradient {g}"


@by_spec(tensors_only=False)
def test_registered_error_cases(spec):
    s = make(spec)
    for case in spec.errors:
        with pytest.raises(case.exception, match=case.match):
            call(spec, case.make(s))


@pytest.mark.parametrize("kind", [k for k in KINDS.values() if k.validate and k.sample], ids=lambda k: k.name)
def test_kind_validator_refuses_its_contract_errors(kind):
    # A kind's contract is tested on its validator, before any loss of the kind exists.
    s = kind.sample(torch.Generator().manual_seed(0), torch.float64, torch.device("cpu"))
    kind.validate(*s.args)
    for case in kind.errors:
        with pytest.raises(case.exception, match=case.match):
            kind.validate(*case.make(s).args)


@by_spec(lambda s: bool(s.kind.errors), tensors_only=False)
def test_kind_contract_errors(spec):
    s = make(spec)
    for case in spec.kind.errors:
        with pytest.raises(case.exception, match=case.match):
            call(spec, case.make(s))


@by_spec(lambda s: s.compile)
def test_compiles_fullgraph(spec):
    s = make(spec)
    compiled = torch.compile(spec.fn, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(*s.args, **s.kwargs), call(spec, s))


@by_spec(lambda s: "none" in s.reductions and s.kind.empty == "zero")
def test_empty_batch_gives_zero_loss(spec):
    s = make(spec)
    n = s.args[0].shape[0]
    empty = Sample(tuple(a[:0] if a.dim() and a.shape[0] == n else a for a in s.args), s.kwargs)
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


# --------------------------------------------------------------------------- adversarial classes
# Each class below was a defect in an earlier version of some loss; the registry runs it over every loss.


def weight_trap(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A weight shape that broadcasts with ``shape`` but grows it: (N, 1) for (N,), (2, *shape) otherwise."""
    return (shape[0], 1) if len(shape) == 1 else (2, *shape)


@by_spec(lambda s: s.weighted and "none" in s.reductions)
def test_weight_that_would_grow_the_loss_is_refused(spec):
    s = make(spec)
    shape = tuple(call(spec, s, reduction="none").shape)
    for red in spec.reductions:
        with pytest.raises(ValueError, match="weight of shape"):
            call(spec, s, reduction=red, weight=torch.rand(weight_trap(shape), dtype=torch.float64))


@by_spec(lambda s: s.weighted)
def test_nan_weight_is_refused(spec):
    s = make(spec)
    with pytest.raises(ValueError, match="weight"):
        call(spec, s, weight=torch.full((), math.nan, dtype=torch.float64))


def _hyperparameter_cases():
    for spec in SPECS:
        s = make(spec)
        for key, value in s.kwargs.items():
            if isinstance(value, float) or (isinstance(value, torch.Tensor) and value.is_floating_point()):
                yield pytest.param(spec, key, id=f"{spec.name}-{key}")


@pytest.mark.parametrize("spec,key", list(_hyperparameter_cases()))
def test_nan_hyperparameter_is_refused(spec, key):
    s = make(spec)
    value = s.kwargs[key]
    bad = math.nan if isinstance(value, float) else torch.full_like(value, math.nan)
    with pytest.raises(ValueError, match=key):
        call(spec, Sample(s.args, {**s.kwargs, key: bad}, s.grad_args))


def _masked(spec: LossSpec) -> Sample:
    """The sample with class 0 masked to -inf in every row whose target is not 0, those rows only."""
    s = make(spec)
    z, y, *rest = s.args
    keep = y != 0 if not y.is_floating_point() else y[:, 0] == 0
    z, y = z[keep].clone(), y[keep]
    z[:, 0] = -math.inf
    rest = [r[keep] if isinstance(r, torch.Tensor) and r.dim() and r.shape[0] == len(keep) else r for r in rest]
    return Sample((z, y, *rest), s.kwargs, s.grad_args)


@by_spec(lambda s: s.kind.masked_logits and s.gradient != "none")
def test_masked_logits_give_a_finite_loss_or_a_clear_refusal(spec):
    # F.cross_entropy is finite when a non-target class is masked with -inf; a loss must be too,
    # or refuse -inf with a message that says so (never a silent NaN).
    s = with_grad(_masked(spec))
    try:
        out = call(spec, s, reduction=first_reduction(spec))
    except ValueError as err:
        assert "inf" in str(err), f"{spec.name}: refusal does not mention inf: {err}"
        return
    assert torch.isfinite(out).all(), f"{spec.name}: masked logits gave {out}"
    out.backward()
    g = s.args[0].grad
    assert torch.isfinite(g).all(), f"{spec.name}: masked logits gave the gradient {g}"


@by_spec(lambda s: s.kind.masked_logits and s.gradient != "none")
def test_zero_logits_give_finite_gradients(spec):
    s = make(spec)
    z = torch.zeros_like(s.args[0]).requires_grad_(True)
    out = spec.fn(z, *s.args[1:], **s.kwargs, reduction=first_reduction(spec))
    (g,) = torch.autograd.grad(out, z)
    assert torch.isfinite(g).all() and float(g.abs().max()) < 1e3, f"{spec.name}: gradient at zero logits {g}"


def _to_meta(v):
    return v.to("meta") if isinstance(v, torch.Tensor) else v


@by_spec()
def test_meta_tensors_give_the_output_shape(spec):
    s = make(spec)
    want = call(spec, s, reduction="none" if "none" in spec.reductions else spec.reductions[0])
    meta = Sample(tuple(_to_meta(a) for a in s.args), {k: _to_meta(v) for k, v in s.kwargs.items()}, s.grad_args)
    got = call(spec, meta, reduction="none" if "none" in spec.reductions else spec.reductions[0])
    assert got.device.type == "meta" and got.shape == want.shape


@by_spec(lambda s: s.compile)
def test_compiles_fullgraph_with_dynamic_shapes(spec):
    s = make(spec)
    compiled = torch.compile(spec.fn, fullgraph=True, backend="eager", dynamic=True)
    torch.testing.assert_close(compiled(*s.args, **s.kwargs), call(spec, s))


@by_spec(lambda s: s.compile and bool(float_kwargs(make(s))))
def test_compiles_when_a_hyperparameter_changes_between_calls(spec):
    # A schedule (gamma, temperature, ...) changes a float between steps: no recompile may break the graph.
    torch._dynamo.reset()
    s = make(spec)
    compiled = torch.compile(spec.fn, fullgraph=True, backend="eager")
    for factor in (1.0, 1.1, 1.2):
        kwargs = {**s.kwargs, **{k: v * factor if v != 0 else v for k, v in float_kwargs(s).items()}}
        changed = Sample(s.args, kwargs, s.grad_args)
        torch.testing.assert_close(compiled(*s.args, **kwargs), call(spec, changed))


@by_spec(lambda s: s.module is not None and bool(float_kwargs(make(s))))
def test_module_twin_accepts_tensor_hyperparameters(spec):
    s = make(spec)
    tensors = {k: torch.tensor(v, dtype=torch.float64) for k, v in float_kwargs(s).items()}
    module = spec.module(**{**s.kwargs, **tensors})
    assert set(tensors) <= {name for name, _ in module.named_buffers()}
    torch.testing.assert_close(module(*s.args), call(spec, s))


def test_module_twin_keeps_a_parameter_learnable():
    from lossbook.classification import FocalLoss
    gamma = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
    module = FocalLoss(gamma=gamma)
    assert list(module.parameters()) == [gamma]
    z = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    module(z, torch.tensor([0, 1, 2, 0, 1])).backward()
    assert gamma.grad is not None and torch.isfinite(gamma.grad) and float(gamma.grad) != 0.0


@by_spec(lambda s: s.extreme is not None and s.reference is not None)
def test_extreme_inputs_match_the_float64_reference(spec):
    s32 = spec.extreme(torch.Generator().manual_seed(0), torch.float32, torch.device("cpu"))
    got = call(spec, s32, reduction=spec.reference_reduction).double()
    s64 = cast(s32, torch.float64)
    want = torch.as_tensor(spec.reference(*s64.args, **s64.kwargs), dtype=torch.float64).reshape(got.shape)
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite], want[finite], rtol=1e-4, atol=1e-4 * (1 + float(want[finite].abs().max(
    ) if finite.any() else 0.0)))


@by_spec(lambda s: s.second_order)
def test_gradgradcheck_where_second_order_is_claimed(spec):
    f, inputs = differentiable_call(spec)
    assert torch.autograd.gradgradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@by_spec(lambda s: s.gradient == "none")
def test_metrics_pass_no_gradient(spec):
    # A metric (gradient contract "none") is piecewise constant: no gradient, or a zero one.
    s = with_grad(make(spec))
    out = call(spec, s, reduction=first_reduction(spec))
    if out.requires_grad:
        grads = torch.autograd.grad(out, [s.args[i] for i in s.grad_args], allow_unused=True)
        assert all(g is None or float(g.abs().max()) == 0.0 for g in grads)


# --------------------------------------------------------------------------- losses that take a model

MODEL_SPECS = [s for s in SPECS if not s.kind.tensors]


@pytest.mark.parametrize("spec", MODEL_SPECS, ids=[s.name for s in MODEL_SPECS])
def test_model_loss_matches_reference_and_trains_every_parameter(spec):
    s = make(spec)
    model = s.args[0]
    got = call(spec, s)
    want = torch.as_tensor(spec.reference(*s.args, **s.kwargs), dtype=torch.float64)
    torch.testing.assert_close(got.detach(), want.reshape(got.shape), rtol=spec.rtol, atol=spec.atol)
    grads = torch.autograd.grad(got, list(model.parameters()), allow_unused=True)
    for (name, _), g in zip(model.named_parameters(), grads):
        assert g is not None and torch.isfinite(g).all(), f"{spec.name}: no finite gradient for {name}"
    assert any(float(g.abs().sum()) > 0 for g in grads)


# --------------------------------------------------------------------------- stateful and learnable modules
# The ModuleInfo pattern: constructor inputs apart from forward inputs, state and parameters tested like values.

MODULE_SPECS = all_modules()


def by_module(predicate=lambda m: True):
    chosen = [m for m in MODULE_SPECS if predicate(m)]
    return pytest.mark.parametrize("mspec", chosen, ids=[m.name for m in chosen])


def make_module(mspec, dtype=torch.float64, seed=0):
    case = mspec.sample(torch.Generator().manual_seed(seed), dtype, torch.device("cpu"))
    return mspec.cls(**case.init), case


def state_of(module, mspec):
    return {k: getattr(module, k).detach().clone() for k in mspec.state}


def test_modules_are_registered():
    names = {m.name for m in MODULE_SPECS}
    assert {"ALDRKLLoss", "EnsLoss", "LearnedCanonicalLink"} <= names, names


@by_module()
def test_module_record_is_complete(mspec):
    assert mspec.cls.__doc__ and "Example" in mspec.cls.__doc__
    assert mspec.reference is not None
    for name in mspec.state:
        module, _ = make_module(mspec)
        assert name in dict(module.named_buffers()), f"{mspec.name}: state {name!r} is not a buffer"


@by_module()
def test_module_matches_reference(mspec):
    module, case = make_module(mspec)
    want = torch.as_tensor(mspec.reference(module, case.forward), dtype=torch.float64)
    got = module(*case.forward.args, **case.forward.kwargs)
    torch.testing.assert_close(got.detach().double(), want.reshape(got.shape), rtol=mspec.rtol, atol=mspec.atol)


@by_module()
def test_module_state_dict_round_trip(mspec):
    first, case = make_module(mspec)
    first(*case.forward.args, **case.forward.kwargs)
    second, _ = make_module(mspec)
    second.load_state_dict(first.state_dict())
    for step in case.steps or (case.forward,):
        a = first(*step.args, **step.kwargs)
        b = second(*step.args, **step.kwargs)
        if not mspec.train_eval:  # a train-mode call of a randomised module draws anew
            torch.testing.assert_close(a, b)
    for name in mspec.state:
        torch.testing.assert_close(getattr(first, name), getattr(second, name))


@by_module()
def test_module_moves_with_to(mspec):
    module, case = make_module(mspec, dtype=torch.float32)
    module = module.to(torch.float64)
    for name, t in list(module.named_buffers()) + list(module.named_parameters()):
        if t.is_floating_point():
            assert t.dtype == torch.float64, f"{mspec.name}: {name} stayed {t.dtype} after .to(float64)"
    args = cast(case.forward, torch.float64)
    assert module(*args.args, **args.kwargs).dtype == torch.float64


@by_module(lambda m: m.train_eval)
def test_module_eval_mode_is_deterministic(mspec):
    module, case = make_module(mspec)
    module.eval()
    a = module(*case.forward.args, **case.forward.kwargs)
    b = module(*case.forward.args, **case.forward.kwargs)
    torch.testing.assert_close(a, b)


@by_module(lambda m: bool(m.state) and bool(m.errors))
def test_module_state_untouched_by_a_call_that_raises(mspec):
    for case_error in mspec.errors:
        module, case = make_module(mspec)
        before = state_of(module, mspec)
        with pytest.raises(case_error.exception, match=case_error.match):
            bad = case_error.make(case.forward)
            module(*bad.args, **bad.kwargs)
        for name, value in before.items():
            assert torch.equal(getattr(module, name), value), f"{mspec.name}: {case_error.description} changed {name}"


@by_module(lambda m: bool(m.state))
def test_module_state_evolves_deterministically_over_steps(mspec):
    runs = []
    for _ in range(2):
        module, case = make_module(mspec)
        initial = state_of(module, mspec)
        outs = [module(*st.args, **st.kwargs).detach() for st in (case.forward, *case.steps)]
        runs.append((outs, state_of(module, mspec)))
    assert any(not torch.equal(runs[0][1][k], initial[k]) for k in initial), f"{mspec.name}: state never changed"
    for a, b in zip(runs[0][0], runs[1][0]):
        torch.testing.assert_close(a, b)


@by_module(lambda m: m.learnable)
def test_module_gradients_reach_every_parameter(mspec):
    module, case = make_module(mspec)
    out = module(*case.forward.args, **case.forward.kwargs)
    params = list(module.parameters())
    assert params, f"{mspec.name}: learnable but has no parameters"
    grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
    for (name, _), g in zip(module.named_parameters(), grads):
        assert g is not None and torch.isfinite(g).all(), f"{mspec.name}: no finite gradient for {name}"


# --------------------------------------------------------------------------- cross-checks against equivalents
# The same `equivalent` the benchmarks time: a torch built-in or a peer library computing the same loss.


@by_spec(lambda s: s.equivalent is not None)
def test_matches_its_equivalent(spec):
    eq = spec.equivalent
    if eq.requires:
        pytest.importorskip(eq.requires, reason=f"{eq.requires} (the peer library {eq.label} comes from) "
                                                "cannot be installed here")
    checked = 0
    for seed in range(3):
        s = make(spec, seed=seed)
        for red in ("none", "mean"):
            want = eq.fn(s, red)
            if want is None or red not in spec.reductions:
                continue
            got = call(spec, s, reduction=red)
            torch.testing.assert_close(got, want.to(got.dtype).reshape(got.shape), rtol=1e-6, atol=1e-8)
            checked += 1
    assert checked, f"{spec.name}: the equivalent {eq.label} gave no comparable result"
