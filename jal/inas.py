"""iNAS, incremental neural architecture search (active-iNAS §4.3, Algorithm 1), and its active-learning policy.

iNAS(S, A_prev, space, T): split the labelled set S at random into S' (80%) and V' (20%); up to T times, train the
candidates {current, deeper, wider} ∩ space on S' (prematurely: a fraction of the full schedule) and score them by
validation error on V'; keep the best, ties going to the current architecture; stop as soon as the current one
wins. Only S' and V' are read: the test split never enters a choice (the official code selected on the test set).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from jal.data import Dataset
from jal.models import ModelFn
from jal.search_space import Architecture, SearchSpace
from jal.train import TrainConfig, train


@dataclasses.dataclass(frozen=True)
class INASConfig:
  """iNAS settings; the defaults are the paper's.

  Attributes:
    max_steps: T_iNAS, the most expansions per call (1 in the paper).
    validation_fraction: the share of S held out as V' (20%).
    candidate_fraction: premature evaluation: candidates train for this fraction of the full schedule (1/4).
    num_seeds: candidates are trained with this many seeds and scored by their mean validation error; more
      seeds make the choice less noisy on small labelled sets.
    score: 'best' (the best validation accuracy over epochs, as the official code) or 'final'.
    schedule: 'truncated' (the paper: the first `candidate_fraction` of the full schedule, at the initial
      learning rate) or 'compressed' (a whole schedule, decays included, in `candidate_fraction` of the epochs;
      ranks better when the full schedule is short, as at CPU scale).
    space: the search grid (12 x 5 in the paper).
  """

  max_steps: int = 1
  validation_fraction: float = 0.2
  candidate_fraction: float = 0.25
  num_seeds: int = 1
  score: str = 'best'
  schedule: str = 'truncated'
  space: SearchSpace = SearchSpace()

  def __post_init__(self):
    if self.max_steps < 1 or self.num_seeds < 1:
      raise ValueError(f'INASConfig needs max_steps >= 1 and num_seeds >= 1, got {self.max_steps}, '
                       f'{self.num_seeds}.')
    if not 0.0 < self.validation_fraction < 1.0 or not 0.0 < self.candidate_fraction <= 1.0:
      raise ValueError('validation_fraction must be in (0, 1) and candidate_fraction in (0, 1].')
    if self.schedule not in ('truncated', 'compressed'):
      raise ValueError(f"INASConfig.schedule must be 'truncated' or 'compressed', got {self.schedule!r}.")
    if self.score not in ('best', 'final'):
      raise ValueError(f"INASConfig.score must be 'best' or 'final', got {self.score!r}.")


# scorer(arch, train_mask [N], validation_mask [N], rng) -> validation error in [0, 1]; masks index the pool.
Scorer = Callable[[Architecture, np.ndarray, np.ndarray, jax.Array], float]


@dataclasses.dataclass(frozen=True)
class INASResult:
  """The chosen architecture and every candidate's validation error, step by step."""

  arch: Architecture
  steps: tuple[dict[str, float], ...]

  def metrics(self) -> dict[str, float]:
    """Flat 'nas/...' scalars for a round's record."""
    out = {'nas/steps': len(self.steps), 'nas/chosen': str(self.arch)}
    for step, errors in enumerate(self.steps):
      out.update({f'nas/step{step}/{name}': error for name, error in errors.items()})
    return out


def split_labeled(labeled_mask: np.ndarray, validation_fraction: float, seed_rng: jax.Array):
  """A seeded random split of the labelled set into S' and V' masks (V' has at least one item, S' too)."""
  labeled = np.flatnonzero(labeled_mask)
  if len(labeled) < 2:
    raise ValueError(f'iNAS needs at least 2 labelled items to split into S\' and V\', got {len(labeled)}.')
  seed = int(jax.random.randint(seed_rng, (), 0, np.iinfo(np.int32).max))
  order = np.random.default_rng(seed).permutation(labeled)
  num_validation = min(len(labeled) - 1, max(1, int(round(validation_fraction * len(labeled)))))
  train_mask = np.zeros_like(labeled_mask)
  validation_mask = np.zeros_like(labeled_mask)
  validation_mask[order[:num_validation]] = True
  train_mask[order[num_validation:]] = True
  return train_mask, validation_mask


def tie_break_key(arch: Architecture, error: float, current: Architecture) -> tuple:
  """How iNAS ranks candidates: the lowest validation error; on a tie the current architecture (no growth without
  evidence), then the shallower one, then the one with fewer stacks (A(2,1) before A(1,2), which have the same
  depth: the deeper expansion keeps the resolution-preserving shape). Never the order candidates were listed in."""
  return (error, arch != current, arch.depth, arch.stacks)


def inas(
    labeled_mask: np.ndarray,
    start: Architecture,
    config: INASConfig,
    scorer: Scorer,
    rng: jax.Array,
) -> INASResult:
  """Algorithm 1: the architecture for the labelled set, starting from `start`.

  Args:
    labeled_mask: [N] bool, the labelled set S within the pool.
    start: A_{t-1}, the previous round's architecture (it must lie in `config.space`).
    config: iNAS settings.
    scorer: trains a candidate on S' and returns its validation error on V' (see `train_scorer`).
    rng: fixes the S'/V' split and the candidates' training.
  """
  config.space.check(start)
  split_rng, train_rng = jax.random.split(rng)
  train_mask, validation_mask = split_labeled(np.asarray(labeled_mask), config.validation_fraction, split_rng)
  current = start
  steps = []
  for step in range(config.max_steps):
    candidates = config.space.candidates(current)
    errors = {arch: float(scorer(arch, train_mask, validation_mask, jax.random.fold_in(train_rng, step)))
              for arch in candidates}
    steps.append({str(arch): error for arch, error in errors.items()})
    best = min(candidates, key=lambda arch: tie_break_key(arch, errors[arch], current))
    if best == current:
      break
    current = best
  return INASResult(current, tuple(steps))


