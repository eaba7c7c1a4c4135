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
import inspect
import math
from typing import Any, Callable

import torch
from torch import nn

# Vocabulary of the registry (checked at registration so that typos fail fast).
INPUT_KINDS = {
    "regression": "real-valued predictions and targets of the same shape",
    "distribution": "predicted distribution parameters (mean and variance or scale) and targets",
    "series": "forecasts and observed series, the last dimension is time",
    "returns": "predicted and realised returns (only the sign of the prediction matters)",
    "quantiles": "predictions of shape (N, Q), one column per quantile level",
    "logits": "unnormalised class scores (N, C) and class-index or probability targets",
    "margins": "binary margins y·f(x)",
    "probabilities": "class probabilities on the simplex",
    "embeddings": "feature vectors",
    "boxes": "bounding boxes",
    "samples": "samples (errors and uncertainties) summarised by soft histograms",
    "policy-paths": "log action probabilities along solution paths (N, T) and path depths (N,)",
    "hidden": "hidden states (N, D), an output projection (V, D) and class-index targets (N,)",
}
PROPERTIES = {
    "convex": "convex in the prediction",
    "symmetric": "depends on the residual only through |r| (or is symmetric in its arguments)",
    "bounded": "bounded above",
    "robust": "bounded influence: the gradient stays bounded as the residual grows",
    "proper": "a (strictly) proper scoring rule",
    "classification-calibrated": "classification-calibrated surrogate of the 0-1 loss",
    "scale-free": "unchanged when prediction and target are multiplied by the same positive number",
    "nonnegative": "never below zero",
}
GRADIENTS = {
    "exact": "the gradient of the stated formula",
    "subgradient": "a subgradient at kinks (autograd's choice), exact elsewhere",
    "surrogate": "the gradient of a smooth surrogate of the stated (non-differentiable) quantity",
    "none": "a metric: piecewise constant, the gradient is zero almost everywhere",
}


@dataclasses.dataclass
class Sample:
    """Inputs for one call: positional tensors ``args`` and keyword hyperparameters ``kwargs``.

    ``grad_args`` are the positions of the arguments a gradient flows to.
    """

    args: tuple[torch.Tensor, ...]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    grad_args: tuple[int, ...] = (0,)


@dataclasses.dataclass
class ErrorCase:
    """A bad call and the error it must raise (``match`` is a regex on the message)."""

    description: str
    make: Callable[[Sample], Sample]
    exception: type[Exception]
    match: str


SampleFn = Callable[[torch.Generator, torch.dtype, torch.device], Sample]


def with_kwargs(**kwargs: Any) -> Callable[[Sample], Sample]:
    """For an :class:`ErrorCase`: the same sample with some hyperparameters replaced."""
    return lambda s: Sample(s.args, {**s.kwargs, **kwargs}, s.grad_args)


def logits_sample(n: int = 6, c: int = 4, scale: float = 2.0, soft: bool = False, **kwargs: Any) -> SampleFn:
    """``(N, C)`` logits with class-index targets (or, with ``soft``, probability targets)."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        z = torch.randn(n, c, generator=gen, dtype=torch.float64) * scale
        if soft:
            q = torch.rand(n, c, generator=gen, dtype=torch.float64)
            y = (q / q.sum(1, keepdim=True)).to(dtype=dtype, device=device)
        else:
            y = torch.randint(0, c, (n,), generator=gen).to(device)
        return Sample((z.to(dtype=dtype, device=device), y), dict(kwargs))
    return make


def extreme_logits(**kwargs: Any) -> SampleFn:
    """Logits of ±1e4: confidently right, confidently wrong, and ties, with class-index targets."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [1e4, 1e4, -1e4], [0.0, 0.0, 0.0]],
                         dtype=dtype, device=device)
        return Sample((z, torch.tensor([0, 0, 1, 2], device=device)), dict(kwargs))
    return make


def label_out_of_range(s: Sample) -> Sample:
    """For an :class:`ErrorCase`: the sample with every class index set to ``C`` (one past the last)."""
    z, y, *rest = s.args
    return Sample((z, torch.full_like(y, z.shape[1]), *rest), s.kwargs, s.grad_args)


def as_numpy(t: torch.Tensor):
    """A float64 numpy copy, for the float64 oracles that references compute with."""
    return t.detach().cpu().double().numpy()


@dataclasses.dataclass
class LossSpec:
    name: str
    fn: Callable[..., torch.Tensor]
    module: type[nn.Module] | None
    chapter: str
    section: str
    inputs: str
    output_range: tuple[float, float]
    properties: frozenset[str]
    gradient: str
    reference: Callable[..., Any] | None
    reference_name: str
    sample: SampleFn
    extreme: SampleFn | None = None
    errors: tuple[ErrorCase, ...] = ()
    reductions: tuple[str, ...] = ("none", "mean", "sum")
    reference_reduction: str = "none"
    weighted: bool = False
    compile: bool = True
    summary: str = ""
    formula: str = ""
    rtol: float = 1e-6
    atol: float = 1e-8

    @property
    def qualname(self) -> str:
        return f"{self.fn.__module__}.{self.name}"


_REGISTRY: dict[str, LossSpec] = {}


def register(fn: Callable[..., torch.Tensor], **fields: Any) -> LossSpec:
    """Record ``fn`` in the registry; see :class:`LossSpec` for the fields."""
    spec = LossSpec(name=fn.__name__, fn=fn, **fields)
    spec.properties = frozenset(spec.properties)
    _validate(spec)
    if spec.name in _REGISTRY and _REGISTRY[spec.name].fn is not fn:
        raise ValueError(f"a loss named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _validate(spec: LossSpec) -> None:
    if spec.inputs not in INPUT_KINDS:
        raise ValueError(f"{spec.name}: unknown input kind {spec.inputs!r}")
    unknown = spec.properties - PROPERTIES.keys()
    if unknown:
        raise ValueError(f"{spec.name}: unknown properties {sorted(unknown)}")
    if spec.gradient not in GRADIENTS:
        raise ValueError(f"{spec.name}: unknown gradient contract {spec.gradient!r}")
    lo, hi = spec.output_range
    if not lo <= hi:
        raise ValueError(f"{spec.name}: output_range must be (low, high) with low <= high")
    if not spec.fn.__doc__:
        raise ValueError(f"{spec.name}: a registered loss needs a docstring")


def get(name: str) -> LossSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no loss named {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def all_losses(chapter: str | None = None) -> list[LossSpec]:
    """Registered losses (of one chapter, if given), in registration order."""
    _import_families()
    return [s for s in _REGISTRY.values() if chapter is None or s.chapter == chapter]


def _import_families() -> None:
    # Importing the package imports every family module, which registers its losses.
    import lossbook  # noqa: F401


# --------------------------------------------------------------------------- modules


class Loss(nn.Module):
    """Base class of the module twins: keyword hyperparameters stored, the call forwarded.

    Tensor-valued hyperparameters are registered as buffers, so ``.to(device)``
    moves them with the module.
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
        self._tensor_kwargs: list[str] = []
        self._kwargs: dict[str, Any] = {}
        for key, value in kwargs.items():
            if isinstance(value, torch.Tensor):
                self.register_buffer(key, value)
                self._tensor_kwargs.append(key)
            else:
                self._kwargs[key] = value

    def hyperparameters(self) -> dict[str, Any]:
        out = dict(self._kwargs)
        out.update({k: getattr(self, k) for k in self._tensor_kwargs})
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
