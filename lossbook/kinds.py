"""Input kinds: one record per kind of input a loss takes.

A loss's record in :mod:`lossbook.registry` names its :class:`InputKind`. The
kind says what the arguments are, how to draw a valid sample and an extreme
one, which bad calls every loss of the kind must refuse (the *contract
errors*), what an empty batch gives, how the benchmarks scale a sample, and
which property probes apply. The generic test suite, :func:`lossbook.check.check_loss`,
the API pages and the benchmarks all read the kind from here, so a new loss
of an existing kind gets its contract tests for free.

Each kind also names the public validator from :mod:`lossbook.validation`
that losses of the kind call (``kind.validate``); the contract errors are
checked against the validator itself, so a kind's contract is tested before
any loss of that kind exists.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import nn

from lossbook import validation as V


@dataclasses.dataclass
class Sample:
    """Inputs for one call: positional ``args`` and keyword hyperparameters ``kwargs``.

    ``grad_args`` are the positions of the arguments a gradient flows to. For
    a loss that takes a model, ``args[0]`` is a small seeded ``nn.Module`` and
    gradients are checked over its parameters.
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    grad_args: tuple[int, ...] = (0,)


@dataclasses.dataclass
class ErrorCase:
    """A bad call and the error it must raise (``match`` is a regex on the message)."""

    description: str
    make: Callable[[Sample], Sample]
    exception: type[Exception] | tuple[type[Exception], ...]
    match: str


SampleFn = Callable[[torch.Generator, torch.dtype, torch.device], Sample]


def with_kwargs(**kwargs: Any) -> Callable[[Sample], Sample]:
    """For an :class:`ErrorCase`: the same sample with some hyperparameters replaced."""
    return lambda s: Sample(s.args, {**s.kwargs, **kwargs}, s.grad_args)


def with_arg(i: int, change: Callable[[Any], Any]) -> Callable[[Sample], Sample]:
    """For an :class:`ErrorCase`: the same sample with positional argument ``i`` changed."""
    def make(s: Sample) -> Sample:
        args = list(s.args)
        args[i] = change(args[i])
        return Sample(tuple(args), s.kwargs, s.grad_args)
    return make


@dataclasses.dataclass
class InputKind:
    """What one kind of loss input is, and how every loss of the kind is tested.

    Fields:
        name: the kind's key (``spec.input_kind``).
        description: one line for the API pages.
        args: names of the positional arguments, in order.
        sample: a default valid sample (losses may register their own).
        validate: the public validator losses of this kind call on their positional arguments.
        errors: contract errors: bad calls every loss of the kind refuses, with the message they raise.
        empty: what an empty batch gives: ``"zero"`` (0 for mean and sum), ``"error"``, or None (no batch axis).
        bench_layout: how ``benchmarks/inputs.py`` scales a sample (None: not benchmarked by size).
        class_targets: ``args[1]`` holds class indices (benchmarks redraw them for a new class count).
        masked_logits: ``args[0]`` are logits where ``-inf`` masks a class (the masked-logit test applies).
        tensors: the positional arguments are tensors (False for losses that take a model).
        probes: ``property -> probe`` for this kind; filled by :mod:`lossbook.check`.
    """

    name: str
    description: str
    args: tuple[str, ...]
    sample: SampleFn | None = None
    validate: Callable[..., Any] | None = None
    errors: tuple[ErrorCase, ...] = ()
    empty: str | None = "zero"
    bench_layout: str | None = "rows-cols"
    class_targets: bool = False
    masked_logits: bool = False
    tensors: bool = True
    probes: dict[str, Callable[..., None]] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- samplers


