"""Input checks with messages that say what is wrong and how to fix it.

Every public loss validates its inputs with these functions; the private
``_terms`` functions that compute a loss do not, so that composites validate
once. Two kinds of checks:

* *static* checks (shape, dtype, device, Python hyperparameters) cost nothing
  and always run in eager mode;
* *value* checks (a label out of range, a negative variance, a NaN
  hyperparameter) need values on the host. They are written so that NaN fails
  them (``not (x > bound)`` rather than ``x <= bound``), and they are skipped
  while ``torch.compile`` traces and on ``meta`` tensors (which have no
  values), so that ``fullgraph=True`` compiles with no graph break, no device
  synchronisation and no guard on a hyperparameter that changes between calls.
  :func:`set_checks` (``"fast"``) switches them off for a whole process.

Hyperparameters may be Python numbers or 0-d tensors (the module twins store
tensor hyperparameters as buffers).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

CHECK_MODES = ("full", "fast")
_mode = "full"


def set_checks(mode: str) -> str:
    """Choose how much every loss checks its inputs, for the whole process; returns the old mode.

    ``"full"`` (the default) runs every check. ``"fast"`` skips the *value* checks, the ones that
    read tensor values on the host (a label out of range, a negative variance or weight, a NaN
    hyperparameter) and so synchronise with a GPU; shape, dtype and device checks still run. Like
    :func:`torch.autograd.set_detect_anomaly`, switch it on for a training loop you have already
    debugged, never while developing one: a bad value then gives a wrong loss instead of an error.
    Use :func:`checks` to switch it for one block.
    """
    global _mode
    if mode not in CHECK_MODES:
        raise ValueError(f"checks mode must be one of {CHECK_MODES}, got {mode!r}")
    old, _mode = _mode, mode
    return old


def get_checks() -> str:
    """The current checks mode, ``"full"`` or ``"fast"`` (see :func:`set_checks`)."""
    return _mode


class checks:  # noqa: N801 - used like a function, as torch.no_grad is
    """``with lossbook.validation.checks("fast"): ...`` sets the checks mode for one block."""

    def __init__(self, mode: str) -> None:
        if mode not in CHECK_MODES:
            raise ValueError(f"checks mode must be one of {CHECK_MODES}, got {mode!r}")
        self.mode = mode

    def __enter__(self) -> None:
        self.old = set_checks(self.mode)

    def __exit__(self, *exc: object) -> None:
        set_checks(self.old)


def skip_value_checks(*tensors: object) -> bool:
    """True while ``torch.compile`` traces, in ``"fast"`` checks mode, or when a given tensor is on
    ``meta`` (it has no values)."""
    if _mode == "fast" or torch.compiler.is_compiling():
        return True
    return any(isinstance(t, torch.Tensor) and t.is_meta for t in tensors)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


# --------------------------------------------------------------------------- tensors


def check_tensor(x: object, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def check_floating(x: object, name: str) -> None:
    check_tensor(x, name)
    if not x.is_floating_point():  # type: ignore[union-attr]
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "  # type: ignore[union-attr]
            f"convert it with {name}.float()"
        )


def check_same_device(**tensors: torch.Tensor | None) -> None:
    """All given tensors must live on one device; the message names both devices."""
    items = [(k, v) for k, v in tensors.items() if isinstance(v, torch.Tensor)]
    if not items:
        return
    first_name, first = items[0]
    for name, t in items[1:]:
        if t.device != first.device:
            raise RuntimeError(
                f"{name} is on device {t.device} but {first_name} is on device "
                f"{first.device}; move them to the same device"
            )


def check_same_shape(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str] = ("input", "target")) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got "
            f"{_shape(a)} and {_shape(b)}"
        )


def check_broadcastable(x: torch.Tensor, shape: torch.Size | Sequence[int], name: str, to: str = "input") -> None:
    """``x`` broadcasts *to* ``shape`` without growing it (a (5, 1) weight does not fit a (5,) loss)."""
    shape = tuple(shape)
    try:
        grown = torch.broadcast_shapes(x.shape, shape)
    except RuntimeError:
        grown = None
    if grown != shape:
        raise ValueError(
            f"{name} of shape {_shape(x)} does not broadcast to the shape of {to} {shape}"
            + ("" if grown is None else f" (broadcasting would give {tuple(grown)})")
        )


def check_pair(input: torch.Tensor, target: torch.Tensor) -> None:
    """The common contract of a regression-style loss: float tensors, same shape and device."""
    check_floating(input, "input")
    check_floating(target, "target")
    check_same_device(input=input, target=target)
    check_same_shape(input, target)


def check_weight(weight: torch.Tensor | None, shape: torch.Size | Sequence[int], ref: torch.Tensor) -> None:
    """A per-element weight: float, on ``ref``'s device, broadcasting *to* ``shape``, non-negative."""
    if weight is None:
        return
    check_floating(weight, "weight")
    check_same_device(input=ref, weight=weight)
    check_broadcastable(weight, shape, "weight", to="the loss")
    if not skip_value_checks(weight) and weight.numel() and not bool((weight >= 0).all()):
        raise ValueError("weight must be non-negative (and not NaN)")


