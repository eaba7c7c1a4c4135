"""Self-checking exercises: run a reader's loss through the checks lossbook's own losses pass.

The book's "implement it yourself" exercises end with one call::

    from lossbook.check import check_loss
    print(check_loss(my_huber, "huber_loss"))

:func:`check_loss` compares the reader's function with the registered loss of
that name on random and extreme inputs, for every reduction, in value and in
gradient, and then probes every property the loss's card claims (convexity,
symmetry, properness, ...). The report says which check failed and on what
input, so the reader knows what to fix.

The property probes (:data:`PROPERTY_PROBES`) are the same ones the package's
test suite runs over every registered loss (``tests/test_generic.py``): a
card's claim and a reader's exercise are checked by the same code.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import textwrap
from typing import Any, Callable, Iterable

import torch

from lossbook.kinds import KINDS
from lossbook.registry import LossSpec, Sample, get

# --------------------------------------------------------------------------- samples


def draw(spec: LossSpec, seed: int = 0, dtype: torch.dtype = torch.float64, device: str = "cpu") -> Sample:
    """The registered sample input of ``spec``, drawn with a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    return spec.sample(gen, dtype, torch.device(device))


def call(spec: LossSpec, sample: Sample, **kwargs: Any) -> torch.Tensor:
    """``spec.fn`` on ``sample``; ``kwargs`` (e.g. ``reduction``) override the sample's hyperparameters."""
    return spec.fn(*sample.args, **{**sample.kwargs, **kwargs})


def with_grad(sample: Sample) -> Sample:
    """A copy of ``sample`` whose differentiable arguments require gradients."""
    args = tuple(a.detach().clone().requires_grad_(i in sample.grad_args) for i, a in enumerate(sample.args))
    return Sample(args, sample.kwargs, sample.grad_args)


def cast(sample: Sample, dtype: torch.dtype) -> Sample:
    """``sample`` with every floating-point tensor converted to ``dtype``."""
    def conv(v: Any) -> Any:
        return v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
    return Sample(tuple(conv(a) for a in sample.args), {k: conv(v) for k, v in sample.kwargs.items()},
                  sample.grad_args)


# --------------------------------------------------------------------------- property probes
# Each probe takes a LossSpec (whose ``fn`` may be a reader's function) and raises
# PropertyViolation, with the evidence, when the claimed property does not hold.