def _cast(dtype: torch.dtype, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: t.to(dtype=dtype, device=device)


def pair_sample(shape: tuple[int, ...] = (6, 3), positive: bool = False, **kwargs: Any) -> SampleFn:
    """Real predictions and targets of one shape (positive ones with ``positive``)."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
        y = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
        if positive:
            x, y = x.abs() + 0.1, y.abs() + 0.1
        c = _cast(dtype, device)
        return Sample((c(x), c(y)), dict(kwargs))
    return make


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


def binary_sample(n: int = 8, **kwargs: Any) -> SampleFn:
    """``(N,)`` real scores with ``{0, 1}`` float targets."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        v = torch.randn(n, generator=gen, dtype=torch.float64) * 2
        t = (torch.rand(n, generator=gen, dtype=torch.float64) > 0.5).double()
        c = _cast(dtype, device)
        return Sample((c(v), c(t)), dict(kwargs))
    return make


def embeddings_sample(n: int = 8, d: int = 5, classes: int = 3, **kwargs: Any) -> SampleFn:
    """``(N, D)`` embeddings with ``(N,)`` labels; every class appears at least twice."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        e = torch.randn(n, d, generator=gen, dtype=torch.float64)
        labels = torch.arange(n) % classes
        return Sample((e.to(dtype=dtype, device=device), labels.to(device)), dict(kwargs))
    return make


def views_sample(n: int = 6, d: int = 5, noise: float = 0.3, **kwargs: Any) -> SampleFn:
    """Two ``(N, D)`` views; row ``i`` of each is a noisy copy of one latent vector (the positive pair)."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        base = torch.randn(n, d, generator=gen, dtype=torch.float64)
        a = base + noise * torch.randn(n, d, generator=gen, dtype=torch.float64)
        b = base + noise * torch.randn(n, d, generator=gen, dtype=torch.float64)
        c = _cast(dtype, device)
        return Sample((c(a), c(b)), dict(kwargs), grad_args=(0, 1))
    return make


def ranking_sample(n: int = 4, length: int = 6, **kwargs: Any) -> SampleFn:
    """Scores ``(N, L)``, graded relevance ``(N, L)`` in ``{0, 1, 2, 3}`` and a bool mask (short lists padded)."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        s = torch.randn(n, length, generator=gen, dtype=torch.float64)
        rel = torch.randint(0, 4, (n, length), generator=gen).double()
        lengths = torch.randint(2, length + 1, (n,), generator=gen)
        mask = torch.arange(length)[None, :] < lengths[:, None]
        c = _cast(dtype, device)
        return Sample((c(s), c(rel), mask.to(device)), dict(kwargs))
    return make


def boxes_sample(n: int = 6, **kwargs: Any) -> SampleFn:
    """Predicted and target boxes ``(N, 4)`` as ``(x1, y1, x2, y2)`` with ``x1 < x2`` and ``y1 < y2``."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        def boxes() -> torch.Tensor:
            xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 10
            wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 5 + 0.5
            return torch.cat([xy, xy + wh], 1)
        c = _cast(dtype, device)
        return Sample((c(boxes()), c(boxes())), dict(kwargs))
    return make


def dense_sample(n: int = 2, c: int = 3, h: int = 4, w: int = 5, **kwargs: Any) -> SampleFn:
    """Dense logits ``(N, C, H, W)`` with a class map ``(N, H, W)`` (segmentation)."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        z = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64) * 2
        y = torch.randint(0, c, (n, h, w), generator=gen)
        return Sample((z.to(dtype=dtype, device=device), y.to(device)), dict(kwargs))
    return make


def parameters_sample(sizes: tuple[tuple[int, ...], ...] = ((4, 3), (3,)), **kwargs: Any) -> SampleFn:
    """A tuple of parameter (or activation) tensors, as a regulariser takes them."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        params = tuple(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
                       for s in sizes)
        return Sample((params,), dict(kwargs))
    return make


def small_model(gen: torch.Generator, d_in: int = 4, classes: int = 3, dtype: torch.dtype = torch.float64,
                device: torch.device | str = "cpu") -> nn.Module:
    """A seeded two-layer MLP ``d_in -> 8 -> classes`` for samples of model-taking losses."""
    model = nn.Sequential(nn.Linear(d_in, 8), nn.Tanh(), nn.Linear(8, classes))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
    return model.to(dtype=dtype, device=device)