def candidate_schedule(train_config: TrainConfig, config: INASConfig) -> tuple[TrainConfig, float]:
  """How a candidate trains: (its TrainConfig, the fraction of that schedule it runs), evaluated every epoch.

  'truncated' (the paper): the full schedule, stopped after `candidate_fraction` of it (so at the initial lr when
  the fraction is before the first decay); 'compressed': a whole schedule, decays included, in `candidate_fraction`
  of the epochs.
  """
  candidate_config = dataclasses.replace(train_config, eval_every=max(1, train_config.eval_every))
  if config.schedule == 'compressed':
    epochs = max(1, int(round(config.candidate_fraction * train_config.epochs)))
    return dataclasses.replace(candidate_config, epochs=epochs), 1.0
  return candidate_config, config.candidate_fraction


def train_scorer(
    pool: Dataset,
    labels: np.ndarray,
    train_config: TrainConfig,
    config: INASConfig,
    model_fn: ModelFn,
) -> Scorer:
  """The scorer of the paper: train on S' for `candidate_fraction` of the schedule, score on V'.

  `labels` are the labels revealed so far ([N], read only where the masks hold); `model_fn` builds a candidate
  (the loop's model factory). Returns the mean over `config.num_seeds` seeds of 1 - (best or final) validation
  accuracy.
  """

  def scorer(arch, train_mask, validation_mask, rng):
    model = model_fn(arch)
    validation = (pool.images[validation_mask], labels[validation_mask])
    candidate_config, schedule_fraction = candidate_schedule(train_config, config)
    result = train(model, candidate_config, pool.images, np.maximum(labels, 0),
                   jax.random.split(rng, config.num_seeds), train_mask, validation=validation,
                   schedule_fraction=schedule_fraction)
    accuracies = result.best_val_accuracy() if config.score == 'best' else result.final_val_accuracy()
    return 1.0 - float(np.mean(accuracies))

  return scorer


def inas_policy(config: INASConfig = INASConfig(), start: Architecture | None = None):
  """active-iNAS's architecture policy for `jal.loop.run`: iNAS from the previous round's architecture.

  The first round starts from `start` (default: the space's root A(1,1)); later rounds from the architecture the
  previous round chose, so capacity never shrinks.
  """

  def policy(inputs, rng):
    previous = inputs.previous_arch or start or config.space.root
    scorer = train_scorer(inputs.pool, inputs.labels, inputs.train, config, inputs.model_fn)
    result = inas(inputs.labeled_mask, previous, config, scorer, rng)
    return result.arch, result.metrics()

  return policy


def validation_study_policy(config: INASConfig, holdout: tuple[np.ndarray, np.ndarray], num_seeds: int = 3,
                            start: Architecture | None = None):
  """iNAS that also measures its own scoring: each candidate trains with `num_seeds` seeds on S', and the round
  records, per candidate and seed, the error on V' (best over epochs and final) and on `holdout`, a labelled split
  never queried (the pool's own held-out images, never the test split). The choice is iNAS's with seed 0 scored
  as `config.score`, so the trajectory is an active-iNAS run; the records show how far V' is from unbiased data,
  whether a choice on the holdout would differ, and how often another seed would choose another architecture.

  Records 'study/<arch>/<seed>/val_best', '.../val_final', '.../holdout' (errors in [0, 1]).
  """
  from jal.predict import evaluate  # Diagnostics only: iNAS itself never evaluates outside V'.

  def policy(inputs, rng):
    previous = inputs.previous_arch or start or config.space.root
    pool, labels = inputs.pool, np.maximum(inputs.labels, 0)
    records = {}

    def scorer(arch, train_mask, validation_mask, candidate_rng):
      model = inputs.model_fn(arch)
      candidate_config, schedule_fraction = candidate_schedule(inputs.train, config)
      result = train(model, candidate_config, pool.images, labels, jax.random.split(candidate_rng, num_seeds),
                     train_mask, validation=(pool.images[validation_mask], labels[validation_mask]),
                     schedule_fraction=schedule_fraction)
      best, final = result.best_val_accuracy(), result.final_val_accuracy()
      for seed in range(num_seeds):
        held_out = evaluate(model, result.state_for_seed(seed).variables, *holdout)['accuracy']
        records.update({f'study/{arch}/{seed}/val_best': 1.0 - best[seed],
                        f'study/{arch}/{seed}/val_final': 1.0 - final[seed],
                        f'study/{arch}/{seed}/holdout': 1.0 - held_out})
      records[f'study/{arch}/num_validation'] = int(validation_mask.sum())
      return 1.0 - (best[0] if config.score == 'best' else final[0])

    result = inas(inputs.labeled_mask, previous, config, scorer, rng)
    return result.arch, {**result.metrics(), **records}

  return policy