class PropertyViolation(AssertionError):
    """A claimed property fails on a concrete input."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PropertyViolation(message)


def _outputs(spec: LossSpec, seeds: Iterable[int] = range(5)) -> torch.Tensor:
    return torch.cat([call(spec, draw(spec, seed=k), reduction=spec.reductions[0]).flatten() for k in seeds])


def probe_nonnegative(spec: LossSpec) -> None:
    out = _outputs(spec)
    _require(bool((out >= 0).all()), f"a value below zero: {float(out.min()):.4g}")


def probe_range(spec: LossSpec) -> None:
    lo, hi = spec.output_range
    out = _outputs(spec)
    _require(bool((out >= lo).all() and (out <= hi).all()),
             f"values span [{float(out.min()):.4g}, {float(out.max()):.4g}], outside the stated range [{lo}, {hi}]")


def probe_bounded(spec: LossSpec) -> None:
    _require(math.isfinite(spec.output_range[1]), "a bounded loss must state its upper bound in output_range")
    probe_range(spec)


def _residual_loss(spec: LossSpec, r: torch.Tensor) -> torch.Tensor:
    """Per-element loss of residuals ``r`` against a zero target."""
    s = draw(spec)
    if spec.input_kind == "series":  # one series of len(r) steps: series losses reduce over the last dimension
        return spec.fn(r[None], torch.zeros_like(r)[None], **s.kwargs, reduction="none")
    if spec.input_kind == "quantiles":
        q = len(s.kwargs["quantiles"])
        return spec.fn(r[:, None].expand(-1, q), torch.zeros_like(r), **s.kwargs, reduction="none")
    return spec.fn(r, torch.zeros_like(r), **s.kwargs, reduction="none")


def probe_convex_regression(spec: LossSpec) -> None:
    s = draw(spec)
    gen = torch.Generator().manual_seed(3)
    x0, y = s.args[0], s.args[1]

    def f(x: torch.Tensor) -> torch.Tensor:
        return spec.fn(x, y, *s.args[2:], **s.kwargs, reduction="none")

    for _ in range(20):
        a = x0 + torch.randn(x0.shape, generator=gen, dtype=x0.dtype) * 3
        b = x0 + torch.randn(x0.shape, generator=gen, dtype=x0.dtype) * 3
        lam = float(torch.rand((), generator=gen))
        mid, chord = f(lam * a + (1 - lam) * b), lam * f(a) + (1 - lam) * f(b)
        gap = mid - chord
        _require(bool((gap <= 1e-10).all()),
                 f"not convex: on a random segment the loss is {float(mid.flatten()[gap.argmax()]):.4g}, above "
                 f"the chord's {float(chord.flatten()[gap.argmax()]):.4g}")


def probe_even_regression(spec: LossSpec) -> None:
    r = torch.linspace(-5, 5, 41, dtype=torch.float64)
    pos, neg = _residual_loss(spec, r), _residual_loss(spec, -r)
    i = int((pos - neg).abs().flatten().argmax())
    _require(torch.allclose(pos, neg), f"not even: the loss at residual r = {float(r[i % len(r)]):.3g} "
             f"is {float(pos.flatten()[i]):.4g} but at -r it is {float(neg.flatten()[i]):.4g}")


def probe_bounded_influence_regression(spec: LossSpec) -> None:
    # Bounded influence: the derivative stops growing; a residual of 1e6 gets (almost) no
    # larger gradient than the largest one over residuals in [-1e3, 1e3].
    def grad_at(r: torch.Tensor) -> torch.Tensor:
        r = r.clone().requires_grad_(True)
        _residual_loss(spec, r).sum().backward()
        _require(r.grad is not None, "no gradient flows to the prediction")
        return r.grad.abs()

    near = grad_at(torch.linspace(-1e3, 1e3, 2001, dtype=torch.float64)).max()
    far = grad_at(torch.tensor([1e6, -1e6], dtype=torch.float64)).max()
    _require(bool(far <= near * 1.01), f"unbounded influence: |dloss/dr| is {float(far):.4g} at |r| = 1e6 "
             f"but at most {float(near):.4g} for |r| <= 1e3")


def probe_scale_free(spec: LossSpec) -> None:
    s = draw(spec)
    scaled = Sample(tuple(3.7 * a for a in s.args), s.kwargs)
    before, after = call(spec, s), call(spec, scaled)
    _require(torch.allclose(before, after), f"not scale-free: multiplying prediction and target by 3.7 "
             f"changes the loss from {float(before.flatten()[0]):.4g} to {float(after.flatten()[0]):.4g}")


def probe_label_symmetric_logits(spec: LossSpec) -> None:
    # The symmetry condition of noise-tolerant losses: the sum over all C labels is the same constant.
    totals = []
    for seed in range(3):
        s = draw(spec, seed=seed)
        z, rest = s.args[0], s.args[2:]
        labels = [torch.full(z.shape[:1], k, dtype=torch.long, device=z.device) for k in range(z.shape[1])]
        totals.append(sum(spec.fn(z, y, *rest, **s.kwargs, reduction="none") for y in labels))
    totals = torch.cat(totals)
    _require(torch.allclose(totals, torch.full_like(totals, float(totals[0]))),
             f"not label-symmetric: the sum of the loss over all labels varies between samples, from "
             f"{float(totals.min()):.4g} to {float(totals.max()):.4g}")


def probe_convex_in_input(spec: LossSpec) -> None:
    # Convexity in the first argument along random segments, the other arguments fixed.
    s = draw(spec)
    gen = torch.Generator().manual_seed(3)
    x0 = s.args[0]
    red = "none" if "none" in spec.reductions else spec.reductions[0]

    def f(x: torch.Tensor) -> torch.Tensor:
        return spec.fn(x, *s.args[1:], **s.kwargs, reduction=red)

    def point() -> torch.Tensor:
        step = torch.randn(x0.shape, generator=gen, dtype=x0.dtype) * 3
        return -step.abs() if spec.input_kind == "policy-paths" else x0 + step  # log-probabilities stay <= 0

    for _ in range(20):
        a, b = point(), point()
        lam = float(torch.rand((), generator=gen))
        mid, chord = f(lam * a + (1 - lam) * b), lam * f(a) + (1 - lam) * f(b)
        excess = mid - chord - 1e-9 * (1 + chord.abs())
        _require(bool((excess <= 0).all()),
                 f"not convex: on a random segment the loss is {float(mid.flatten()[excess.argmax()]):.4g}, "
                 f"above the chord's {float(chord.flatten()[excess.argmax()]):.4g}")


def probe_calibrated_margins(spec: LossSpec) -> None:
    # Bartlett-Jordan-McAuliffe: for every eta != 1/2 the best wrong-signed score is strictly worse.
    s = draw(spec)
    alpha = torch.linspace(-10, 10, 4001, dtype=torch.float64)
    phi = functools.partial(spec.fn, **s.kwargs, reduction="none")
    for eta in (0.55, 0.75, 0.95):
        risk = eta * phi(alpha) + (1 - eta) * phi(-alpha)
        wrong, best = float(risk[alpha <= 0].min()), float(risk.min())
        _require(wrong > best + 1e-6, f"not classification-calibrated: at eta = {eta} the best score of the "
                 f"wrong sign has conditional risk {wrong:.4g}, no worse than the best overall ({best:.4g})")


def expected_loss_minimizer(spec: LossSpec, eta: torch.Tensor, kwargs: dict[str, Any]) -> torch.Tensor:
    """The scores ``v`` (softmax-parametrised for probability inputs) minimising ``sum_y eta_y loss(v, y)``."""
    c = eta.shape[0]
    v = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    classes = torch.arange(c)
    opt = torch.optim.LBFGS([v], max_iter=300, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        rows = (torch.softmax(v, -1) if spec.input_kind == "probabilities" else v).expand(c, c)
        loss = (eta * spec.fn(rows, classes, **kwargs, reduction="none")).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return v.detach()


def probe_proper_probabilities(spec: LossSpec) -> None:
    # The expected score sum_y eta_y S(q, y) is minimised at q = eta.
    s = draw(spec)
    c = s.args[0].shape[-1]
    gen = torch.Generator().manual_seed(4)
    for _ in range(5):
        eta = torch.softmax(torch.randn(c, generator=gen, dtype=torch.float64), -1)
        q = torch.softmax(expected_loss_minimizer(spec, eta, s.kwargs), -1)
        _require(bool((q - eta).abs().max() <= 1e-4),
                 f"not proper: for the true distribution {_fmt(eta)} the expected score is minimised at "
                 f"{_fmt(q)}")


def probe_calibrated_logits(spec: LossSpec) -> None:
    # The minimiser of the expected loss over scores predicts the most likely class.
    s = draw(spec)
    c = s.args[0].shape[-1]
    gen = torch.Generator().manual_seed(5)
    for _ in range(5):
        eta = torch.softmax(2 * torch.randn(c, generator=gen, dtype=torch.float64), -1)
        top2 = eta.topk(2).values
        if float(top2[0] - top2[1]) < 0.02:
            continue
        v = expected_loss_minimizer(spec, eta, s.kwargs)
        _require(int(v.argmax()) == int(eta.argmax()),
                 f"not classification-calibrated: for class probabilities {_fmt(eta)} the expected loss is "
                 f"minimised by scores {_fmt(v)}, which predict class {int(v.argmax())}, not {int(eta.argmax())}")


def probe_argument_symmetric(spec: LossSpec) -> None:
    # Swapping prediction and target leaves every per-element loss unchanged.
    for seed in range(3):
        s = draw(spec, seed=seed)
        x, y, *rest = s.args
        red = "none" if "none" in spec.reductions else spec.reductions[0]
        a = spec.fn(x, y, *rest, **s.kwargs, reduction=red)
        b = spec.fn(y, x, *rest, **s.kwargs, reduction=red)
        i = int((a - b).abs().flatten().argmax())
        _require(torch.allclose(a, b), f"not argument-symmetric: swapping prediction and target changes the loss "
                 f"from {float(a.flatten()[i]):.4g} to {float(b.flatten()[i]):.4g}")


GENERIC_PROBES: dict[str, Callable[[LossSpec], None]] = {
    "nonnegative": probe_nonnegative,
    "bounded": probe_bounded,
    "scale-free": probe_scale_free,
    "argument-symmetric": probe_argument_symmetric,
}
"""Probes that apply to every input kind.

