"""lossbook benchmark suite: every registered loss against torch and peer libraries.

Usage::

    python3 benchmarks/run.py                        # small, medium, large on CPU (+ torch.compile at medium)
    python3 benchmarks/run.py --quick                # ~1 minute: small + medium, 3 repeats, no compile
    python3 benchmarks/run.py --sizes medium --device cuda
    python3 benchmarks/run.py --linear-ce            # only the large-vocabulary linear cross-entropy case
    python3 benchmarks/run.py --losses focal_loss,gce_loss   # a subset (comma-separated names)

What is measured
----------------
For every loss in ``lossbook.registry.all_losses()`` (whatever is registered when the command
runs) and every requested size:

* **inputs** — the loss's registry sample scaled up by a size-aware builder per input kind
  (``benchmarks/inputs.py``; small/medium/large are 128x32, 2048x128 and 8192x256 elements, or
  N·D·V = 128·32·512, 1024·64·4096 and 2048·128·8192 for the linear cross-entropy). Losses of an
  input kind with no builder are skipped with a printed reason.
* **reference** — the record's ``equivalent`` (see ``benchmarks/references.py``): an exact torch built-in
  (``builtin``), a peer library (``peer``: kornia, entmax, torchmetrics), the materialised
  version (``naive``), or, for a loss with neither, a ``baseline`` of ``F.cross_entropy`` (class
  kinds) / ``F.mse_loss`` (other kinds) on the same input, reported as a *cost multiple*.
* **time** — one training step, forward with ``reduction="mean"`` and ``backward()``, float32.
  Both implementations run in the same process, after two warm-up steps, *interleaved*
  (lossbook, reference, reference, lossbook, ...) over ``--repeats`` rounds; each round times
  enough back-to-back steps to last ``--min-time`` seconds. The ratio is the median over rounds
  of the paired ratio lossbook/reference, which cancels slow drifts of a shared machine. With
  ``--compile`` (default, medium size only) both sides are also wrapped in ``torch.compile``
  (inductor) and timed the same way.
* **peak memory** — the largest amount of tensor memory held at once during one step, above
  what was held before it (inputs excluded, gradients included). CPU: a ``torch.profiler`` run
  with ``profile_memory=True``; every allocation and free of the CPU allocator is an event with a
  signed byte count, and the peak is the maximum of their running sum in time order. CUDA:
  ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus the memory
  allocated before the step.
* **accuracy** — at the small size, the float32 output of lossbook and of the reference against
  the registry's float64 oracle (``spec.reference``) on the same inputs: the max abs difference
  per element when both give ``reduction="none"``, else the difference of the means.

Targets (judged at medium and large; the small size is dominated by Python overhead of argument
validation, a few tens of microseconds, and is reported only): ``builtin`` <= 1.1x, ``peer``
<= 1.0x and an error at most 2x the peer's (+1e-6), ``naive`` <= 1.5x, ``baseline`` <= 3x for
elementwise/row-wise kinds (none for series metrics, histograms and search paths).

Threads: on CPU the suite runs with ``torch.set_num_threads(1)`` unless ``--threads`` says
otherwise. On a machine shared with other jobs, an intra-op parallel region waits until all its
threads are scheduled, so a 2-thread step of a 0.5 ms loss can take 80 ms; one thread measures
the kernels, not the scheduler. Ratios are what matter, and both sides get the same threads.

Results: a table on stdout and ``benchmarks/results/<device>.csv`` and ``.json``
(``<device>_quick.*`` with ``--quick``; ``linear_ce_<device>.*`` for ``--linear-ce``). Timings
on a shared machine are noisy: the JSON records the thread count and the load average before
and after the run. A full run (all losses, all sizes, not ``--quick``) and a ``--linear-ce``
run also publish what the book's performance appendix reads into the package data,
``lossbook/tables/benchmarks_<device>.csv`` (the rows) and ``benchmarks_<device>.json`` (the
run's metadata and the linear-CE case), found through ``lossbook.book.table_path``, so the
appendix runs wherever lossbook is installed; ``--publish`` does only that, from the files in
``benchmarks/results/``.

The linear cross-entropy case (``--linear-ce``): N=8192 rows, D=256, V=32768 classes, float32;
the naive ``F.cross_entropy(hidden @ weight.T, target)`` materialises 1 GiB of logits (plus its
softmax and gradient); lossbook's ``linear_cross_entropy`` must use at most 1/4 of the naive
peak memory and at most 1.5x its time.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import gc
import json
import os
import pathlib
import platform
import statistics
import sys
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lossbook  # noqa: E402,F401
from lossbook.registry import LossSpec, Sample, all_losses  # noqa: E402

from inputs import LINEAR_CE_CASE, SIZES, Unsupported, as_leaves, build, linear_ce_case  # noqa: E402
from references import Reference, reference_for, target_for  # noqa: E402

RESULTS = HERE / "results"
TABLES = HERE.parent / "lossbook" / "tables"
JUDGED_SIZES = ("medium", "large")
COLUMNS = ["loss", "chapter", "kind", "size", "shape", "category", "reference", "lb_ms", "ref_ms", "ratio",
           "lb_peak_bytes", "ref_peak_bytes", "mem_ratio", "lb_ms_compiled", "ref_ms_compiled", "ratio_compiled",
           "err_lb", "err_ref", "acc_mode", "target", "status", "note"]


# ----------------------------------------------------------------------------- measurement


class Device:
    def __init__(self, name: str):
        self.device = torch.device(name)
        self.cuda = self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def peak_bytes(self, step) -> int:
        """Peak tensor memory above the starting level during one call of ``step``."""
        gc.collect()
        if self.cuda:
            self.sync()
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            step()
            self.sync()
            return int(torch.cuda.max_memory_allocated(self.device) - base)
        return cpu_peak_bytes(step)


@contextlib.contextmanager
def _quiet_stderr():
    """Kineto prints two trace lines to fd 2 per profiler session; keep the table readable."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def cpu_peak_bytes(step) -> int:
    """Running sum of the CPU allocator's signed allocation events (torch.profiler, profile_memory=True)."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    cpu = torch._C._autograd.DeviceType.CPU
    events = [(e.start_ns(), i, e.nbytes()) for i, e in enumerate(prof.profiler.kineto_results.events())
              if e.name() == "[memory]" and e.device_type() == cpu]
    events.sort()
    level = peak = 0
    for _, _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return int(peak)


def make_step(call, sample: Sample):
    leaves = [sample.args[i] for i in sample.grad_args if sample.args[i].requires_grad]

    def step():
        for t in leaves:
            t.grad = None
        out = call(*sample.args)
        if out.requires_grad:
            out.backward()
        return out

    def clear():
        for t in leaves:
            t.grad = None

    step.clear = clear  # type: ignore[attr-defined]
    return step


def time_interleaved(steps: dict, dev: Device, repeats: int, min_time: float) -> dict[str, list[float]]:
    """Per-call seconds of each step, ``repeats`` interleaved rounds after warm-up."""
    for f in steps.values():
        f()
        f()
    dev.sync()
    inner = {}
    for k, f in steps.items():
        t0 = time.perf_counter()
        f()
        dev.sync()
        dt = time.perf_counter() - t0
        inner[k] = max(1, min(2000, int(min_time / max(dt, 1e-7))))
    times: dict[str, list[float]] = {k: [] for k in steps}
    keys = list(steps)
    for r in range(repeats):
        for k in (keys if r % 2 == 0 else keys[::-1]):
            f, n = steps[k], inner[k]
            dev.sync()
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            dev.sync()
            times[k].append((time.perf_counter() - t0) / n)
    return times


def paired_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


# ----------------------------------------------------------------------------- one loss


def _reduction(spec: LossSpec) -> str:
    return "mean" if "mean" in spec.reductions else spec.reductions[0]


def _callables(spec: LossSpec, ref: Reference, sample: Sample):
    kwargs, red, grad_args = sample.kwargs, _reduction(spec), sample.grad_args

    def lb(*args):
        return spec.fn(*args, **kwargs, reduction=red)

    def rf(*args):
        return ref.fn(Sample(args, kwargs, grad_args), "mean")

    return lb, rf


def accuracy(spec: LossSpec, ref: Reference, sample: Sample) -> tuple[float | None, float | None, str]:
    """Float32 lossbook / reference against the registry's float64 oracle on the same inputs."""
    s64 = as_leaves(sample, torch.float64)
    s32 = as_leaves(sample, torch.float32)
    with torch.no_grad():
        oracle = torch.as_tensor(spec.reference(*s64.args, **s64.kwargs), dtype=torch.float64).cpu()
        rr = spec.reference_reduction
        lb = spec.fn(*s32.args, **s32.kwargs, reduction=rr).double().cpu()
        if rr == "none" and ref.category != "baseline":
            r = ref.fn(s32, "none")
            if r is not None and r.numel() == oracle.numel():
                o = oracle.reshape(lb.shape)
                return float((lb - o).abs().max()), float((r.double().cpu().reshape(lb.shape) - o).abs().max()), "elem"
        if rr == "none":
            o = oracle.reshape(lb.shape)
            if ref.category == "baseline":
                return float((lb - o).abs().max()), None, "elem"
            lb_m, o_m = spec.fn(*s32.args, **s32.kwargs, reduction="mean").double().cpu(), o.mean()
        else:
            lb_m, o_m = lb, oracle.reshape(lb.shape)
            if rr != "mean":
                return float((lb - o_m).abs().max()), None, rr
        err_ref = None
        if ref.category != "baseline":
            r = ref.fn(s32, "mean")
            err_ref = None if r is None else float((r.double().cpu() - o_m).abs())
        return float((lb_m - o_m).abs()), err_ref, "mean"