# --------------------------------------------------------------------------- classes


def check_class_target(
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = None,
) -> None:
    """Integer class indices in ``[0, num_classes)`` (``ignore_index`` allowed)."""
    check_tensor(target, "target")
    if target.dtype != torch.long:
        raise TypeError(
            f"class-index target must have dtype torch.int64, got {target.dtype}; "
            "use target.long(), or pass float class probabilities for soft labels"
        )
    if skip_value_checks(target) or target.numel() == 0:
        return
    # Fast path: one min/max pass and one host sync; the masked copy only when something is off.
    lo, hi = torch.stack(torch.aminmax(target)).tolist()
    if lo >= 0 and hi < num_classes:
        return
    valid = target if ignore_index is None else target[target != ignore_index]
    if valid.numel() and bool(((valid < 0) | (valid >= num_classes)).any()):
        lo, hi = int(valid.min()), int(valid.max())
        raise ValueError(
            f"target class indices must lie in [0, {num_classes - 1}] for "
            f"{num_classes} classes, got values in [{lo}, {hi}]"
        )


def check_logits_target(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    name: str = "input",
    soft: bool = True,
    spatial: bool = False,
    ignore_index: int | None = None,
) -> bool:
    """Scores ``(N, C)`` (``(N, C, d1, ...)`` with ``spatial``) and a class-index or probability target.

    A class-index target is ``torch.int64`` of shape ``(N,)`` (``(N, d1, ...)``)
    with values in ``[0, C)`` or equal to ``ignore_index``; a probability target
    (only with ``soft``) has the shape of ``input``. Returns True for a
    probability target.
    """
    check_floating(input, name)
    check_tensor(target, "target")
    check_same_device(**{name: input, "target": target})
    if input.dim() < 2 or (input.dim() > 2 and not spatial):
        want = "(N, C) or (N, C, d1, ...)" if spatial else "(N, C)"
        raise ValueError(f"{name} must have shape {want}, got {_shape(input)}")
    if target.is_floating_point():
        if not soft:
            raise TypeError(
                f"this loss takes class-index targets (torch.int64), got dtype {target.dtype}; use target.long()"
            )
        if target.shape != input.shape:
            raise ValueError(
                f"a probability target must have the shape of {name} {_shape(input)}, got {_shape(target)}"
            )
        return True
    index_shape = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != index_shape:
        raise ValueError(
            f"class-index target must have shape {index_shape} for {name} of shape {_shape(input)}, "
            f"got {_shape(target)}"
        )
    check_class_target(target, input.shape[1], ignore_index)
    return False


def check_simplex(probs: torch.Tensor, name: str = "probs", dim: int = -1) -> None:
    """Value check: entries ``>= 0`` along ``dim`` summing to 1 (NaN fails)."""
    if skip_value_checks(probs) or probs.numel() == 0:
        return
    tol = max(1e-4, 8 * torch.finfo(probs.dtype).eps)
    ok = (probs >= 0).all() & ((probs.sum(dim) - 1).abs() <= tol).all()
    if not bool(ok):
        raise ValueError(f"{name} must hold probability vectors (entries >= 0, rows summing to 1, no NaN); "
                         "apply softmax to logits first")