:meta hide-value:
"""

_KIND_PROBES: dict[str, dict[str, Callable[[LossSpec], None]]] = {
    "binary-logits": {"convex": probe_convex_in_input},
    "logits-only": {"convex": probe_convex_in_input},
    "logits": {"label-symmetric": probe_label_symmetric_logits, "convex": probe_convex_in_input,
               "classification-calibrated": probe_calibrated_logits},
    "regression": {"convex": probe_convex_regression, "even": probe_even_regression,
                   "bounded-influence": probe_bounded_influence_regression},
    "quantiles": {"convex": probe_convex_regression, "bounded-influence": probe_bounded_influence_regression},
    "series": {"even": probe_even_regression},
    "margins": {"convex": probe_convex_in_input, "classification-calibrated": probe_calibrated_margins},
    "policy-paths": {"convex": probe_convex_in_input},
    "probabilities": {"proper": probe_proper_probabilities},
}
for _kind, _probes in _KIND_PROBES.items():
    KINDS[_kind].probes.update(_probes)

PROPERTY_PROBES: dict[tuple[str, str | None], Callable[[LossSpec], None]] = {
    **{(prop, None): fn for prop, fn in GENERIC_PROBES.items()},
    **{(prop, kind): fn for kind, rec in KINDS.items() for prop, fn in rec.probes.items()},
}
"""``(property, input kind) -> probe``, a flat view of :data:`GENERIC_PROBES` and the kinds' probes;
``None`` as the kind matches every kind.

