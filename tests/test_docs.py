"""Every docstring example in the package runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import math
import pkgutil

import pytest
import torch

import lossbook

MODULES = sorted(m.name for m in pkgutil.iter_modules(lossbook.__path__, "lossbook."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    globs = {"torch": torch, "math": math, **vars(module)}
    tests = finder.find(module, name, globs=globs)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_every_registered_loss_has_a_runnable_example():
    from lossbook.registry import all_losses

    for spec in all_losses():
        examples = doctest.DocTestParser().get_examples(spec.fn.__doc__)
        assert examples, f"{spec.name} has no doctest example"
