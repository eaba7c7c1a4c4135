"""Input checks with messages that say what is wrong and how to fix it.

Two kinds of checks:

* *static* checks (shape, dtype, device, Python hyperparameters) cost nothing
  and always run;
* *value* checks (a label out of range, a negative variance) need the tensor's
  values on the host. They run in eager mode and are skipped while
  ``torch.compile`` traces, so that ``fullgraph=True`` compiles without a
  graph break or a device synchronisation.
"""

from __future__ import annotations

import math

import torch


def _tracing() -> bool:
    return torch.compiler.is_compiling()


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_tensor(x: object, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def check_floating(x: torch.Tensor, name: str) -> None:
    check_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
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


def check_broadcastable(x: torch.Tensor, shape: torch.Size, name: str, to: str = "input") -> None:
    try:
        torch.broadcast_shapes(x.shape, shape)
    except RuntimeError:
        raise ValueError(
            f"{name} of shape {_shape(x)} does not broadcast to the shape of {to} {tuple(shape)}"
        ) from None


def check_pair(input: torch.Tensor, target: torch.Tensor) -> None:
    """The common contract of a regression-style loss: float tensors, same shape and device."""
    check_floating(input, "input")
    check_floating(target, "target")
    check_same_device(input=input, target=target)
    check_same_shape(input, target)


def check_weight(weight: torch.Tensor | None, shape: torch.Size, ref: torch.Tensor) -> None:
    if weight is None:
        return
    check_floating(weight, "weight")
    check_same_device(input=ref, weight=weight)
    check_broadcastable(weight, shape, "weight", to="the loss")
    if not _tracing() and bool((weight < 0).any()):
        raise ValueError("weight must be non-negative")


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
    if _tracing() or target.numel() == 0:
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


def check_positive(value: float, name: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_nonnegative(value: float, name: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def check_open_unit(value: float, name: str) -> None:
    if not (isinstance(value, (int, float)) and 0 < value < 1):
        raise ValueError(f"{name} must lie in the open interval (0, 1), got {value!r}")


def check_values_above(x: torch.Tensor, bound: float, name: str, strict: bool = True) -> None:
    """Value check (eager only): every entry of ``x`` is above ``bound``."""
    if _tracing() or x.numel() == 0:
        return
    bad = (x <= bound) if strict else (x < bound)
    if bool(bad.any()):
        op = ">" if strict else ">="
        raise ValueError(f"every entry of {name} must be {op} {bound}, got min {float(x.min()):.4g}")