def model_sample(n: int = 6, d_in: int = 4, classes: int = 3, **kwargs: Any) -> SampleFn:
    """A small seeded model, inputs ``(N, d_in)`` and class-index targets ``(N,)``."""
    def make(gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Sample:
        model = small_model(gen, d_in, classes, dtype, device)
        x = torch.randn(n, d_in, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
        y = torch.randint(0, classes, (n,), generator=gen).to(device)
        return Sample((model, x, y), dict(kwargs), grad_args=())
    return make


# --------------------------------------------------------------------------- contract errors

def _shorter_target(s: Sample) -> Sample:
    return with_arg(1, lambda y: y[..., :-1])(s)


PAIR_ERRORS = (
    ErrorCase("target of another shape", _shorter_target, ValueError,
              r"input and target must have the same shape, got"),
    ErrorCase("integer target", with_arg(1, lambda y: y.long()), TypeError,
              r"target must be a floating-point tensor, got dtype torch.int64"),
    ErrorCase("target on another device", with_arg(1, lambda y: y.to("meta")), RuntimeError,
              r"target is on device meta but input is on device cpu"),
)

LOGITS_ERRORS = (
    ErrorCase("class index out of range", label_out_of_range, ValueError, r"target class indices must lie in \[0, "),
    ErrorCase("class-index target of another shape", with_arg(1, lambda y: y[:-1]), ValueError,
              r"class-index target must have shape"),
    ErrorCase("float target of another shape", with_arg(1, lambda y: torch.zeros(len(y), 2, dtype=torch.float64)),
              (ValueError, TypeError), r"probability target must have the shape|this loss takes class-index targets"),
    ErrorCase("integer logits", with_arg(0, lambda z: z.long()), TypeError, r"must be a floating-point tensor"),
    ErrorCase("target on another device", with_arg(1, lambda y: y.to("meta")), RuntimeError,
              r"target is on device meta but \w+ is on device cpu"),
)

BINARY_ERRORS = (
    ErrorCase("target of another shape", _shorter_target, ValueError, r"must have the same shape, got"),
    ErrorCase("integer target", with_arg(1, lambda y: y.long()), TypeError,
              r"target must be a floating-point tensor, got dtype torch.int64"),
)

EMBEDDINGS_ERRORS = (
    ErrorCase("labels of another length", with_arg(1, lambda y: y[:-1]), ValueError,
              r"labels must have shape \(N,\) = "),
    ErrorCase("float labels", with_arg(1, lambda y: y.double()), TypeError, r"labels must have dtype torch.int64"),
    ErrorCase("1-D embeddings", with_arg(0, lambda e: e[:, 0]), ValueError, r"embeddings must have shape \(N, D\)"),
)

VIEWS_ERRORS = (
    ErrorCase("views of different shapes", with_arg(1, lambda b: b[:-1]), ValueError,
              r"view1 and view2 must have the same shape"),
    ErrorCase("1-D views", lambda s: Sample((s.args[0][:, 0], s.args[1][:, 0]), s.kwargs, s.grad_args), ValueError,
              r"views must have shape \(N, D\)"),
)

RANKING_ERRORS = (
    ErrorCase("relevance of another shape", with_arg(1, lambda r: r[:, :-1]), ValueError,
              r"scores and relevance must have the same shape"),
    ErrorCase("float mask", with_arg(2, lambda m: m.double()), TypeError, r"mask must have dtype torch.bool"),
    ErrorCase("negative relevance", with_arg(1, lambda r: r - 5), ValueError, r"every entry of relevance must be >= 0"),
)

BOXES_ERRORS = (
    ErrorCase("not four coordinates", lambda s: Sample((s.args[0][:, :3], s.args[1][:, :3]), s.kwargs), ValueError, r"boxes must have shape \(\.\.\., 4\)"),
    ErrorCase("x2 < x1", with_arg(1, lambda b: b[:, [2, 1, 0, 3]]), ValueError,
              r"target boxes must have x1 <= x2 and y1 <= y2"),
    ErrorCase("target of another shape", _shorter_target, ValueError, r"input and target must have the same shape"),
)

DENSE_ERRORS = (
    ErrorCase("class map of another size", with_arg(1, lambda y: y[..., :-1]), ValueError,
              r"class-index target must have shape"),
    ErrorCase("class index out of range", with_arg(1, lambda y: y + 10), ValueError, r"target class indices must lie in"),
)

PARAMETERS_ERRORS = (
    ErrorCase("a non-tensor parameter", lambda s: Sample(((1.0,) + tuple(s.args[0])[1:],), s.kwargs), TypeError,
              r"params\[0\] must be a torch.Tensor"),
)

MODEL_ERRORS = (
    ErrorCase("not a model", with_arg(0, lambda m: 3), TypeError, r"model must be callable"),
    ErrorCase("targets of another length", with_arg(2, lambda y: y[:-1]), ValueError, r"y must have shape \(N,\)"),
)


# --------------------------------------------------------------------------- the kinds

_KIND_LIST = [
    InputKind("regression", "real-valued predictions and targets of the same shape", ("input", "target"),
              pair_sample(), V.check_pair, PAIR_ERRORS),
    InputKind("distribution", "predicted distribution parameters (mean and variance or scale) and targets",
              ("input", "target", "var"), None, None, PAIR_ERRORS),
    InputKind("series", "forecasts and observed series, the last dimension is time", ("input", "target"),
              pair_sample(), V.check_pair, PAIR_ERRORS),
    InputKind("returns", "predicted and realised returns (only the sign of the prediction matters)",
              ("input", "target"), pair_sample(), V.check_pair, PAIR_ERRORS),
    InputKind("quantiles", "predictions of shape (N, Q), one column per quantile level, and targets (N,)",
              ("input", "target"), None, None, (), bench_layout="rows"),
    InputKind("logits", "unnormalised class scores (N, C) and class-index or probability targets",
              ("input", "target"), logits_sample(), V.check_logits_target, LOGITS_ERRORS,
              class_targets=True, masked_logits=True),
    InputKind("logits-only", "unnormalised class scores (N, C) with no target (a penalty on the scores)",
              ("logits",), None, None, (), masked_logits=False),
    InputKind("binary-logits", "real scores and {0, 1} (or [0, 1]) float targets of the same shape",
              ("input", "target"), binary_sample(), V.check_binary_target, BINARY_ERRORS),
    InputKind("margins", "binary margins y·f(x)", ("margin",), None, None, ()),
    InputKind("probabilities", "class probabilities on the simplex (N, C) and class-index or probability targets",
              ("probs", "target"), None, None, (), class_targets=True),
    InputKind("samples", "samples (errors and uncertainties) summarised by soft histograms",
              ("input", "target", "sigma"), None, None, (), bench_layout="rows"),
    InputKind("policy-paths", "log action probabilities along solution paths (N, T) and path depths (N,)",
              ("log_policy_path", "depth"), None, None, (), bench_layout="rows"),
    InputKind("hidden", "hidden states (N, D), an output projection (V, D) and class-index targets (N,)",
              ("hidden", "weight", "target"), None, None, (), bench_layout="hidden"),
    InputKind("embeddings", "embeddings (N, D) with class labels (N,) (metric learning)",
              ("embeddings", "labels"), embeddings_sample(), V.check_embeddings_labels, EMBEDDINGS_ERRORS,
              bench_layout="rows"),
    InputKind("paired-views", "two views (N, D) whose rows i are a positive pair (contrastive learning)",
              ("view1", "view2"), views_sample(), V.check_paired_views, VIEWS_ERRORS, bench_layout="rows"),
    InputKind("ranking", "scores (N, L), graded relevance (N, L) and a bool mask (N, L) of the valid list entries",
              ("scores", "relevance", "mask"), ranking_sample(), V.check_ranking, RANKING_ERRORS,
              bench_layout="rows"),
    InputKind("boxes", "predicted and target boxes (..., 4) as (x1, y1, x2, y2)", ("input", "target"),
              boxes_sample(), V.check_boxes, BOXES_ERRORS, bench_layout="rows-exact"),
    InputKind("dense", "dense class scores (N, C, H, W) with a class map (N, H, W) (segmentation)",
              ("input", "target"), dense_sample(), V.check_dense, DENSE_ERRORS, class_targets=True,
              masked_logits=True, bench_layout="rows"),
    InputKind("parameters", "model parameters or activations: a sequence of tensors (regularisers)",
              ("params",), parameters_sample(), V.check_tensor_sequence, PARAMETERS_ERRORS, empty=None,
              bench_layout=None),
    InputKind("model", "a model, inputs (N, ...) and class-index targets (N,): losses that call the model",
              ("model", "x", "y"), model_sample(), V.check_model_inputs, MODEL_ERRORS, empty=None,
              bench_layout=None, tensors=False),
]

KINDS: dict[str, InputKind] = {k.name: k for k in _KIND_LIST}
"""``name -> InputKind``: every input kind a registered loss may declare.

:meta hide-value:
"""


def get_kind(name: str) -> InputKind:
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown input kind {name!r}; known: {', '.join(KINDS)}") from None
