"""A deterministic full-batch / mini-batch training loop for the chapters."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 500,
    lr: float = 1e-2,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> list[float]:
    """Train ``model`` to minimise ``loss_fn(model(X), y)``; return the loss after each step.

    Full-batch when ``batch_size`` is None, otherwise mini-batches drawn with
    ``generator``. ``progress=True`` shows a tqdm bar (its timings vary from
    run to run; the book's nbval sanitizer masks them).
    """
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    n = X.shape[0]
    history: list[float] = []
    steps_iter = range(steps)
    if progress:
        from tqdm.auto import tqdm

        steps_iter = tqdm(steps_iter, desc=desc, mininterval=1.0, leave=True)
    model.train()
    for _ in steps_iter:
        if batch_size is None:
            xb, yb = X, y
        else:
            idx = torch.randint(0, n, (batch_size,), generator=generator)
            xb, yb = X[idx], y[idx]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    model.eval()
    return history


@torch.no_grad()
def predict(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(X)
