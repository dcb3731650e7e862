"""Learning-curve metrics (SPEC §6; active-iNAS §5.4): AUBC, AUC-GAIN, mean ± standard error, paired differences
and when they are differences (a t test over seeds).

A learning curve is test accuracy a_r after training on n_r labels, r = 0..R. Everything here is NumPy on
host values: curves are a few dozen numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


def _curve(num_labels: Sequence[float], accuracy: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
  n = np.asarray(num_labels, np.float64)
  a = np.asarray(accuracy, np.float64)
  if n.ndim != 1 or n.shape != a.shape or n.size < 1:
    raise ValueError(
        f'A learning curve needs matching 1-D label counts and accuracies with at least 1 round, got shapes '
        f'{n.shape} and {a.shape}.')
  if np.any(np.diff(n) <= 0):
    raise ValueError(f'Label counts must increase strictly from round to round, got {n.tolist()}.')
  if not np.all(np.isfinite(a)):
    raise ValueError('Accuracies must be finite.')
  return n, a


def aubc(num_labels: Sequence[float], accuracy: Sequence[float]) -> float:
  """Area under the budget curve: trapezoid area of accuracy over labels, divided by (n_R - n_0); in [0, 1]. A
  curve of one round (a session that trained on its initial set only) has the limit of that ratio: its accuracy."""
  n, a = _curve(num_labels, accuracy)
  if n.size == 1:
    return float(a[0])
  return float(np.trapezoid(a, n) / (n[-1] - n[0]))


def auc_gain(
    num_labels: Sequence[float], active_accuracy: Sequence[float], passive_accuracy: Sequence[float]
) -> float:
  """Relative reduction of the area under the 0-1-loss curve against the passive learner (active-iNAS §5.4).

  (AUC_err(passive) - AUC_err(active)) / AUC_err(passive), with the same architecture, seeds and label counts.
  """
  n, active = _curve(num_labels, active_accuracy)
  _, passive = _curve(num_labels, passive_accuracy)
  area = (lambda y: float(y[0])) if n.size == 1 else (lambda y: np.trapezoid(y, n))  # One round: its error.
  passive_error = area(1.0 - passive)
  if passive_error <= 0:
    raise ValueError('The passive learner has zero error everywhere; AUC-GAIN is undefined.')
  return float((passive_error - area(1.0 - active)) / passive_error)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
  """Mean and standard error of the mean (sample std / sqrt(n); 0 for a single value)."""
  v = np.asarray(values, np.float64)
  if v.size == 0:
    raise ValueError('mean_se of no values.')
  se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
  return float(v.mean()), se


def t_critical(df: int, level: float = 0.95) -> float:
  """The two-sided t critical value for `df` degrees of freedom (4.30 at 2, 2.78 at 4): a paired mean over n seeds
  is a difference at `level` only when |mean| > t_critical(n - 1) * SE; 2 SE is p ~ 0.18 at 3 seeds."""
  if df < 1:
    raise ValueError(f't_critical needs at least 1 degree of freedom (2 seeds), got {df}.')
  from scipy import stats
  return float(stats.t.ppf(0.5 + level / 2, df))


class Paired(NamedTuple):
  """A paired difference over `n` seeds: mean ± SE, and whether it clears the t critical value (`t_critical`)."""

  mean: float
  se: float
  n: int

  @property
  def t(self) -> float:
    return self.mean / self.se if self.se > 0 else (float(np.sign(self.mean)) * float('inf') if self.mean else 0.0)

  @property
  def distinguishable(self) -> bool:
    """|t| above the two-sided 5% t critical value for n - 1 degrees of freedom (never with one seed)."""
    return self.n > 1 and abs(self.t) > t_critical(self.n - 1)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Paired:
  """Mean ± standard error of a_s - b_s over paired seeds s (the same initial labelled set per seed)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f'Paired values need one value per seed on both sides, got {a.shape} and {b.shape}.')
  return Paired(*mean_se(a - b), a.size)

