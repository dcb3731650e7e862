"""Figures as PNG files (matplotlib, headless): learning curves with shaded standard error, iNAS trajectories."""

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
    _mean_se_line(axes, name, runs)
  axes.set_xlabel('labelled examples')
  axes.set_ylabel(ylabel)
  if title:
    axes.set_title(title)
  axes.grid(alpha=0.3)
  axes.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)


def learning_curve_panels(
    panels: Mapping[str, Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]]],
    path: str,
    title: str = '',
    ylabel: str = 'test accuracy',
) -> None:
  """One panel per query function (active-iNAS Figures 2-4), or per seed, one line per method, shaded standard
  error."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), dpi=110, squeeze=False)
  for ax, (panel, methods) in zip(axes[0], panels.items()):
    for name, runs in methods.items():
      _mean_se_line(ax, name, runs)
    ax.set_title(panel)
    ax.set_xlabel('labelled examples')
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  if title:
    figure.suptitle(title)
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)


def architecture_trajectory(runs_by_strategy: Mapping[str, Sequence[Mapping[str, Sequence]]], path: str) -> None:
  """Parameters and depth of iNAS's choices against labels (active-iNAS Figure 6a), mean over seeds."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  figure, (params_axis, depth_axis) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
  for k, (strategy, runs) in enumerate(runs_by_strategy.items()):
    n = runs[0]['num_labeled']
    colour = f'C{k}'
    params = np.mean([r['arch/params'] for r in runs], axis=0) / 1e6
    depth = np.mean([r['arch/depth'] for r in runs], axis=0)
    params_axis.plot(n, params, color=colour, marker='o', markersize=3, label=strategy)
    depth_axis.plot(n, depth, color=colour, marker='s', markersize=3, label=strategy)
  for axis, ylabel in ((params_axis, 'parameters (millions)'), (depth_axis, 'layers')):
    axis.set_xlabel('labelled examples')
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
  figure.suptitle('architectures chosen by iNAS (mean over seeds)')
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)


def aubc_vs_compute(points: Mapping[str, tuple[float, float, float]], path: str, title: str = '',
                    xlabel: str = 'SGD steps per run (candidates + round models)') -> None:
  """One point per method: its mean compute (log x) against its mean AUBC with a ± SE bar.

  Args:
    points: method -> (compute, AUBC mean, AUBC SE).
  """
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
  for name, (compute, mean, se) in points.items():
    axes.errorbar([compute], [mean], yerr=[se], fmt='o', capsize=3, label=name)
    axes.annotate(name, (compute, mean), textcoords='offset points', xytext=(4, 4), fontsize=7)
  axes.set_xscale('log')
  axes.set_xlabel(xlabel)
  axes.set_ylabel('AUBC (test accuracy, mean ± SE)')
  if title:
    axes.set_title(title)
  axes.grid(alpha=0.3, which='both')
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)


def _mean_se_line(axes, name, runs):
  n = np.asarray(runs[0][0], np.float64)
  values = np.stack([np.asarray(a, np.float64) for _, a in runs])
  mean = values.mean(0)
  se = values.std(0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
  (line,) = axes.plot(n, mean, marker='o', markersize=3, label=f'{name} (n={len(runs)})')
  axes.fill_between(n, mean - se, mean + se, color=line.get_color(), alpha=0.2)
