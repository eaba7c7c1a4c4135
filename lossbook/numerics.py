"""Pinned numerics: the CPU code paths under which the book's notebooks are executed and checked.

Float results depend on which kernels torch, MKL and oneDNN choose for the CPU
they run on: AVX-512, AVX2 and SSE paths sum in different orders and round
differently in the last bits. Training amplifies those bits into different
accuracies, so a committed notebook output holds only where the same paths run.
:data:`PINS` selects paths that every x86-64 CPU able to run this stack has.
They must be in the environment *before* torch is imported, which is why the
project's commands (``tools/dev.py``) and the kernel that ``tools/dev.py env``
installs set them, and why :func:`lossbook.book.setup` can only check them.

This module imports only the standard library at import time: ``tools/dev.py``
reads :data:`PINS` from it before any virtual environment exists.
"""

from __future__ import annotations

import os
import platform
import sys

# What each pin changes (measured on the project's machines; see the status page):
PINS: dict[str, str] = {
    # ATen's portable kernels instead of the AVX2/AVX-512 ones picked from the CPU's flags
    # (elementwise maths, reductions, softmax).
    "ATEN_CPU_CAPABILITY": "default",
    # MKL's conditional bitwise reproducibility: one code path for GEMM on every x86-64 CPU.
    "MKL_CBWR": "COMPATIBLE",
    # oneDNN (convolutions) capped at its SSE4.1 kernels, the oldest it JIT-compiles.
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    # One thread for OpenMP, MKL and OpenBLAS: a fixed reduction order, and two notebooks
    # can run side by side on two cores.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # str hashes, hence set and dict-of-set iteration order, are fixed.
    "PYTHONHASHSEED": "0",
}

# The numerical stack the committed notebooks were executed with; constraints.txt pins the same
# versions (tests/test_numerics.py keeps the two in agreement) and the status page shows them.
STACK: dict[str, str] = {
    "torch": "2.13.0",
    "numpy": "2.4.6",
    "scipy": "1.17.1",
    "scikit-learn": "1.9.1",
    "matplotlib": "3.11.2",
}

# sha256 of the parameters after reference_run() under PINS with the STACK above.
REFERENCE_DIGEST = "8b1fd8f98af6aac0b3757a4a8c0102a5"
PIN_HELP = "run `python3 tools/dev.py env` and pick the kernel it installs, or start Jupyter with PINS set"


def installed_versions() -> dict[str, str]:
    """The installed version of each package in :data:`STACK` ("missing" if absent)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in STACK:
        try:
            found[name] = version(name).split("+")[0]
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"


def problems() -> list[str]:
    """Why this process may not reproduce the committed outputs bit for bit; empty when pinned.

    Checks the environment variables of :data:`PINS`, that they reached torch (its CPU
    capability is ``DEFAULT`` only if ``ATEN_CPU_CAPABILITY`` was set before import), the
    processor architecture and the versions of :data:`STACK`.
    """
    found = []
    if platform.machine().lower() not in ("x86_64", "amd64"):
        found.append(f"the CPU is {platform.machine()}, not x86-64")
    # PYTHONHASHSEED acts at interpreter start: read its effect, not the variable (which
    # seed_everything sets afterwards).
    unset = [f"{k}={v}" for k, v in PINS.items()
             if (sys.flags.hash_randomization != 0 if k == "PYTHONHASHSEED" else os.environ.get(k) != v)]
    if unset:
        found.append("not set: " + " ".join(unset))
    if "torch" in sys.modules:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
        if capability != "DEFAULT":
            found.append(f"torch runs its {capability} kernels (ATEN_CPU_CAPABILITY was not set before import)")
    drift = [f"{n} {v} (pinned {STACK[n]})" for n, v in installed_versions().items() if v != STACK[n]]
    if drift:
        found.append("versions differ: " + ", ".join(drift))
    return found


def pinned() -> bool:
    """True when this process runs under the pinned numerics (see :func:`problems`)."""
    return not problems()


def reference_run(steps: int = 300) -> tuple[float, str]:
    """A small deterministic training run whose result depends on the CPU code paths.

    Trains a one-hidden-layer MLP on scikit-learn's digits for ``steps`` Adam steps
    (mini-batches of 64, seed 0, one thread) and returns the final training loss and
    the sha256 of the final parameters (first 32 hex digits). Under :data:`PINS` the
    digest is :data:`REFERENCE_DIGEST` on every x86-64 CPU; without them it changes
    with the instruction set torch and MKL pick.
    """
    import hashlib

    import torch
    import torch.nn.functional as F

    from lossbook.data import load_split
    from lossbook.models import mlp
    from lossbook.train import fit
    from lossbook.utils import seed_everything

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = seed_everything(0)
        data = load_split("digits", seed=0)
        model = mlp(data.num_features, 64, 10)
        history = fit(model, F.cross_entropy, data.X_train, data.y_train, steps=steps, lr=1e-2,
                      batch_size=64, generator=gen)
    finally:
        torch.set_num_threads(threads)
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().contiguous().numpy().tobytes())
    return history[-1], digest.hexdigest()[:32]