:meta hide-value:
"""


def probe_for(prop: str, input_kind: str) -> Callable[[LossSpec], None] | None:
    """The probe that checks ``prop`` on losses of ``input_kind`` (None if there is none)."""
    kind = KINDS.get(input_kind)
    return (kind.probes.get(prop) if kind else None) or GENERIC_PROBES.get(prop)


# --------------------------------------------------------------------------- the reader's check


@dataclasses.dataclass(frozen=True)
class Finding:
    """The outcome of one check: its name, whether it passed, and what was seen."""

    check: str
    passed: bool
    detail: str


@dataclasses.dataclass
class CheckReport:
    """What :func:`check_loss` found; printed, it lists every check as ok or FAIL, a failure with its evidence."""

    subject: str
    reference: str
    findings: list[Finding]

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.passed]

    def __str__(self) -> str:
        lines = [f"check_loss: {self.subject} against lossbook's {self.reference}"]
        for f in self.findings:  # wrapped to fit a notebook cell or a book page
            lines += textwrap.wrap(f"{f.check}: {f.detail}", width=80, initial_indent=f"  {'ok  ' if f.passed else 'FAIL'}  ",
                                   subsequent_indent=" " * 10, break_on_hyphens=False)
        n, bad = len(self.findings), len(self.failures)
        lines.append(f"all {n} checks passed" if not bad else f"{bad} of {n} checks failed")
        return "\n".join(lines)

    __repr__ = __str__

    def raise_if_failed(self) -> None:
        """Raise ``AssertionError`` with the whole report when a check failed."""
        if not self.passed:
            raise AssertionError(str(self))


def check_loss(
    candidate: Callable[..., torch.Tensor],
    reference: str | LossSpec,
    *,
    reference_kwargs: dict[str, Any] | None = None,
    properties: Iterable[str] | None = None,
    seeds: int = 5,
) -> CheckReport:
    """Check a reader's implementation of a loss against lossbook's, and say what is wrong.

    ``candidate`` is called like the registered loss ``reference``: the same
    positional inputs, the same keyword hyperparameters and ``reduction=``.
    The checks, in order:

    * **signature**: it accepts those arguments (nothing else runs if not);
    * **value**: it matches the reference on ``seeds`` random batches, for every reduction;
    * **gradient**: autograd through it matches the reference's gradient, for every reduction;
    * **dtype**: float32 in gives float32 out;
    * **inputs untouched**: it does not modify its inputs in place;
    * **extreme inputs**: on the reference's extreme inputs (saturated logits,
      huge residuals) value and gradient are finite and close to the reference;
    * **property**: every property in ``properties`` (default: those the
      reference's card claims) holds, probed as in the package's own tests.

    ``reference_kwargs`` are hyperparameters the reference gets but the
    candidate does not, for an exercise that implements one fixed case
    (e.g. ``{"kind": "logistic"}`` of :func:`lossbook.surrogates.margin_loss`).
    A claimed property that the reference itself lacks in that case is skipped.

    Example:
        >>> def my_mse(input, target, *, reduction="mean"):
        ...     loss = (input - target) ** 2
        ...     return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]
        >>> report = check_loss(my_mse, "mse_loss")
        >>> report.passed
        True
        >>> print(check_loss(lambda x, y, *, reduction="mean": (x - y).abs().mean(), "mse_loss").failures[0])
        Finding(check='value', passed=False, detail="reduction='none': output shape () but the reference's is (6, 3)")
    """
    if isinstance(properties, str):
        raise TypeError(f"properties must be a list of names, e.g. [{properties!r}], not a string")
    if not (isinstance(seeds, int) and seeds >= 1):
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    ref = get(reference) if isinstance(reference, str) else reference
    if not ref.kind.tensors:
        raise ValueError(f"check_loss compares losses of tensors; {ref.name} takes a model "
                         f"(input kind {ref.input_kind!r}): compare with lossbook.registry.get({ref.name!r}).reference")
    fixed = dict(reference_kwargs or {})
    ref, subject = _pair_of_specs(ref, candidate, fixed)
    report = CheckReport(_name_of(candidate), ref.name, [])
    add = report.findings.append

    signature = _run(lambda: _check_signature(subject, ref))
    add(Finding("signature", signature is None, signature or "accepts the inputs, the hyperparameters and reduction="))
    if signature is not None:
        return report
    for name, check in (("value", lambda: _check_values(subject, ref, seeds)),
                        ("gradient", lambda: None if ref.gradient == "none"
                         else _check_gradients(subject, ref, min(seeds, 3))),
                        ("dtype", lambda: _check_dtype(subject)),
                        ("inputs untouched", lambda: _check_inputs_untouched(subject)),
                        ("extreme inputs", lambda: _check_extreme(subject, ref))):
        problem = _run(check)
        detail = problem or _PASSED[name].format(seeds=seeds)
        if name == "extreme inputs" and ref.extreme is None:
            detail = "none registered for this loss, nothing to check"
        if name == "gradient" and ref.gradient == "none":
            detail = "a metric (piecewise constant): no gradient to check"
        add(Finding(name, problem is None, detail))
    claims = ref.properties if properties is None else frozenset(properties)
    for prop in sorted(claims):
        probe = probe_for(prop, ref.input_kind)
        if probe is None:
            add(Finding(f"property {prop}", False, f"no probe for {prop!r} on {ref.input_kind} inputs"))
            continue
        if fixed and _run(lambda: probe(ref)) is not None:
            add(Finding(f"property {prop}", True, f"not checked: the reference lacks it with {fixed}"))
            continue
        problem = _run(lambda: probe(subject))
        add(Finding(f"property {prop}", problem is None, problem or "holds"))
    return report


_PASSED = {
    "value": "matches on {seeds} random batches for every reduction",
    "gradient": "autograd gradient matches the reference's for every reduction",
    "dtype": "float32 in, float32 out",
    "inputs untouched": "inputs are not modified in place",
    "extreme inputs": "finite and close to the reference on the extreme inputs",
}


def _name_of(candidate: Callable[..., Any]) -> str:
    """A name that is the same in every run (no memory addresses: reports are compared by nbval)."""
    for obj in (candidate, getattr(candidate, "func", None)):
        name = getattr(obj, "__name__", None)
        if isinstance(name, str):
            return name
    return type(candidate).__name__


def _pair_of_specs(ref: LossSpec, candidate: Callable[..., torch.Tensor],
                   fixed: dict[str, Any]) -> tuple[LossSpec, LossSpec]:
    """The reference and the candidate as specs that draw the same samples, ``fixed`` bound to the reference."""
    def drop_fixed(make: Callable[..., Sample] | None) -> Callable[..., Sample] | None:
        if make is None:
            return None

        def sample(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
            s = make(gen, dtype, device)
            return Sample(s.args, {k: v for k, v in s.kwargs.items() if k not in fixed}, s.grad_args)
        return sample

    unknown = set(fixed) - set(draw(ref).kwargs) - _keywords(ref.fn)
    if unknown:
        raise TypeError(f"{ref.name} has no hyperparameters {sorted(unknown)}")
    ref_fn = functools.partial(ref.fn, **fixed) if fixed else ref.fn
    common = dict(sample=drop_fixed(ref.sample), extreme=drop_fixed(ref.extreme))
    return (dataclasses.replace(ref, fn=ref_fn, **common),
            dataclasses.replace(ref, fn=candidate, **common))


def _keywords(fn: Callable[..., Any]) -> set[str]:
    return {k for k, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}


def _run(check: Callable[[], str | None]) -> str | None:
    """Run one check: ``None`` when it passes, otherwise what went wrong (an exception is a failure too)."""
    try:
        return check()
    except PropertyViolation as exc:
        return str(exc)
    except Exception as exc:  # the reader's code may raise anything: report it, do not crash
        return f"raised {type(exc).__name__}: {exc}"


def _check_signature(subject: LossSpec, ref: LossSpec) -> str | None:
    s = draw(subject)
    try:
        signature = inspect.signature(subject.fn)
    except (TypeError, ValueError):  # no introspectable signature (some builtins): let the calls tell
        return None
    try:
        signature.bind(*s.args, **s.kwargs, reduction=ref.reductions[-1])
    except TypeError as exc:
        names = ", ".join([f"{len(s.args)} positional tensors", *[f"{k}=" for k in s.kwargs], "reduction="])
        return f"it cannot be called with {names}: {exc}"
    return None


def _fmt(t: torch.Tensor) -> str:
    t = t.detach().double().cpu()
    return f"{float(t):.4g}" if t.dim() == 0 else "[" + ", ".join(f"{float(v):.4g}" for v in t.flatten()) + "]"


def _where(sample: Sample, shape: torch.Size, idx: tuple[int, ...]) -> str:
    """The inputs behind output element ``idx``: the matching element or row of each argument."""
    parts = []
    for i, a in enumerate(sample.args):
        if idx and tuple(a.shape[:len(idx)]) == tuple(shape):
            parts.append(f"argument {i} = {_fmt(a[idx])}")
    return f" (at index {idx}: {', '.join(parts)})" if parts else (f" (at index {idx})" if idx else "")


def _not_a_tensor(out: Any, what: str) -> str | None:
    if isinstance(out, torch.Tensor):
        return None
    return f"{what}: returned {type(out).__name__}, not a torch.Tensor (keep the computation in torch)"


def _compare(got: torch.Tensor, want: torch.Tensor, what: str, sample: Sample,
             rtol: float, atol: float) -> str | None:
    problem = _not_a_tensor(got, what)
    if problem:
        return problem
    if got.shape != want.shape:
        return f"{what}: output shape {tuple(got.shape)} but the reference's is {tuple(want.shape)}"
    got, want = got.detach().double(), want.detach().double()
    bad = ~torch.isclose(got, want, rtol=rtol, atol=atol, equal_nan=False)
    if not bad.any():
        return None
    idx = tuple(int(i) for i in bad.nonzero()[0]) if got.dim() else ()
    return (f"{what}: got {_fmt(got[idx])}, expected {_fmt(want[idx])}"
            f"{_where(sample, got.shape, idx)}")


def _fresh(sample: Sample) -> Sample:
    """Copies of the inputs, so that a candidate that edits them in place cannot change the reference's."""
    return Sample(tuple(a.clone() for a in sample.args), sample.kwargs, sample.grad_args)


