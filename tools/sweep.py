"""Adversarial sweep: every registered loss against the bad (and the awkward but valid) inputs of a careless user.

    .venv/bin/python tools/sweep.py            # the table, then every case that is not clean
    .venv/bin/python tools/sweep.py --names    # also list every case tried

Each case is a call and what it must do:

* a *bad* call (NaN hyperparameter, weight that would grow the loss, label out of range, integer input,
  other device, 0-d input, ...) must raise an error raised by lossbook's own checks that names the
  argument: **clear error**. Returning a value is **silent**; a crash from inside torch, or a message that
  does not name the argument, is **unhelpful**.
* an *awkward valid* call (meta tensors, masked -inf logits, zero logits, empty batch, half precision,
  strided inputs, torch.compile with dynamic shapes or a changing hyperparameter, tensor hyperparameters in
  the module twin, extreme values against the float64 reference, second derivatives, C = 1) must give the
  right answer: **correct**. A wrong answer (NaN, inf, another shape, another value) is **silent**; a crash is
  **unhelpful**. A call that refuses with a clear message (masked -inf refused by name, double backward refused
  by name) counts as a clear error.

The target is 0 silent and 0 unhelpful. The categories are the defect classes of the generic test suite
(tests/test_generic.py), which keeps each of them fixed from then on.
"""

from __future__ import annotations

import collections
import math
import pathlib
import sys
import traceback
import warnings
from typing import Any, Callable

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lossbook.check import call, cast, draw, with_grad  # noqa: E402
from lossbook.registry import LossSpec, Sample, all_losses, all_modules  # noqa: E402

PACKAGE = str(ROOT / "lossbook")
OUTCOMES = ("clear error", "correct", "silent", "unhelpful")


class Wrong(Exception):
    """A valid call gave a wrong answer (the message says what)."""


def raised_by_lossbook(err: BaseException) -> bool:
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(PACKAGE)


def bad(run: Callable[[], Any], names: tuple[str, ...]) -> tuple[str, str]:
    """A call that must be refused with a message naming one of ``names``."""
    try:
        out = run()
    except (ValueError, TypeError, RuntimeError) as err:
        msg = str(err)
        if raised_by_lossbook(err) and any(n in msg for n in names):
            return "clear error", msg[:100]
        return "unhelpful", f"{type(err).__name__}: {msg[:100]}"
    except Exception as err:  # noqa: BLE001
        return "unhelpful", f"{type(err).__name__}: {str(err)[:100]}"
    return "silent", f"returned {_short(out)}"


def valid(run: Callable[[], None], refusals: tuple[str, ...] = ()) -> tuple[str, str]:
    """A call that must give the right answer (``run`` raises Wrong otherwise) or refuse naming ``refusals``."""
    try:
        run()
    except Wrong as err:
        return "silent", str(err)[:120]
    except (ValueError, TypeError, RuntimeError) as err:
        msg = str(err)
        if refusals and raised_by_lossbook(err) and any(r in msg for r in refusals):
            return "clear error", msg[:100]
        if refusals and any(r in msg for r in refusals) and "once_differentiable" in "".join(traceback.format_tb(
                err.__traceback__)) + msg:
            return "clear error", msg[:100]
        return "unhelpful", f"{type(err).__name__}: {msg[:100]}"
    except Exception as err:  # noqa: BLE001
        return "unhelpful", f"{type(err).__name__}: {str(err)[:100]}"
    return "correct", ""