def bench_loss(spec: LossSpec, size: str, dev: Device, args) -> dict:
    row = {"loss": spec.name, "chapter": spec.chapter, "kind": spec.input_kind, "size": size}
    try:
        built = build(spec, size, torch.float32, dev.device)
    except Unsupported as exc:
        return {**row, "status": "skip", "note": str(exc)}
    sample = as_leaves(built.sample)
    ref = reference_for(spec, sample)
    target = target_for(ref, spec.input_kind)
    row.update(shape=built.shape, category=ref.category, reference=ref.label, target=target)
    notes = []
    lb, rf = _callables(spec, ref, sample)
    lb_step, ref_step = make_step(lb, sample), make_step(rf, as_leaves(built.sample))
    times = time_interleaved({"lb": lb_step, "ref": ref_step}, dev, args.repeats, args.min_time)
    row["lb_ms"] = 1e3 * statistics.median(times["lb"])
    row["ref_ms"] = 1e3 * statistics.median(times["ref"])
    row["ratio"] = paired_ratio(times["lb"], times["ref"])
    lb_step.clear()
    ref_step.clear()
    row["lb_peak_bytes"] = dev.peak_bytes(lb_step)
    row["ref_peak_bytes"] = dev.peak_bytes(ref_step)
    row["mem_ratio"] = row["lb_peak_bytes"] / max(row["ref_peak_bytes"], 1)
    if size == "small" or args.sizes == ["small"]:
        try:
            row["err_lb"], row["err_ref"], row["acc_mode"] = accuracy(spec, ref, built.sample)
        except Exception as exc:  # an oracle that cannot take the scaled inputs
            notes.append(f"accuracy not measured: {type(exc).__name__}: {exc}"[:160])
    if args.compile and size == "medium":
        if not spec.compile:
            notes.append("compile skipped: the registry marks this loss compile=False")
        else:
            try:
                torch._dynamo.reset()
                lbc, rfc = torch.compile(lb), torch.compile(rf)
                s_ref = as_leaves(built.sample)
                tc = time_interleaved({"lb": make_step(lbc, sample), "ref": make_step(rfc, s_ref)}, dev,
                                      args.repeats, args.min_time)
                row["lb_ms_compiled"] = 1e3 * statistics.median(tc["lb"])
                row["ref_ms_compiled"] = 1e3 * statistics.median(tc["ref"])
                row["ratio_compiled"] = paired_ratio(tc["lb"], tc["ref"])
            except Exception as exc:
                notes.append(f"compile failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200])
    row["status"] = judge(row, ref, notes)
    row["note"] = "; ".join(notes)
    return row


def judge(row: dict, ref: Reference, notes: list[str]) -> str:
    target = row.get("target")
    if target is None:
        return "info"
    if row["size"] not in JUDGED_SIZES:
        return "info"
    missed = []
    if row["ratio"] > target:
        missed.append(f"eager {row['ratio']:.2f}x > {target}x")
    if row.get("ratio_compiled") is not None and row["ratio_compiled"] > target:
        missed.append(f"compiled {row['ratio_compiled']:.2f}x > {target}x")
    notes.extend(missed)
    return "MISS" if missed else "ok"


def accuracy_status(rows: list[dict]) -> None:
    """Peer rows: lossbook must be no less accurate than the peer (at most 2x its error, +1e-6)."""
    by_loss = {r["loss"]: r for r in rows if r.get("err_lb") is not None}
    for r in rows:
        acc = by_loss.get(r["loss"])
        if r.get("category") != "peer" or acc is None or acc.get("err_ref") is None:
            continue
        if acc["err_lb"] > 2 * acc["err_ref"] + 1e-6 and r["status"] in ("ok", "MISS"):
            r["status"] = "MISS"
            r["note"] = "; ".join(filter(None, [r.get("note"), f"less accurate than the peer "
                                                f"({acc['err_lb']:.2e} vs {acc['err_ref']:.2e})"]))


# ----------------------------------------------------------------------------- linear cross-entropy


def bench_linear_ce(dev: Device, repeats: int, case=LINEAR_CE_CASE) -> dict:
    from lossbook.classification import default_chunk_size, linear_cross_entropy

    n, d, v = case
    h, w, y = linear_ce_case(torch.float32, dev.device, case=case)
    hl, wl = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    hn, wn = h.clone().requires_grad_(True), w.clone().requires_grad_(True)

    def lb_step():
        hl.grad = wl.grad = None
        out = linear_cross_entropy(hl, wl, y)
        out.backward()
        return out

    def naive_step():
        hn.grad = wn.grad = None
        out = F.cross_entropy(hn @ wn.T, y)
        out.backward()
        return out

    lb_out, naive_out = lb_step(), naive_step()  # warm-up, and the values to compare
    diffs = {
        "loss_rel_diff": float(((lb_out - naive_out).abs() / naive_out.abs()).detach()),
        "grad_hidden_max_rel_diff": float((hl.grad - hn.grad).abs().max() / hn.grad.abs().max()),
        "grad_weight_max_rel_diff": float((wl.grad - wn.grad).abs().max() / wn.grad.abs().max()),
    }
    hl.grad = wl.grad = hn.grad = wn.grad = None
    peak_lb = dev.peak_bytes(lb_step)
    hl.grad = wl.grad = None
    peak_naive = dev.peak_bytes(naive_step)
    hn.grad = wn.grad = None
    times: dict[str, list[float]] = {"lb": [], "naive": []}
    for r in range(repeats):
        for k, f in ((("lb", lb_step), ("naive", naive_step)) if r % 2 == 0 else (("naive", naive_step), ("lb", lb_step))):
            dev.sync()
            t0 = time.perf_counter()
            f()
            dev.sync()
            times[k].append(time.perf_counter() - t0)
    ratio = paired_ratio(times["lb"], times["naive"])
    mem_ratio = peak_lb / peak_naive
    return {
        "case": {"N": n, "D": d, "V": v, "dtype": "float32", "chunk_size": default_chunk_size(n, v)},
        "naive_logits_bytes": n * v * 4,
        "lb_peak_bytes": peak_lb, "naive_peak_bytes": peak_naive, "mem_ratio": mem_ratio,
        "lb_s": statistics.median(times["lb"]), "naive_s": statistics.median(times["naive"]), "ratio": ratio,
        "lb_times_s": times["lb"], "naive_times_s": times["naive"], **diffs,
        "targets": {"mem_ratio": 0.25, "ratio": 1.5},
        "status": "ok" if (mem_ratio <= 0.25 and ratio <= 1.5) else "MISS",
    }


def print_linear_ce(res: dict) -> None:
    c = res["case"]
    mib = 1 << 20
    print(f"\nlinear_cross_entropy vs naive F.cross_entropy(hidden @ weight.T), N={c['N']} D={c['D']} V={c['V']} "
          f"float32, chunk_size={c['chunk_size']}")
    print(f"  peak memory  {res['lb_peak_bytes'] / mib:9.1f} MiB vs {res['naive_peak_bytes'] / mib:9.1f} MiB "
          f"-> {res['mem_ratio']:.3f}x (target <= 0.25)")
    print(f"  time/step    {res['lb_s']:9.3f} s   vs {res['naive_s']:9.3f} s   -> {res['ratio']:.2f}x (target <= 1.5)")
    print(f"  max rel diff loss {res['loss_rel_diff']:.1e}, grad hidden {res['grad_hidden_max_rel_diff']:.1e}, "
          f"grad weight {res['grad_weight_max_rel_diff']:.1e}   status: {res['status']}")


# ----------------------------------------------------------------------------- output


def _fmt(v, spec):
    return "" if v is None or v == "" else format(v, spec)


def print_table(rows: list[dict]) -> None:
    head = (f"{'loss':30s} {'size':6s} {'reference':44s} {'lb ms':>8s} {'ref ms':>8s} {'ratio':>6s} "
            f"{'target':>6s} {'compiled':>8s} {'mem':>6s} {'err lb':>8s} {'err ref':>8s}  status")
    print(head)
    print("-" * len(head))
    for r in rows:
        if r.get("status") in ("skip", "error"):
            print(f"{r['loss']:30s} {r['size']:6s} {r['status']}: {r.get('note', '')}")
            continue
        ref = f"{r['category']}: {r['reference']}"[:44]
        print(f"{r['loss']:30s} {r['size']:6s} {ref:44s} {_fmt(r.get('lb_ms'), '8.3f')} "
              f"{_fmt(r.get('ref_ms'), '8.3f')} {_fmt(r.get('ratio'), '6.2f')} "
              f"{_fmt(r.get('target'), '6.1f'):>6s} {_fmt(r.get('ratio_compiled'), '8.2f'):>8s} "
              f"{_fmt(r.get('mem_ratio'), '6.2f')} {_fmt(r.get('err_lb'), '8.1e'):>8s} "
              f"{_fmt(r.get('err_ref'), '8.1e'):>8s}  {r['status']}{'  ' + r['note'] if r.get('note') else ''}")


def write_results(rows: list[dict], meta: dict, stem: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_value(r.get(k)) for k in COLUMNS})
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str) + "\n")