def _check_values(subject: LossSpec, ref: LossSpec, seeds: int) -> str | None:
    for seed in range(seeds):
        s = draw(ref, seed=seed)
        for reduction in ref.reductions:
            want = call(ref, s, reduction=reduction)
            problem = _compare(call(subject, _fresh(s), reduction=reduction), want, f"reduction={reduction!r}", s,
                               rtol=max(ref.rtol, 1e-6), atol=max(ref.atol, 1e-8))
            if problem:
                return problem
    return None


def _gradients(spec: LossSpec, sample: Sample, reduction: str) -> list[torch.Tensor | None]:
    s = with_grad(sample)
    out = call(spec, s, reduction=reduction)
    if not isinstance(out, torch.Tensor):
        raise PropertyViolation(_not_a_tensor(out, f"reduction={reduction!r}"))
    if not out.requires_grad:
        raise PropertyViolation(f"reduction={reduction!r}: the result does not depend on the inputs through "
                                "autograd: is it detached (.item(), .detach(), numpy) somewhere?")
    inputs = [s.args[i] for i in s.grad_args]
    # per-element outputs: weight them 1, 2, 3, 1, ... so that every element's gradient counts
    upstream = (torch.arange(out.numel(), device=out.device) % 3 + 1).to(out.dtype).reshape(out.shape)
    return list(torch.autograd.grad(out, inputs, grad_outputs=upstream, allow_unused=True))


