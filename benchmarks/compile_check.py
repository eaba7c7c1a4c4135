"""torch.compile (inductor) for every registered loss: values and gradients equal eager.

    python3 benchmarks/compile_check.py --device cuda [--losses a,b] [--budget 240]

For each loss the registry sample (float32, on the device) is run eagerly and through
``torch.compile(fn)`` (default inductor backend); forward values and the gradients of the
``grad_args`` must agree within rtol = atol = 1e-4. Prints one line per loss and a summary; the
exit status is 1 when a loss fails (a loss the registry marks ``compile=False`` is skipped).
``--budget`` (seconds) stops starting new losses when it is spent (the rest are reported as not
run), so a prepared GPU check stays within its time.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lossbook.registry import all_losses  # noqa: E402


def check(spec, device: torch.device) -> tuple[str, str, float]:
    if not spec.compile:
        return "skip", "registry: compile=False", 0.0
    red = "mean" if "mean" in spec.reductions else spec.reductions[0]
    s = spec.sample(torch.Generator().manual_seed(0), torch.float32, device)

    def leaves():
        return [a.detach().clone().requires_grad_(i in s.grad_args) for i, a in enumerate(s.args)]

    def run(fn):
        args = leaves()
        out = fn(*args)
        grads = torch.autograd.grad(out, [args[i] for i in s.grad_args], allow_unused=True)
        return out.detach(), grads

    def loss(*args):
        return spec.fn(*args, **s.kwargs, reduction=red)

    eager = run(loss)
    torch._dynamo.reset()
    t0 = time.perf_counter()
    try:
        compiled = run(torch.compile(loss))
    except Exception as exc:  # report, do not stop the check
        return "FAIL", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160], 0.0
    dt = time.perf_counter() - t0
    try:
        torch.testing.assert_close(compiled[0], eager[0], rtol=1e-4, atol=1e-4)
        for g_c, g_e in zip(compiled[1], eager[1]):
            if g_e is not None:
                torch.testing.assert_close(g_c, g_e, rtol=1e-4, atol=1e-4)
    except AssertionError as exc:
        return "FAIL", "mismatch: " + " ".join(str(exc).split())[:140], dt
    return "ok", "", dt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--losses", default="")
    p.add_argument("--budget", type=float, default=0.0, help="seconds; 0 = no limit")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    wanted = {n for n in args.losses.split(",") if n}
    specs = [s for s in all_losses() if not wanted or s.name in wanted]
    start = time.perf_counter()
    counts = {"ok": 0, "FAIL": 0, "skip": 0, "not run": 0}
    for spec in specs:
        if args.budget and time.perf_counter() - start > args.budget:
            status, note, dt = "not run", "time budget spent", 0.0
        else:
            status, note, dt = check(spec, device)
        counts[status] += 1
        print(f"compile {device.type:4s} {spec.name:30s} {status:7s} {dt:6.1f}s {note}", flush=True)
    print(f"compile check on {device}: " + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f" ({time.perf_counter() - start:.0f} s)")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
