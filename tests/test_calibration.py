"""The package's one ECE: closed forms, invariances, bad inputs, and torchmetrics."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossbook.calibration import expected_calibration_error as ece


def test_hand_computed_binary():
    # two bins used: {0.9, 0.9} with frequency 1/2, {0.2, 0.2} with frequency 0
    probs = torch.tensor([0.9, 0.9, 0.2, 0.2], dtype=torch.float64)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert float(ece(probs, target)) == pytest.approx(0.5 * 0.4 + 0.5 * 0.2)
    assert float(ece(probs, target, norm="max")) == pytest.approx(0.4)
    assert float(ece(probs, target, norm="l2")) == pytest.approx((0.5 * 0.16 + 0.5 * 0.04) ** 0.5)


def test_perfectly_calibrated_bins_give_zero():
    # in every bin the mean confidence equals the frequency of class 1
    probs = torch.tensor([0.25] * 4 + [0.75] * 4, dtype=torch.float64)
    target = torch.tensor([1, 0, 0, 0, 1, 1, 1, 0], dtype=torch.float64)
    assert float(ece(probs, target)) == pytest.approx(0.0, abs=1e-15)


def test_top_label_one_bin_is_accuracy_gap():
    # one bin: ECE = |accuracy - mean confidence|
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.72, 0.18], [0.05, 0.25, 0.7]], dtype=torch.float64)
    target = torch.tensor([0, 0, 2])
    assert float(ece(probs, target, n_bins=1)) == pytest.approx(abs(2 / 3 - (0.7 + 0.72 + 0.7) / 3))


def test_confidence_one_falls_in_last_bin():
    probs = torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert float(ece(probs, torch.tensor([1.0, 1.0], dtype=torch.float64))) == 0.0
    assert float(ece(probs, torch.tensor([1.0, 0.0], dtype=torch.float64))) == pytest.approx(0.5)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30))
def test_bounds_and_order_of_norms(seed, n_bins):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(3 * torch.randn(50, 4, generator=g, dtype=torch.float64), 1)
    target = torch.randint(0, 4, (50,), generator=g)
    l1, l2, mx = (float(ece(probs, target, n_bins=n_bins, norm=n)) for n in ("l1", "l2", "max"))
    assert 0.0 <= l1 <= l2 + 1e-12 <= mx + 2e-12 <= 1.0 + 2e-12
    perm = torch.randperm(50, generator=g)
    assert float(ece(probs[perm], target[perm], n_bins=n_bins)) == pytest.approx(l1, abs=1e-12)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_matches_torchmetrics(norm):
    tmc = pytest.importorskip("torchmetrics.functional.classification", reason="torchmetrics is a test extra")
    g = torch.Generator().manual_seed(0)
    p = torch.rand(2000, generator=g) * 0.999  # below 1: torchmetrics bins a confidence of 1 apart
    y = (torch.rand(2000, generator=g) < p.square()).long()
    assert float(ece(p, y.float(), norm=norm)) == pytest.approx(
        float(tmc.binary_calibration_error(p, y, n_bins=15, norm=norm)), abs=1e-6)
    probs = torch.softmax(2 * torch.randn(1000, 6, generator=g), 1)
    t = torch.randint(0, 6, (1000,), generator=g)
    assert float(ece(probs, t, norm=norm)) == pytest.approx(
        float(tmc.multiclass_calibration_error(probs, t, num_classes=6, n_bins=15, norm=norm)), abs=1e-6)


@pytest.mark.parametrize("probs, target, error, match", [
    (torch.tensor([0.2, 1.3]), torch.tensor([0.0, 1.0]), ValueError, "probs"),
    (torch.tensor([0.2, float("nan")]), torch.tensor([0.0, 1.0]), ValueError, "probs"),
    (torch.tensor([0.2, 0.3]), torch.tensor([0.0, 1.0, 1.0]), ValueError, "shape"),
    (torch.tensor([[0.5, 0.6]]), torch.tensor([0]), ValueError, "simplex|sum"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([2]), ValueError, r"\[0, 1\]"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]), ValueError, "shape"),
    (torch.tensor([[0.5, 0.5]]), torch.tensor([0.0]), TypeError, "int64"),
    (torch.tensor([1, 0]), torch.tensor([1.0, 0.0]), TypeError, "floating"),
    (torch.zeros(2, 2, 2), torch.tensor([0, 1]), ValueError, r"\(N,\)"),
])
def test_bad_inputs_are_named(probs, target, error, match):
    with pytest.raises(error, match=match):
        ece(probs, target)


@pytest.mark.parametrize("kwargs, match", [({"n_bins": 0}, "n_bins"), ({"norm": "l3"}, "norm")])
def test_bad_options_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ece(torch.tensor([0.5]), torch.tensor([1.0]), **kwargs)