def _check_gradients(subject: LossSpec, ref: LossSpec, seeds: int) -> str | None:
    for seed in range(seeds):
        s = draw(ref, seed=seed)
        for reduction in ref.reductions:
            want = _gradients(ref, s, reduction)
            try:
                got = _gradients(subject, s, reduction)
            except RuntimeError as exc:
                return f"reduction={reduction!r}: backward failed: {exc}"
            for i, g, w in zip(s.grad_args, got, want):
                if g is None:
                    return f"reduction={reduction!r}: no gradient reaches argument {i}: is it detached?"
                problem = _compare(g, w, f"reduction={reduction!r}, d loss / d argument {i}", s, rtol=1e-5, atol=1e-7)
                if problem:
                    return problem
    return None


def _check_dtype(subject: LossSpec) -> str | None:
    s = draw(subject, dtype=torch.float32)
    out = call(subject, s, reduction=subject.reductions[-1])
    problem = _not_a_tensor(out, "float32 inputs")
    if problem:
        return problem
    if out.dtype != torch.float32:
        return f"float32 inputs gave a {out.dtype} result: keep the input's dtype"
    return None


def _check_inputs_untouched(subject: LossSpec) -> str | None:
    s = draw(subject)
    before = [a.clone() for a in s.args]
    call(subject, s, reduction=subject.reductions[0])
    for i, (a, b) in enumerate(zip(s.args, before)):
        if not torch.equal(a, b):
            return f"argument {i} was modified in place: work on a copy (e.g. avoid `x -= ...`, `x.clamp_()`)"
    return None


