"""Pinned numerics: the pins matter (without them the CPU's paths change the result) and hold
(with them, restricting the host's instruction set further changes nothing)."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from lossbook import numerics

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUN = """
import json, torch
from lossbook import numerics
loss, digest = numerics.reference_run()
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "loss": loss, "digest": digest,
                  "problems": numerics.problems()}))
"""
# What a host with fewer vector units offers, emulated on this one: MKL's instruction cap, glibc's
# ifunc choices (libm) and numpy's dispatch. torch's own choice is what the pins fix.
HOSTS = {
    "SSE4_2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX,-AVX2,-FMA,-AVX512F",
               "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL"},
    "AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F",
             "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL"},
}


def host_flags() -> set[str]:
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def reference(extra: dict[str, str], pinned: bool) -> dict:
    """reference_run() in a fresh interpreter: the pins act only if set before torch is imported."""
    env = {k: v for k, v in os.environ.items()
           if k not in numerics.PINS and k not in ("MKL_ENABLE_INSTRUCTIONS", "GLIBC_TUNABLES",
                                                     "NPY_DISABLE_CPU_FEATURES")}
    if pinned:
        env.update(numerics.PINS)
    env.update(extra)
    proc = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


needs_x86 = pytest.mark.skipif(
    not host_flags(), reason="reads the CPU's flags from /proc/cpuinfo, which this platform lacks")


@needs_x86
def test_pinned_run_reproduces_the_committed_digest():
    result = reference({}, pinned=True)
    assert result["capability"] == "DEFAULT"
    assert result["problems"] == []
    assert result["digest"] == numerics.REFERENCE_DIGEST, (
        "the pinned reference run moved: if torch or the numerical stack changed on purpose, re-execute "
        "every notebook (python3 tools/dev.py execute) and update REFERENCE_DIGEST")


@needs_x86
@pytest.mark.parametrize("host", sorted(HOSTS))
def test_pinned_run_does_not_depend_on_the_host_instruction_set(host):
    if host == "AVX2" and "avx2" not in host_flags():
        pytest.skip("this CPU has no AVX2: only the SSE4.2 path can be compared")
    result = reference(HOSTS[host], pinned=True)
    assert result["digest"] == numerics.REFERENCE_DIGEST, (host, result)


@needs_x86
def test_without_pins_the_cpu_paths_change_the_result():
    # Shows that the pinned tests above could fail: torch's kernel choice alone moves the digest.
    if "avx2" not in host_flags():
        pytest.skip("this CPU offers torch only its default kernels, so there is no second path to compare")
    default = reference({"ATEN_CPU_CAPABILITY": "default"}, pinned=False)
    avx2 = reference({"ATEN_CPU_CAPABILITY": "avx2"}, pinned=False)
    assert (default["capability"], avx2["capability"]) == ("DEFAULT", "AVX2")
    assert default["digest"] != avx2["digest"]
    assert default["problems"] and avx2["problems"]  # neither run counts as pinned


def test_constraints_pin_the_recorded_stack():
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M))
    for name, version in numerics.STACK.items():
        assert pins.get(name) == version, f"constraints.txt pins {name}=={pins.get(name)}, numerics.STACK {version}"
    status = (ROOT / "book" / "status.md").read_text()
    assert "numerics.STACK" in status and "numerics.PINS" in status and "get_cpu_capability" in status


def test_installed_stack_is_the_pinned_one():
    drift = {n: v for n, v in numerics.installed_versions().items() if v != numerics.STACK[n]}
    assert not drift, f"installed versions differ from constraints.txt: {drift}; reinstall with -c constraints.txt"


def _load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_command_runs_pinned():
    dev = _load(ROOT / "tools" / "dev.py")
    assert dev.PINS == numerics.PINS and numerics.PINS.items() <= dev.NB_ENV.items()
    execute = _load(ROOT / "tools" / "execute_notebooks.py")
    assert numerics.PINS.items() <= execute.ENV.items()
    if dev.KERNEL.exists():  # the kernel `tools/dev.py env` installed
        assert json.loads(dev.KERNEL.read_text())["env"] == numerics.PINS


def test_problems_name_what_is_missing(monkeypatch):
    for name in numerics.PINS:
        monkeypatch.delenv(name, raising=False)
    found = " ".join(numerics.problems())
    assert "ATEN_CPU_CAPABILITY=default" in found and "MKL_CBWR=COMPATIBLE" in found
    assert not numerics.pinned()
    monkeypatch.setattr(numerics, "STACK", {**numerics.STACK, "numpy": "0.0.1"})
    assert "numpy" in " ".join(numerics.problems())