# --------------------------------------------------------------------------- values and hyperparameters


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return repr(float(value))
        return f"a tensor with min {float(value.min()):.4g} and max {float(value.max()):.4g}"
    return repr(value)


def _interval(low: float, high: float, low_closed: bool, high_closed: bool) -> str:
    return f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"


def _all(value: object, low: float, high: float, low_closed: bool, high_closed: bool) -> bool:
    """Every entry in the interval; False for NaN (comparisons with NaN are False)."""
    if isinstance(value, torch.Tensor):
        v = value.detach().double()
        above = (v >= low) if low_closed else (v > low)
        below = (v <= high) if high_closed else (v < high)
        return bool((above & below).all())
    above = value >= low if low_closed else value > low  # type: ignore[operator]
    below = value <= high if high_closed else value < high  # type: ignore[operator]
    return bool(above and below)


def check_in_range(value: object, name: str, low: float = -math.inf, high: float = math.inf, *,
                   low_closed: bool = False, high_closed: bool = False, what: str | None = None) -> None:
    """A number, or every entry of a tensor, lies in the interval (NaN fails; the bounds may be infinite).

    With the default open interval ``(-inf, inf)`` this is a finiteness check.
    ``what`` replaces the interval in the message (``"a finite number > 0"``).
    Skipped while ``torch.compile`` traces and on meta tensors.
    """
    if torch.compiler.is_compiling():  # a traced float may be symbolic: no type or value test on it
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if isinstance(value, torch.Tensor) and (skip_value_checks(value) or value.numel() == 0):
        return  # a Python number costs no host sync: it is checked in every mode
    if not _all(value, low, high, low_closed, high_closed):
        where = "every entry of " if isinstance(value, torch.Tensor) and value.numel() > 1 else ""
        what = what or f"lie in {_interval(low, high, low_closed, high_closed)}"
        raise ValueError(f"{where}{name} must {what}, got {_describe(value)}")


def check_positive(value: object, name: str) -> None:
    """A finite number (or tensor of them) ``> 0``."""
    check_in_range(value, name, 0.0, math.inf, what="be a finite number > 0")


def check_nonnegative(value: object, name: str) -> None:
    """A finite number (or tensor of them) ``>= 0``."""
    check_in_range(value, name, 0.0, math.inf, low_closed=True, what="be a finite number >= 0")


def check_open_unit(value: object, name: str) -> None:
    """A number (or tensor of them) in the open interval ``(0, 1)``."""
    check_in_range(value, name, 0.0, 1.0, what="lie in the open interval (0, 1)")


def check_finite(value: object, name: str) -> None:
    """A finite number, or a tensor of finite entries."""
    check_in_range(value, name, what="be finite")


def check_values_above(x: torch.Tensor, bound: float, name: str, strict: bool = True) -> None:
    """Value check: every entry of ``x`` is above ``bound`` (``>=`` when not ``strict``); NaN fails."""
    if skip_value_checks(x) or x.numel() == 0:
        return
    ok = (x > bound) if strict else (x >= bound)
    if not bool(ok.all()):
        op = ">" if strict else ">="
        nan = bool(torch.isnan(x).any())
        got = "NaN" if nan else f"min {float(x.min()):.4g}"
        raise ValueError(f"every entry of {name} must be {op} {bound}, got {got}")


def check_no_nan(x: torch.Tensor, name: str) -> None:
    """Value check: no NaN entry (inf is allowed, e.g. masked logits)."""
    if skip_value_checks(x) or x.numel() == 0:
        return
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN")


def check_choice(value: object, name: str, choices: Sequence[object]) -> None:
    """``value`` is one of ``choices``; the message lists them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def check_positive_int(value: object, name: str) -> None:
    """A Python int ``>= 1``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


# --------------------------------------------------------------------------- validators of input kinds
# Each input kind (lossbook.kinds) names one of these; losses of the kind call it first.


def check_binary_target(input: torch.Tensor, target: torch.Tensor, names: tuple[str, str] = ("input", "target")) -> None:
    """Real scores and float targets in ``[0, 1]`` of the same shape (binary labels or probabilities)."""
    check_floating(input, names[0])
    check_floating(target, names[1])
    check_same_device(**{names[0]: input, names[1]: target})
    check_same_shape(input, target, names)
    check_in_range(target, names[1], 0.0, 1.0, low_closed=True, high_closed=True)