def _nonfinite_hint(values: torch.Tensor) -> str:
    return ("NaN: look for 0/0, inf - inf or 0 * inf" if torch.isnan(values).any()
            else "overflow: compute in log space")


def _check_extreme(subject: LossSpec, ref: LossSpec) -> str | None:
    if ref.extreme is None:
        return None
    gen = torch.Generator().manual_seed(0)
    s = ref.extreme(gen, torch.float32, torch.device("cpu"))
    # The candidate's hyperparameters: those of the regular sample, overridden by the extreme
    # sample's (which may switch on an option the candidate was not asked to implement).
    # (Tensor hyperparameters are shaped for their own sample, so they are not carried over.)
    regular = draw(ref).kwargs
    asked = {k: v for k, v in regular.items() if not isinstance(v, torch.Tensor)}
    s = Sample(s.args, {**asked, **{k: v for k, v in s.kwargs.items() if k in regular}}, s.grad_args)
    reduction = "none" if "none" in ref.reductions else ref.reductions[0]
    want = call(ref, s, reduction=reduction)
    g = with_grad(s)
    out = call(subject, g, reduction=reduction)
    problem = _not_a_tensor(out, "extreme inputs")
    if problem:
        return problem
    if not torch.isfinite(out).all():
        idx = tuple(int(i) for i in (~torch.isfinite(out)).nonzero()[0]) if out.dim() else ()
        return f"non-finite loss {_fmt(out[idx])}{_where(s, out.shape, idx)}: {_nonfinite_hint(out)}"
    if out.requires_grad:
        out.sum().backward()
    for i in s.grad_args:
        grad = g.args[i].grad
        if grad is not None and not torch.isfinite(grad).all():
            idx = tuple(int(j) for j in (~torch.isfinite(grad)).nonzero()[0])
            return (f"non-finite gradient {_fmt(grad[idx])} for argument {i}{_where(s, grad.shape, idx)}: "
                    f"{_nonfinite_hint(grad)}")
    return _compare(out, want, "value", s, rtol=1e-3, atol=1e-3)


_RENAMED = {
    "probe_symmetric_regression": "probe_even_regression",
    "probe_robust_regression": "probe_bounded_influence_regression",
    "probe_symmetric_logits": "probe_label_symmetric_logits",
}


def __getattr__(name: str) -> Any:
    # The old probe names keep working for one release.
    if name in _RENAMED:
        import warnings
        warnings.warn(f"lossbook.check.{name} is renamed {_RENAMED[name]}", DeprecationWarning, stacklevel=2)
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module 'lossbook.check' has no attribute {name!r}")
