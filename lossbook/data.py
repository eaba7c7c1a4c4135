"""Offline data for the chapters: scikit-learn's bundled datasets, small synthetic generators and
label-noise models (:func:`transition_matrix`, :func:`corrupt_labels`, re-exported by :mod:`lossbook.robust`).

Nothing here touches the network. Every generator takes a ``torch.Generator``
(or a seed) so that experiments are reproducible.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from lossbook import validation as V

BUNDLED = ("digits", "iris", "wine", "breast_cancer", "diabetes")


@dataclasses.dataclass
class Split:
    """A train/test split as tensors (float32 features; int64 labels or float32 targets)."""

    X_train: torch.Tensor
    X_test: torch.Tensor
    y_train: torch.Tensor
    y_test: torch.Tensor

    @property
    def num_features(self) -> int:
        return self.X_train.shape[1]


def load_split(name: str, seed: int = 0, test_size: float = 0.3, standardize: bool = True) -> Split:
    """Load one of scikit-learn's bundled datasets and split it (stratified for classification).

    ``standardize`` centres and scales features with the *training* statistics;
    for ``"diabetes"`` (regression) the target is standardised too. ``digits``
    features are divided by 16 first.
    """
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    if name not in BUNDLED:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(BUNDLED)}")
    bunch = getattr(datasets, f"load_{name}")()
    X, y = bunch.data.astype("float64"), bunch.target
    if name == "digits":
        X = X / 16.0
    regression = name == "diabetes"
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=None if regression else y
    )
    if standardize:
        mu, sd = X_tr.mean(0), X_tr.std(0)
        sd[sd == 0] = 1.0
        X_tr, X_te = (X_tr - mu) / sd, (X_te - mu) / sd
        if regression:
            m, s = y_tr.mean(), y_tr.std()
            y_tr, y_te = (y_tr - m) / s, (y_te - m) / s
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = (lambda a: torch.tensor(a, dtype=torch.float32)) if regression else (lambda a: torch.tensor(a, dtype=torch.long))
    return Split(as_x(X_tr), as_x(X_te), as_y(y_tr), as_y(y_te))


def _gen(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(0 if generator is None else int(generator))


def add_target_outliers(y: torch.Tensor, fraction: float, shift: float, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Add ``shift`` to a random ``fraction`` of the targets; return the new targets and the outlier mask."""
    g = _gen(generator)
    n = y.shape[0]
    idx = torch.randperm(n, generator=g)[: int(round(fraction * n))]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[idx] = True
    return y + shift * mask.to(y.dtype), mask


def heteroscedastic_1d(n: int, generator=None, noise: str = "gaussian") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r""":math:`y = \sin 2x + (0.1 + 0.3|x|)\,\varepsilon`, :math:`x \sim U(-3, 3)`.

    Returns ``x`` of shape ``(n, 1)``, ``y`` of shape ``(n,)`` and the true
    noise scale :math:`0.1 + 0.3|x|` of shape ``(n,)``. ``noise`` is
    ``"gaussian"`` or ``"laplace"`` (unit variance in both cases).
    """
    g = _gen(generator)
    x = torch.rand(n, 1, generator=g) * 6 - 3
    scale = 0.1 + 0.3 * x[:, 0].abs()
    if noise == "gaussian":
        eps = torch.randn(n, generator=g)
    elif noise == "laplace":
        u = torch.rand(n, generator=g) - 0.5
        eps = -torch.sign(u) * torch.log1p(-2 * u.abs()) / math.sqrt(2.0)
    else:
        raise ValueError(f"noise must be 'gaussian' or 'laplace', got {noise!r}")
    return x, torch.sin(2 * x[:, 0]) + scale * eps, scale


def ar_seasonal_series(length: int, period: int = 12, generator=None) -> torch.Tensor:
    """A positive AR(2) + seasonal series: ``x_t = 0.5 x_{t-1} - 0.2 x_{t-2} + 2 sin(2πt/period) + ε_t`` plus a level of 10."""
    g = _gen(generator)
    eps = torch.randn(length, generator=g) * 0.5
    x = torch.zeros(length)
    for t in range(length):
        ar = (0.5 * x[t - 1] if t >= 1 else 0.0) - (0.2 * x[t - 2] if t >= 2 else 0.0)
        x[t] = ar + eps[t]
    season = 2.0 * torch.sin(2 * math.pi * torch.arange(length) / period)
    return 10.0 + season + x