def _short(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return f"tensor{tuple(out.shape)} {out.flatten()[:3].tolist() if out.device.type != 'meta' else 'meta'}"
    return repr(out)[:60]


def close(got: torch.Tensor, want: torch.Tensor, what: str, rtol: float = 1e-5, atol: float = 1e-7) -> None:
    if not isinstance(got, torch.Tensor):
        raise Wrong(f"{what}: returned {type(got).__name__}")
    if got.shape != want.shape:
        raise Wrong(f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if not torch.allclose(got.double(), want.double(), rtol=rtol, atol=atol, equal_nan=False):
        diff = (got.double() - want.double()).abs().max()
        raise Wrong(f"{what}: off by {float(diff):.3g} ({_short(got)} vs {_short(want)})")


def finite(t: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise Wrong(f"{what}: non-finite {_short(t)}")


def red0(spec: LossSpec) -> str:
    return "sum" if "sum" in spec.reductions else spec.reductions[0]


def replace(s: Sample, i: int, value: Any) -> Sample:
    args = list(s.args)
    args[i] = value
    return Sample(tuple(args), s.kwargs, s.grad_args)


# --------------------------------------------------------------------------- the cases


def cases(spec: LossSpec):
    s = draw(spec)
    kind = spec.kind
    arg_names = kind.args
    r = "none" if "none" in spec.reductions else spec.reductions[0]
    ref_out = call(spec, s, reduction=r)

    # hyperparameters
    for key, value in s.kwargs.items():
        is_float = isinstance(value, float) or (isinstance(value, torch.Tensor) and value.is_floating_point())
        if not is_float:
            continue
        nan = math.nan if isinstance(value, float) else torch.full_like(value, math.nan)
        yield "NaN hyperparameter", f"{key}=nan", bad(lambda k=key, v=nan: call(spec, Sample(
            s.args, {**s.kwargs, k: v}, s.grad_args)), (key,))
        for inf in (math.inf, -math.inf):
            v = inf if isinstance(value, float) else torch.full_like(value, inf)

            def run_inf(k=key, v=v):
                try:
                    out = call(spec, Sample(s.args, {**s.kwargs, k: v}, s.grad_args))
                except (ValueError, TypeError) as err:
                    if raised_by_lossbook(err) and k in str(err):
                        return
                    raise
                finite(out, f"{k}={v}")
            yield "infinite hyperparameter", f"{key}={inf}", valid(run_inf)

    # the reduction, the kind's contract and the record's own error cases
    yield "bad reduction", "reduction='average'", bad(lambda: call(spec, s, reduction="average"), ("reduction",))
    for case in (*kind.errors, *spec.errors):
        def run_case(case=case):
            try:
                out = call(spec, case.make(s))
            except case.exception as err:
                import re
                if not re.search(case.match, str(err)):
                    raise RuntimeError(f"message does not say {case.match!r}: {err}") from None
                raise
            return out
        yield "contract and record errors", case.description, bad(run_case, ("",))

    # weights
    if spec.weighted:
        shape = tuple(ref_out.shape)
        trap = (shape[0], 1) if len(shape) == 1 else (2, *shape)
        yield "weight shape", f"weight{trap} on loss{shape}", bad(
            lambda: call(spec, s, weight=torch.rand(trap, dtype=torch.float64)), ("weight",))
        yield "weight values", "NaN weight", bad(
            lambda: call(spec, s, weight=torch.full((), math.nan, dtype=torch.float64)), ("weight",))
        yield "weight values", "negative weight", bad(
            lambda: call(spec, s, weight=-torch.ones((), dtype=torch.float64)), ("weight",))

    # dtype, device, shape, type of the positional arguments
    for i, a in enumerate(s.args):
        name = arg_names[i] if i < len(arg_names) else f"argument {i}"
        if not isinstance(a, torch.Tensor):
            continue
        if a.is_floating_point():
            yield "integer input", f"{name} as int64", bad(lambda i=i, a=a: call(spec, replace(s, i, a.long())),
                                                           (name, "dtype", "int64"))
        if i > 0:
            yield "other device", f"{name} on meta", bad(lambda i=i, a=a: call(spec, replace(s, i, a.to("meta"))),
                                                          ("device",))
        yield "not a tensor", f"{name} as a list", bad(lambda i=i, a=a: call(spec, replace(s, i, a.tolist())),
                                                        (name, "Tensor"))
        if a.dim() >= 1 and len(s.args) > 1:  # a lone 0-d argument of an elementwise loss is valid
            yield "0-d input", f"{name} 0-d", bad(lambda i=i, a=a: call(spec, replace(s, i, a.reshape(-1)[0])),
                                                   (name, "shape", "dim"))
    if kind.class_targets and not s.args[1].is_floating_point():
        c = s.args[0].shape[1]
        yield "label out of range", "label C", bad(
            lambda: call(spec, replace(s, 1, torch.full_like(s.args[1], c))), ("target", "class"))
        yield "label out of range", "label -1", bad(
            lambda: call(spec, replace(s, 1, torch.full_like(s.args[1], -1))), ("target", "class"))

    # awkward but valid
    def run_meta():
        meta = Sample(tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in s.args),
                      {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in s.kwargs.items()})
        out = call(spec, meta, reduction=r)
        if out.device.type != "meta" or out.shape != ref_out.shape:
            raise Wrong(f"meta gave {out.device} {tuple(out.shape)}")
    yield "meta tensors", "all on meta", valid(run_meta)

    if kind.masked_logits and spec.gradient != "none":
        def run_masked():
            z, y, *rest = s.args
            keep = y != 0
            z, y = z[keep].clone().requires_grad_(False), y[keep]
            z[:, 0] = -math.inf
            z.requires_grad_(True)
            rest = [t[keep] if isinstance(t, torch.Tensor) and t.dim() and t.shape[0] == len(keep) else t for t in rest]
            out = spec.fn(z, y, *rest, **s.kwargs, reduction=red0(spec))
            finite(out, "masked loss")
            out.backward()
            finite(z.grad, "masked gradient")
        yield "masked -inf logits", "class 0 at -inf", valid(run_masked, ("inf",))

        def run_zero():
            z = torch.zeros_like(s.args[0]).requires_grad_(True)
            out = spec.fn(z, *s.args[1:], **s.kwargs, reduction=red0(spec))
            (g,) = torch.autograd.grad(out, z)
            finite(g, "gradient at zero logits")
            if float(g.abs().max()) > 1e3:
                raise Wrong(f"gradient at zero logits is {float(g.abs().max()):.3g}")
        yield "zero logits", "all-zero logits", valid(run_zero)

        if s.args[0].dim() == 2 and not s.args[1].is_floating_point():
            def run_one_class():
                z = s.args[0][:, :1].clone()
                try:
                    out = spec.fn(z, torch.zeros_like(s.args[1]), *s.args[2:], **s.kwargs, reduction=red0(spec))
                except ValueError as err:
                    if raised_by_lossbook(err):
                        return
                    raise
                finite(out, "C = 1")
            yield "C = 1", "one class", valid(run_one_class)

    if kind.empty == "zero" and "none" in spec.reductions:
        def run_empty():
            n = s.args[0].shape[0]
            e = Sample(tuple(a[:0] if isinstance(a, torch.Tensor) and a.dim() and a.shape[0] == n else a
                             for a in s.args), s.kwargs)
            for red in ("mean", "sum"):
                out = call(spec, e, reduction=red)
                if out.shape != () or float(out) != 0.0:
                    raise Wrong(f"empty batch {red} gave {_short(out)}")
        yield "empty batch", "N = 0", valid(run_empty)

    for dtype in (torch.float16, torch.bfloat16):
        def run_half(dtype=dtype):
            out = call(spec, cast(s, dtype))
            if out.dtype != dtype:
                raise Wrong(f"{dtype} in, {out.dtype} out")
            want = call(spec, s)
            finite(out, str(dtype))
            close(out, want.to(out.dtype), str(dtype), rtol=5e-2, atol=5e-2)
        yield "half precision", str(dtype).replace("torch.", ""), valid(run_half)

    def run_strided():
        def strided(t):
            return t.t().contiguous().t() if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.is_floating_point() else t
        close(call(spec, Sample(tuple(strided(a) for a in s.args), s.kwargs)), call(spec, s), "strided")
    yield "non-contiguous", "transposed strides", valid(run_strided)

    if spec.compile:
        def run_dynamic():
            torch._dynamo.reset()
            f = torch.compile(spec.fn, fullgraph=True, backend="eager", dynamic=True)
            close(f(*s.args, **s.kwargs), call(spec, s), "compiled (dynamic)")
        yield "compile", "fullgraph dynamic=True", valid(run_dynamic)
        floats = {k: v for k, v in s.kwargs.items() if isinstance(v, float)}
        if floats:
            def run_schedule():
                torch._dynamo.reset()
                f = torch.compile(spec.fn, fullgraph=True, backend="eager")
                for factor in (1.0, 1.1, 1.2):
                    kw = {**s.kwargs, **{k: v * factor for k, v in floats.items()}}
                    close(f(*s.args, **kw), spec.fn(*s.args, **kw), f"compiled, hyperparameters x{factor}")
            yield "compile", "hyperparameter changes between calls", valid(run_schedule)

    if spec.module is not None:
        floats = {k: v for k, v in s.kwargs.items() if isinstance(v, float)}
        if floats:
            def run_twin():
                m = spec.module(**{**s.kwargs, **{k: torch.tensor(v, dtype=torch.float64) for k, v in floats.items()}})
                close(m(*s.args), call(spec, s), "twin with tensor hyperparameters")
            yield "twin tensor hyperparameters", ",".join(floats), valid(run_twin)

    if spec.extreme is not None and spec.reference is not None:
        def run_extreme():
            e = spec.extreme(torch.Generator().manual_seed(0), torch.float32, torch.device("cpu"))
            got = call(spec, e, reduction=spec.reference_reduction).double()
            e64 = cast(e, torch.float64)
            want = torch.as_tensor(spec.reference(*e64.args, **e64.kwargs), dtype=torch.float64).reshape(got.shape)
            ok = torch.isfinite(want)
            scale = 1 + float(want[ok].abs().max()) if ok.any() else 1.0
            close(got[ok], want[ok], "extreme vs float64 reference", rtol=1e-4, atol=1e-4 * scale)
        yield "extreme values", "float32 extremes vs float64", valid(run_extreme)

    if spec.gradient in {"exact"}:
        def run_second_order():
            # H·v by double backward against central differences of the gradient along v (all grad args at once).
            g = with_grad(s)
            xs = [g.args[i] for i in g.grad_args]
            out = spec.fn(*g.args, **g.kwargs, reduction=red0(spec))
            grads = torch.autograd.grad(out, xs, create_graph=True)
            gen = torch.Generator().manual_seed(1)
            vs = [torch.randn(x.shape, generator=gen, dtype=x.dtype) for x in xs]
            dot = sum((gr * v).sum() for gr, v in zip(grads, vs))
            if dot.requires_grad:
                hv = torch.autograd.grad(dot, xs, allow_unused=True)
                hv = [torch.zeros_like(x) if h is None else h for x, h in zip(xs, hv)]
            else:  # the gradient does not depend on the inputs: a zero Hessian, if the loss is linear
                hv = [torch.zeros_like(x) for x in xs]
            h = 1e-5
            plus, minus = list(s.args), list(s.args)
            for i, v in zip(g.grad_args, vs):
                plus[i], minus[i] = s.args[i] + h * v, s.args[i] - h * v
            for k, hvx in enumerate(hv):
                fd = (_grads_at(spec, plus, g.grad_args, s)[k] - _grads_at(spec, minus, g.grad_args, s)[k]) / (2 * h)
                close(hvx, fd, "Hessian-vector product vs finite differences", rtol=1e-3, atol=1e-4)
        yield "second order", "Hessian-vector product", valid(run_second_order, ("double backward", "twice",
                                                                                 "second", "differentiable"))


def _grads_at(spec: LossSpec, args: list, idxs: tuple[int, ...], s: Sample) -> list[torch.Tensor]:
    args = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
    for i in idxs:
        args[i].requires_grad_(True)
    out = spec.fn(*args, **s.kwargs, reduction=red0(spec))
    return list(torch.autograd.grad(out, [args[i] for i in idxs]))


def module_cases(mspec):
    case = mspec.sample(torch.Generator().manual_seed(0), torch.float64, torch.device("cpu"))
    for err in mspec.errors:
        def run(err=err):
            m = mspec.cls(**case.init)
            before = {k: getattr(m, k).clone() for k in mspec.state}
            b = err.make(case.forward)
            try:
                m(*b.args, **b.kwargs)
            except (ValueError, TypeError, RuntimeError) as e:
                changed = [k for k in before if not torch.equal(before[k], getattr(m, k))]
                if changed:
                    raise Wrong(f"state {changed} changed by a call that raised") from e
                raise
            raise Wrong("bad call returned")
        yield "module bad call", err.description, valid_or_refused(run)


def valid_or_refused(run):
    try:
        run()
    except Wrong as err:
        return "silent", str(err)
    except (ValueError, TypeError, RuntimeError) as err:
        return ("clear error", str(err)[:100]) if raised_by_lossbook(err) else ("unhelpful", str(err)[:100])
    return "silent", "returned"


def main(argv: list[str]) -> int:
    warnings.simplefilter("ignore")
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    bad_cases = []
    names = "--names" in argv
    specs = [s for s in all_losses() if s.kind.tensors]
    for spec in specs:
        try:
            found = list(cases(spec))
        except Exception as err:  # noqa: BLE001  (the registered sample itself fails)
            found = [("registered sample", "valid sample", ("unhelpful", f"{type(err).__name__}: {err}"[:100]))]
        for category, what, (outcome, detail) in found:
            table[category][outcome] += 1
            if outcome in ("silent", "unhelpful"):
                bad_cases.append((spec.name, category, what, outcome, detail))
            elif names:
                print(f"  {spec.name:28s} {category:26s} {what:34s} {outcome}")
    for mspec in all_modules():
        for category, what, (outcome, detail) in module_cases(mspec):
            table[category][outcome] += 1
            if outcome in ("silent", "unhelpful"):
                bad_cases.append((mspec.name, category, what, outcome, detail))
    total: collections.Counter = collections.Counter()
    print(f"{len(specs)} losses and {len(all_modules())} modules\n")
    print(f"| {'category':28s} | tried | clear error | correct | silent | unhelpful |")
    print(f"|{'-' * 30}|------:|------------:|--------:|-------:|----------:|")
    for category, counts in table.items():
        total += counts
        print(f"| {category:28s} | {sum(counts.values()):5d} | {counts['clear error']:11d} | {counts['correct']:7d} | "
              f"{counts['silent']:6d} | {counts['unhelpful']:9d} |")
    print(f"| {'**total**':28s} | {sum(total.values()):5d} | {total['clear error']:11d} | {total['correct']:7d} | "
          f"{total['silent']:6d} | {total['unhelpful']:9d} |")
    if bad_cases:
        print("\nnot clean:")
        for row in bad_cases:
            print("  " + " | ".join(row))
    return 0 if not bad_cases else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
