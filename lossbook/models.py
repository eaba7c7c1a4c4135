"""Tiny models for the chapters' experiments (CPU-sized)."""

from __future__ import annotations

from torch import nn


def mlp(in_features: int, hidden: int, out_features: int, depth: int = 1, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A multilayer perceptron: ``depth`` hidden layers of width ``hidden``."""
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), activation()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)