def check_embeddings_labels(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    """Embeddings ``(N, D)`` and int64 labels ``(N,)`` on one device."""
    check_floating(embeddings, "embeddings")
    check_tensor(labels, "labels")
    check_same_device(embeddings=embeddings, labels=labels)
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {_shape(embeddings)}")
    if labels.dtype != torch.long:
        raise TypeError(f"labels must have dtype torch.int64, got {labels.dtype}; use labels.long()")
    if tuple(labels.shape) != tuple(embeddings.shape[:1]):
        raise ValueError(f"labels must have shape (N,) = {tuple(embeddings.shape[:1])}, got {_shape(labels)}")


def check_paired_views(view1: torch.Tensor, view2: torch.Tensor) -> None:
    """Two views ``(N, D)`` of one batch: row ``i`` of each is a positive pair."""
    check_floating(view1, "view1")
    check_floating(view2, "view2")
    check_same_device(view1=view1, view2=view2)
    if view1.dim() != 2:
        raise ValueError(f"views must have shape (N, D), got {_shape(view1)}")
    check_same_shape(view1, view2, ("view1", "view2"))


def check_ranking(scores: torch.Tensor, relevance: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """Scores and non-negative relevance ``(N, L)``, and an optional bool mask of valid entries."""
    check_floating(scores, "scores")
    check_floating(relevance, "relevance")
    check_same_device(scores=scores, relevance=relevance, mask=mask)
    if scores.dim() != 2:
        raise ValueError(f"scores must have shape (N, L), got {_shape(scores)}")
    check_same_shape(scores, relevance, ("scores", "relevance"))
    if mask is not None:
        check_tensor(mask, "mask")
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must have dtype torch.bool, got {mask.dtype}; use mask.bool()")
        check_same_shape(scores, mask, ("scores", "mask"))
    check_values_above(relevance, 0.0, "relevance", strict=False)


def check_boxes(input: torch.Tensor, target: torch.Tensor) -> None:
    """Predicted and target boxes ``(..., 4)`` as ``(x1, y1, x2, y2)``; target boxes must be well formed."""
    check_pair(input, target)
    if input.dim() < 1 or input.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (..., 4) as (x1, y1, x2, y2), got {_shape(input)}")
    if skip_value_checks(target) or target.numel() == 0:
        return
    ok = (target[..., 2] >= target[..., 0]) & (target[..., 3] >= target[..., 1])
    if not bool(ok.all()):
        raise ValueError("target boxes must have x1 <= x2 and y1 <= y2 (format (x1, y1, x2, y2)), and no NaN")


def check_dense(input: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> bool:
    """Dense scores ``(N, C, H, W, ...)`` with a class map ``(N, H, W, ...)`` or probability maps."""
    if isinstance(input, torch.Tensor) and input.dim() < 3:
        raise ValueError(f"input must have shape (N, C, d1, ...), got {_shape(input)}")
    return check_logits_target(input, target, spatial=True, ignore_index=ignore_index)


def check_tensor_sequence(params: object, name: str = "params") -> None:
    """A non-empty sequence of floating-point tensors on one device (or one tensor)."""
    items = [params] if isinstance(params, torch.Tensor) else list(params)  # type: ignore[call-overload]
    if not items:
        raise ValueError(f"{name} must hold at least one tensor")
    for i, p in enumerate(items):
        check_floating(p, f"{name}[{i}]")
    check_same_device(**{f"{name}[{i}]": p for i, p in enumerate(items)})


def check_model_inputs(model: object, x: torch.Tensor, y: torch.Tensor, num_classes: int | None = None) -> None:
    """A callable model, a float input batch and class-index targets of the batch's length."""
    if not callable(model):
        raise TypeError(f"model must be callable (an nn.Module or a function), got {type(model).__name__}")
    check_floating(x, "x")
    check_tensor(y, "y")
    check_same_device(x=x, y=y)
    if x.dim() < 1:
        raise ValueError("x must be a batch of shape (N, ...), got a 0-d tensor")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape (N,) = ({x.shape[0]},), got {_shape(y)}")
    if num_classes is not None:
        check_class_target(y, num_classes)
