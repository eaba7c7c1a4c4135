"""lossbook.data: the label-noise models live here and are re-exported by lossbook.robust."""

from __future__ import annotations

import torch

from lossbook import data as D
from lossbook import robust as R


def test_noise_models_are_defined_in_data_and_reexported_by_robust():
    assert D.corrupt_labels.__module__ == "lossbook.data" and D.transition_matrix.__module__ == "lossbook.data"
    assert R.corrupt_labels is D.corrupt_labels and R.transition_matrix is D.transition_matrix
    assert {"corrupt_labels", "transition_matrix"} <= set(R.__all__)


def test_symmetric_noise_never_keeps_a_flipped_label():
    y = torch.arange(10).repeat(2000)
    noisy = D.corrupt_labels(y, 0.4, num_classes=10, generator=torch.Generator().manual_seed(0))
    rate = float((noisy != y).double().mean())
    assert abs(rate - 0.4) < 0.015  # the realised rate is the nominal one (no flips back to the true class)
    torch.testing.assert_close(D.transition_matrix(10, 0.4).diagonal(), torch.full((10,), 0.6, dtype=torch.float64))
