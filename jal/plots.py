"""Figures as PNG files (matplotlib, headless): learning curves with shaded standard error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def learning_curves(
    curves: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]],
    path: str,
    title: str = '',
    ylabel: str = 'test accuracy',
) -> None:
  """Plots mean accuracy vs labels, one line per method, shaded ± standard error over seeds.

  Args:
    curves: method -> one (num_labels, accuracy) pair per seed; seeds of a method share num_labels.
    path: where to write the PNG.
  """
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
  for name, runs in curves.items():
    n = np.asarray(runs[0][0], np.float64)
    accuracy = np.stack([np.asarray(a, np.float64) for _, a in runs])
    mean = accuracy.mean(0)
    se = accuracy.std(0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
    (line,) = axes.plot(n, mean, marker='o', markersize=3, label=f'{name} (n={len(runs)})')
    axes.fill_between(n, mean - se, mean + se, color=line.get_color(), alpha=0.2)
  axes.set_xlabel('labelled examples')
  axes.set_ylabel(ylabel)
  if title:
    axes.set_title(title)
  axes.grid(alpha=0.3)
  axes.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)