def windows(series: torch.Tensor, lags: int, horizon: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Sliding windows: inputs ``(n, lags)`` of past values, targets ``(n, horizon)`` of the next values."""
    n = series.shape[0] - lags - horizon + 1
    X = torch.stack([series[i : i + lags] for i in range(n)])
    Y = torch.stack([series[i + lags : i + lags + horizon] for i in range(n)])
    return X, Y


def directional_returns(n: int, num_features: int = 5, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Returns :math:`R = s\,|\xi|` whose *sign* :math:`s` is predictable from the features and whose
    magnitude :math:`|\xi|` is heavy-tailed (Student-t with 2 degrees of freedom) and unpredictable.

    The sign is :math:`\operatorname{sign}(w^\top x + \text{noise})`; large returns are
    as likely as small ones to come with either sign, so a squared-error fit
    chases magnitudes it cannot predict.
    """
    g = _gen(generator)
    X = torch.randn(n, num_features, generator=g)
    w = torch.linspace(1.0, -0.5, num_features)
    sign = torch.sign(X @ w + 0.5 * torch.randn(n, generator=g))
    z = torch.randn(n, generator=g)
    chi2 = torch.randn(n, 2, generator=g).square().sum(1)
    magnitude = (z / torch.sqrt(chi2 / 2)).abs()
    # a distracting feature: correlated with |R| (not with its sign)
    X[:, -1] = torch.log(magnitude) + 0.3 * torch.randn(n, generator=g)
    return X, sign * magnitude


# --------------------------------------------------------------------------- label-noise models


def transition_matrix(num_classes: int, rate: float, *, kind: str = "symmetric",
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Class-conditional noise matrix :math:`M_{ij} = P(\tilde y = j \mid y = i)` (noise rate :math:`\rho`).

    * ``"symmetric"``: keep the label with probability :math:`1-\rho`, otherwise
      flip it to one of the :math:`C-1` *other* classes uniformly:
      :math:`M = (1-\rho) I + \frac{\rho}{C-1}(\mathbf 1\mathbf 1^\top - I)`.
    * ``"pairflip"``: :math:`y \to (y+1) \bmod C` with probability :math:`\rho`.

    Example:
        >>> transition_matrix(3, 0.3, kind="pairflip")
        tensor([[0.7000, 0.3000, 0.0000],
                [0.0000, 0.7000, 0.3000],
                [0.3000, 0.0000, 0.7000]], dtype=torch.float64)
    """
    if isinstance(num_classes, bool) or not (isinstance(num_classes, int) and num_classes >= 2):
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and 0.0 <= rate <= 1.0):
        raise ValueError(f"rate must lie in [0, 1], got {rate!r}")
    V.check_choice(kind, "kind", ("symmetric", "pairflip"))
    eye = torch.eye(num_classes, dtype=dtype)
    if kind == "symmetric":
        return (1 - rate) * eye + rate / (num_classes - 1) * (1 - eye)
    return (1 - rate) * eye + rate * eye.roll(1, dims=1)


def corrupt_labels(y: torch.Tensor, rate: float, *, kind: str = "symmetric", num_classes: int,
                   generator: torch.Generator | None = None, matrix: torch.Tensor | None = None) -> torch.Tensor:
    r"""Draw noisy labels :math:`\tilde y_i \sim M_{y_i,\cdot}` (a new tensor; ``y`` is untouched).

    ``kind`` selects :func:`transition_matrix`; pass ``matrix`` (``(C, C)``,
    rows summing to 1) for any other class-conditional noise (then ``rate`` and
    ``kind`` are ignored). Each label is corrupted independently, so the
    realised noise rate is :math:`\rho` only in expectation.

    Example:
        >>> y = torch.zeros(10000, dtype=torch.long)
        >>> noisy = corrupt_labels(y, 0.4, num_classes=10, generator=torch.Generator().manual_seed(0))
        >>> round(float((noisy != y).double().mean()), 1), int(noisy.max())
        (0.4, 9)
    """
    V.check_positive_int(num_classes, "num_classes")
    V.check_class_target(y, num_classes)
    if matrix is None:
        M = transition_matrix(num_classes, rate, kind=kind)
    else:
        V.check_floating(matrix, "matrix")
        M = matrix.detach().double().cpu()
        if M.shape != (num_classes, num_classes):
            raise ValueError(f"matrix must have shape ({num_classes}, {num_classes}), got {tuple(M.shape)}")
        V.check_simplex(M, "matrix")
    if y.numel() == 0:
        return y.clone()
    rows = M[y.reshape(-1).cpu()]
    out = torch.multinomial(rows, 1, generator=generator).squeeze(1)
    return out.reshape(y.shape).to(y.device)
