"""lossbook: loss functions for deep learning, derived, implemented and tested.

The companion package of the lossbook textbook. Each family of losses lives
in its own module, named like the book chapter that derives it::

    from lossbook.regression import huber_loss, HuberLoss

Every public loss is recorded in :mod:`lossbook.registry`.
"""

from lossbook import families, kinds, registry, utils, validation
from lossbook import regression
from lossbook import classification, robust
from lossbook.classification import cross_entropy, focal_loss
from lossbook import surrogates, proper
from lossbook.regression import (
    gaussian_nll_loss,
    huber_loss,
    log_cosh_loss,
    mae_loss,
    mse_loss,
    pseudo_huber_loss,
    quantile_loss,
)
from lossbook.utils import seed_everything
from lossbook.validation import checks, set_checks

__version__ = "0.1.0"

__all__ = [
    "families", "kinds", "registry", "utils", "validation", "surrogates", "proper", "regression",
    "classification", "robust", "cross_entropy", "focal_loss",
    "mse_loss", "mae_loss", "huber_loss", "pseudo_huber_loss", "log_cosh_loss", "quantile_loss",
    "gaussian_nll_loss", "seed_everything", "set_checks", "checks", "__version__",
]
