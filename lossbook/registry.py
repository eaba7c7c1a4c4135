"""The loss registry: one record per public loss.

Each loss module publishes its losses with :func:`register`. The record says
where the book derives the loss, what it expects and guarantees, and how to
test it (a reference implementation and a sample-input generator). The
generic test suite (``tests/test_generic.py``), the API reference and the
chapter map of the book are all driven by this registry, so a new loss is
tested and documented the moment it is registered.

:func:`module_twin` builds the ``nn.Module`` form of a functional loss with
the same keyword arguments.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import warnings
from typing import Any, Callable

import torch
from torch import nn

from lossbook.families import FAMILIES
from lossbook.kinds import (  # noqa: F401  (re-exported: families build their samples with these)
    KINDS, ErrorCase, InputKind, Sample, SampleFn, extreme_logits, label_out_of_range, logits_sample,
    pair_sample, with_arg, with_kwargs,
)

INPUT_KINDS = {name: kind.description for name, kind in KINDS.items()}
"""``input kind -> description`` (the records themselves are :data:`lossbook.kinds.KINDS`)."""

PROPERTIES = {
    "convex": "convex in the prediction",
    "even": "depends on the residual only through |r|: the loss at r equals the loss at -r",
    "label-symmetric": "the sum of the loss over all labels is the same constant for every prediction",
    "argument-symmetric": "unchanged when prediction and target swap places",
    "bounded": "bounded above",
    "bounded-influence": "the gradient stays bounded as the residual grows",
    "proper": "a (strictly) proper scoring rule",
    "classification-calibrated": "classification-calibrated surrogate of the 0-1 loss",
    "scale-free": "unchanged when prediction and target are multiplied by the same positive number",
    "nonnegative": "never below zero",
}
# Old property names: "symmetric" had three meanings and "robust" two.
RENAMED_PROPERTIES = {"robust": "bounded-influence"}
LABEL_KINDS = {"logits", "probabilities", "dense", "logits-only"}

GRADIENTS = {
    "exact": "the gradient of the stated formula",
    "subgradient": "a subgradient at kinks (autograd's choice), exact elsewhere",
    "surrogate": "the gradient of a smooth surrogate of the stated (non-differentiable) quantity",
    "none": "a metric: piecewise constant, the gradient is zero almost everywhere",
}
EQUIVALENT_CATEGORIES = {
    "builtin": "an exact torch built-in (or a one-line composition of them) computing the same quantity",
    "peer": "a peer library's implementation of the same loss",
    "naive": "the materialised version of a memory-efficient loss",
}


def as_numpy(t: torch.Tensor):
    """A float64 numpy copy, for the float64 oracles that references compute with."""
    return t.detach().cpu().double().numpy()


@dataclasses.dataclass
class Equivalent:
    """An implementation elsewhere of the same loss: the cross-checks compare with it, the benchmarks time it.

    ``fn(sample, reduction)`` returns the loss for a :class:`~lossbook.kinds.Sample` (``reduction``
    is ``"mean"`` or ``"none"``), or None when it cannot give that reduction.
    ``requires`` names the package a peer needs (imported lazily by ``fn``).
    """

    category: str  # builtin | peer | naive
    label: str
    fn: Callable[[Sample, str], torch.Tensor | None]
    requires: str | None = None


@dataclasses.dataclass
class LossSpec:
    """One registered loss: where the book derives it, what it takes and guarantees, and how it is tested.

    ``chapter`` is the family module's name (``lossbook.<chapter>``) and is
    derived from ``fn``. ``input_kind`` names a record of
    :data:`lossbook.kinds.KINDS`; ``sample`` defaults to the kind's sample.
    ``references`` holds the bibliography keys of the papers the loss
    implements; ``equivalent`` an implementation elsewhere (torch built-in or
    peer library) that the cross-checks and the benchmarks use.
    """

    name: str
    fn: Callable[..., torch.Tensor]
    module: type[nn.Module] | None
    section: str
    input_kind: str
    output_range: tuple[float, float]
    properties: frozenset[str]
    gradient: str
    reference: Callable[..., Any] | None
    reference_name: str
    sample: SampleFn | None = None
    chapter: str = ""
    extreme: SampleFn | None = None
    errors: tuple[ErrorCase, ...] = ()
    reductions: tuple[str, ...] = ("none", "mean", "sum")
    reference_reduction: str = "none"
    weighted: bool = False
    compile: bool = True
    second_order: bool = False
    equivalent: Equivalent | None = None
    references: tuple[str, ...] = ()
    summary: str = ""
    formula: str = ""
    rtol: float = 1e-6
    atol: float = 1e-8

    @property
    def qualname(self) -> str:
        return f"{self.fn.__module__}.{self.name}"

    @property
    def kind(self) -> InputKind:
        return KINDS[self.input_kind]

    @property
    def inputs(self) -> str:
        """Deprecated name of ``input_kind``."""
        warnings.warn("LossSpec.inputs is renamed input_kind", DeprecationWarning, stacklevel=2)
        return self.input_kind


_REGISTRY: dict[str, LossSpec] = {}


def _family_of(obj: Any) -> str:
    return obj.__module__.rsplit(".", 1)[-1]


def _rename_fields(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    if "inputs" in fields:
        warnings.warn(f"{name}: register(inputs=...) is renamed input_kind=", DeprecationWarning, stacklevel=4)
        fields["input_kind"] = fields.pop("inputs")
    props = set(fields.get("properties", ()))
    if "symmetric" in props or props & RENAMED_PROPERTIES.keys():
        warnings.warn(f"{name}: property names 'symmetric' and 'robust' are replaced by 'even', "
                      "'label-symmetric', 'argument-symmetric' and 'bounded-influence'",
                      DeprecationWarning, stacklevel=4)
        if "symmetric" in props:
            props.discard("symmetric")
            props.add("label-symmetric" if fields.get("input_kind") in LABEL_KINDS else "even")
        props = {RENAMED_PROPERTIES.get(p, p) for p in props}
    fields["properties"] = frozenset(props)
    return fields


def _record_fields(obj: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """Old field names mapped to new ones, and the chapter derived from the defining module."""
    fields = _rename_fields(obj.__name__, dict(fields))
    family = _family_of(obj)
    if fields.setdefault("chapter", family) != family:
        raise ValueError(f"{obj.__name__}: chapter {fields['chapter']!r} is not its module's family {family!r}")
    return fields


def register(fn: Callable[..., torch.Tensor], **fields: Any) -> LossSpec:
    """Record ``fn`` in the registry; see :class:`LossSpec` for the fields."""
    fields = _record_fields(fn, fields)
    spec = LossSpec(name=fn.__name__, fn=fn, **fields)
    _validate(spec)
    if spec.sample is None:
        spec.sample = spec.kind.sample
    if spec.name in _REGISTRY and _REGISTRY[spec.name].fn is not fn:
        raise ValueError(f"a loss named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _validate(spec: Any) -> None:
    if spec.input_kind not in KINDS:
        raise ValueError(f"{spec.name}: unknown input kind {spec.input_kind!r}; known: {', '.join(KINDS)}")
    unknown = spec.properties - PROPERTIES.keys()
    if unknown:
        raise ValueError(f"{spec.name}: unknown properties {sorted(unknown)}")
    if spec.gradient not in GRADIENTS:
        raise ValueError(f"{spec.name}: unknown gradient contract {spec.gradient!r}")
    lo, hi = spec.output_range
    if not lo <= hi:
        raise ValueError(f"{spec.name}: output_range must be (low, high) with low <= high")
    target = spec.fn if isinstance(spec, LossSpec) else spec.cls
    if not target.__doc__:
        raise ValueError(f"{spec.name}: a registered loss needs a docstring")
    if spec.sample is None and KINDS[spec.input_kind].sample is None:
        raise ValueError(f"{spec.name}: input kind {spec.input_kind!r} has no default sample; pass sample=")
    eq = getattr(spec, "equivalent", None)
    if eq is not None and eq.category not in EQUIVALENT_CATEGORIES:
        raise ValueError(f"{spec.name}: unknown equivalent category {eq.category!r}")


def get(name: str) -> LossSpec:
    _import_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no loss named {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def all_losses(chapter: str | None = None) -> list[LossSpec]:
    """Registered losses (of one chapter, if given), in chapter order, then registration order."""
    _import_families()
    order = {f.module: f.chapter for f in FAMILIES}
    specs = [s for s in _REGISTRY.values() if chapter is None or s.chapter == chapter]
    return sorted(specs, key=lambda s: order.get(s.chapter, 99))


def _import_families() -> None:
    # The written families of lossbook.families register their losses when imported.
    for family in FAMILIES:
        if family.written:
            importlib.import_module(f"lossbook.{family.module}")


# --------------------------------------------------------------------------- stateful and model-taking losses


@dataclasses.dataclass
class ModuleSample:
    """One test case of a registered module: constructor keywords apart from forward inputs.

    ``init`` are the constructor's keyword arguments; ``forward`` a
    :class:`~lossbook.kinds.Sample` of forward inputs. ``steps`` more forward samples, if given,
    are called one after another to test how the state evolves.
    """

    init: dict[str, Any]
    forward: Sample
    steps: tuple[Sample, ...] = ()


ModuleSampleFn = Callable[[torch.Generator, torch.dtype, torch.device], ModuleSample]


@dataclasses.dataclass
class ModuleSpec:
    """A registered ``nn.Module`` loss that keeps state or owns parameters (the ModuleInfo pattern).

    ``state`` names the buffers that forward calls update (tested: untouched by a
    call that raises, saved and restored by ``state_dict``); ``learnable`` says
    that the module has parameters a gradient must reach; ``train_eval`` that
    its training and evaluation modes differ. ``reference(module, sample)``
    recomputes the output from the module's state before the call (float64).
    """

    name: str
    cls: type[nn.Module]
    section: str
    input_kind: str
    output_range: tuple[float, float]
    properties: frozenset[str]
    gradient: str
    reference: Callable[..., Any] | None
    reference_name: str
    sample: ModuleSampleFn | None = None
    chapter: str = ""
    errors: tuple[ErrorCase, ...] = ()
    state: tuple[str, ...] = ()
    learnable: bool = False
    train_eval: bool = False
    references: tuple[str, ...] = ()
    summary: str = ""
    formula: str = ""
    rtol: float = 1e-6
    atol: float = 1e-8

    @property
    def qualname(self) -> str:
        return f"{self.cls.__module__}.{self.name}"

    @property
    def kind(self) -> InputKind:
        return KINDS[self.input_kind]


_MODULES: dict[str, ModuleSpec] = {}


def register_module(cls: type[nn.Module], **fields: Any) -> ModuleSpec:
    """Record a stateful or learnable loss module; see :class:`ModuleSpec` for the fields."""
    fields = _record_fields(cls, fields)
    if fields.get("sample") is None:
        raise ValueError(f"{cls.__name__}: a registered module needs a sample (a ModuleSample generator)")
    spec = ModuleSpec(name=cls.__name__, cls=cls, **fields)
    _validate(spec)
    if spec.name in _MODULES and _MODULES[spec.name].cls is not cls:
        raise ValueError(f"a module named {spec.name!r} is already registered")
    _MODULES[spec.name] = spec
    return spec


def all_modules(chapter: str | None = None) -> list[ModuleSpec]:
    """Registered stateful and learnable loss modules (of one chapter, if given)."""
    _import_families()
    return [s for s in _MODULES.values() if chapter is None or s.chapter == chapter]


def get_module(name: str) -> ModuleSpec:
    _import_families()
    try:
        return _MODULES[name]
    except KeyError:
        raise KeyError(f"no module named {name!r}; registered: {', '.join(sorted(_MODULES))}") from None


# --------------------------------------------------------------------------- modules


class Loss(nn.Module):
    """Base class of the module twins: keyword hyperparameters stored, the call forwarded.

    An ``nn.Parameter`` stays a parameter (a learnable temperature is trained
    with the model), an ``nn.Module`` becomes a submodule, any other tensor a
    buffer (so ``.to(device)`` moves it); plain Python values are kept as
    they are.
    """

    function: Callable[..., torch.Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        params = _keyword_params(type(self).function)
        unknown = set(kwargs) - params.keys()
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword arguments {sorted(unknown)}; "
                f"valid: {', '.join(params)}"
            )
        self._stored: list[str] = []
        self._kwargs: dict[str, Any] = {}
        for key, value in kwargs.items():
            if isinstance(value, nn.Parameter):
                self.register_parameter(key, value)
            elif isinstance(value, nn.Module):
                self.add_module(key, value)
            elif isinstance(value, torch.Tensor):
                self.register_buffer(key, value)
            else:
                self._kwargs[key] = value
                continue
            self._stored.append(key)

    def hyperparameters(self) -> dict[str, Any]:
        out = dict(self._kwargs)
        out.update({k: getattr(self, k) for k in self._stored})
        return out

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return type(self).function(*args, **self.hyperparameters())

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())


def _keyword_params(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(fn)
    return {k: p for k, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def module_twin(fn: Callable[..., torch.Tensor], name: str) -> type[Loss]:
    """The ``nn.Module`` form of ``fn``: same keyword arguments, same defaults."""
    params = _keyword_params(fn)

    def __init__(self: Loss, **kwargs: Any) -> None:
        Loss.__init__(self, **kwargs)

    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params.values()]
    )
    doc = (
        f"Module form of :func:`{fn.__module__}.{fn.__name__}`.\n\n"
        f"Takes the same keyword arguments ({', '.join(params) or 'none'}) and calls the "
        f"function with them; see its documentation for the formula and shapes."
    )
    cls = type(name, (Loss,), {"function": staticmethod(fn), "__init__": __init__, "__doc__": doc})
    cls.__module__ = fn.__module__
    return cls


INF = math.inf
