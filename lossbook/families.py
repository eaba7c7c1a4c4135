"""The loss families, listed once: module, chapter number, title and book page.

Every module that registers losses is listed here (a test fails otherwise).
The registry imports the written families from this list, the book's Sphinx
extension renders the chapter map from it, and the TOC test checks the book's
table of contents against it. Standard library only, so that tools can read
it without importing torch.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Family:
    module: str  # lossbook.<module>, tests/test_<module>.py, book/<page>.ipynb
    chapter: int
    title: str
    page: str | None  # None while the chapter is planned

    @property
    def written(self) -> bool:
        return self.page is not None


FAMILIES: tuple[Family, ...] = (
    Family("surrogates", 1, "Risk, surrogate losses and consistency", "surrogates"),
    Family("proper", 2, "Proper losses, output maps and Fenchel–Young losses", "proper"),
    Family("regression", 3, "Regression losses", "regression"),
    Family("classification", 4, "Classification losses: the cross-entropy family", "classification"),
    Family("robust", 5, "Robust losses: noisy labels and adversarial perturbations", "robust"),
    Family("calibration", 6, "Calibration and learning to reject", None),
    Family("margin", 7, "Margin-based softmax losses and face recognition", None),
    Family("metric", 8, "Pair-based deep metric learning and the GPW framework", None),
    Family("contrastive", 9, "Contrastive, self-supervised and clustering objectives", None),
    Family("ranking", 10, "Ranking losses and metrics-as-losses", None),
    Family("overlap", 11, "Overlap losses for segmentation and detection", None),
    Family("structured", 12, "Structured, geometric and signal losses", None),
    Family("divergence", 13, "Divergences and distribution matching", None),
    Family("generative", 14, "Objectives for generative models", None),
    Family("distill", 15, "Knowledge distillation and compression losses", None),
    Family("regularizers", 16, "Regularizers as loss terms", None),
    Family("multiobjective", 17, "Multi-objective and joint losses", None),
    Family("weak", 18, "Indirect, aggregate and shifted supervision", None),
    Family("landscape", 19, "Loss landscapes and training dynamics", None),
)

BY_MODULE = {f.module: f for f in FAMILIES}


def written() -> list[Family]:
    """The families whose chapter (and module) exist, in chapter order."""
    return [f for f in FAMILIES if f.written]