def publish(device: str) -> list[pathlib.Path]:
    """Copy a full run's rows, its metadata and the linear-CE case into lossbook/tables/."""
    rows, meta, lce = RESULTS / f"{device}.csv", RESULTS / f"{device}.json", RESULTS / f"linear_ce_{device}.json"
    written = []
    if rows.exists():
        (TABLES / f"benchmarks_{device}.csv").write_text(rows.read_text())
        written.append(TABLES / f"benchmarks_{device}.csv")
    summary = {"meta": json.loads(meta.read_text())["meta"] if meta.exists() else None,
               "linear_ce": json.loads(lce.read_text()) if lce.exists() else None}
    if any(summary.values()):
        (TABLES / f"benchmarks_{device}.json").write_text(json.dumps(summary, indent=1) + "\n")
        written.append(TABLES / f"benchmarks_{device}.json")
    for path in written:
        print(f"published {path.relative_to(HERE.parent)}")
    return written


def _csv_value(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def metadata(dev: Device, args) -> dict:
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "device": str(dev.device), "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "sizes": {k: SIZES[k] for k in args.sizes}, "repeats": args.repeats, "min_time_s": args.min_time,
        "compile": args.compile, "dtype": "float32",
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if dev.cuda:
        meta["gpu"] = torch.cuda.get_device_name(dev.device)
    return meta


# ----------------------------------------------------------------------------- main


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="small,medium,large", help="comma-separated subset of small,medium,large")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="small+medium, 3 repeats, no compile, no linear-CE case")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 5; 3 with --quick)")
    p.add_argument("--min-time", type=float, default=None, help="seconds per timed round (default 0.01)")
    p.add_argument("--compile", dest="compile", action="store_true", default=None,
                   help="also time torch.compile at the medium size (default on, off with --quick)")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default 1 on CPU: on a shared machine a multi-threaded step "
                        "mostly measures the OS scheduler; see the notes above)")
    p.add_argument("--losses", default="", help="comma-separated loss names (default: all registered)")
    p.add_argument("--linear-ce", action="store_true", help="run only the N=8192, D=256, V=32768 linear-CE case")
    p.add_argument("--with-linear-ce", action="store_true", help="also run the linear-CE case after the suite")
    p.add_argument("--publish", action="store_true",
                   help="measure nothing: copy benchmarks/results/<device>.* into lossbook/tables/ for the book")
    args = p.parse_args(argv)
    if args.quick and "--sizes" not in " ".join(sys.argv):
        args.sizes = "small,medium"
    args.sizes = [s for s in args.sizes.split(",") if s]
    bad = set(args.sizes) - SIZES.keys()
    if bad:
        p.error(f"unknown sizes {sorted(bad)}; choose from {', '.join(SIZES)}")
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.min_time = args.min_time or 0.01
    if args.compile is None:
        args.compile = not args.quick
    if args.compile and "medium" not in args.sizes:
        print("note: torch.compile is timed at the medium size only, which was not requested")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA requested but torch.cuda.is_available() is False; nothing to do.")
        return 0
    if args.publish:
        return 0 if publish(args.device) else 1
    dev = Device(args.device)
    if args.threads or not dev.cuda:
        torch.set_num_threads(args.threads or 1)
    started = time.perf_counter()
    if args.linear_ce:
        res = bench_linear_ce(dev, repeats=3)
        res["meta"] = metadata(dev, args)
        res["meta"]["load_average_end"] = os.getloadavg()
        print_linear_ce(res)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"linear_ce_{args.device}.json").write_text(json.dumps(res, indent=1) + "\n")
        publish(args.device)
        return 0
    meta = metadata(dev, args)
    wanted = {s for s in args.losses.split(",") if s}
    specs = [s for s in all_losses() if not wanted or s.name in wanted]
    if wanted - {s.name for s in specs}:
        print(f"unknown losses: {sorted(wanted - {s.name for s in specs})}")
    print(f"lossbook benchmark: {len(specs)} losses x sizes {args.sizes} on {dev.device}, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats"
          f"{', torch.compile at medium' if args.compile else ''}", flush=True)
    rows = []
    for spec in specs:
        for size in args.sizes:
            t0 = time.perf_counter()
            try:
                row = bench_loss(spec, size, dev, args)
            except Exception as exc:
                row = {"loss": spec.name, "chapter": spec.chapter, "kind": spec.input_kind, "size": size,
                       "status": "error", "note": f"{type(exc).__name__}: {exc}"[:200]}
                if os.environ.get("LOSSBOOK_BENCH_DEBUG"):
                    traceback.print_exc()
            rows.append(row)
            print(f"  {spec.name:30s} {size:6s} {row.get('ratio', float('nan')):6.2f}x "
                  f"{row.get('status', '')} ({time.perf_counter() - t0:.1f}s)", flush=True)
    accuracy_status(rows)
    meta["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    meta["wall_s"] = round(time.perf_counter() - started, 1)
    stem = f"{args.device}_quick" if args.quick else args.device
    if wanted:
        stem += "_subset"
    write_results(rows, meta, stem)
    print()
    print_table(rows)
    missed = [r for r in rows if r.get("status") in ("MISS", "error")]
    print(f"\n{len(rows)} rows, {len(missed)} missed targets or errors; wall {meta['wall_s']} s; "
          f"results in {RESULTS.relative_to(HERE.parent)}/{stem}.csv/.json")
    if args.with_linear_ce:
        res = bench_linear_ce(dev, repeats=3)
        print_linear_ce(res)
        (RESULTS / f"linear_ce_{args.device}.json").write_text(json.dumps(res, indent=1) + "\n")
    if stem == args.device and set(args.sizes) == set(SIZES):
        publish(args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
