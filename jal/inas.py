"""iNAS, incremental neural architecture search (active-iNAS §4.3, Algorithm 1), and its active-learning policy.

iNAS(S, A_prev, space, T): split the labelled set S at random into S' (80%) and V' (20%); up to T times, train the
candidates {current, deeper, wider} ∩ space on S' (prematurely: a fraction of the full schedule) and score them by
validation error on V'; keep the best, ties going to the current architecture; stop as soon as the current one
wins. Only S' and V' are read: the test split never enters a choice (the official code selected on the test set).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import numpy as np

from jal import inherit as inherit_lib
from jal import progress
from jal.data import Dataset
from jal.models import ModelFn, count_params, init_variables
from jal.search_space import Architecture, SearchSpace
from jal.train import TrainConfig, train

INHERIT = ('none', 'round_model', 'lineage')  # How candidates start: `INASConfig.inherit`.


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
    space: the search grid (12 x 5 in the paper) and the least feature map a candidate may leave; the policies
      fit it to the pool's images each round (`for_input`).
    inherit: how candidates start. 'none' (the paper): from scratch, V' at random from S. 'round_model': from the
      previous round's model, its weights inherited into their architecture (`jal.inherit`; the current
      architecture and its deeper expansion compute that model's function); it trained on all of S, so V' can only
      be the last query's items, which an uncertainty query picked as the hardest. 'lineage': from the candidate
      the previous round's search chose, which the loop keeps (`jal.inherit.KeptModel`); it trained on S' only,
      and V' is persistent: it keeps the items held out so far and takes `validation_fraction` of each round's new
      labels at random, so no candidate of the lineage ever trained on it. Round 0 searches from scratch. Neither
      makes a short inherited schedule rank architectures as training from scratch does.
    inherited_fraction: the premature schedule of an inherited candidate, as a fraction of the full one (None:
      `candidate_fraction`); inherited weights need fewer steps to rank.
    choose: 'error' (the lowest validation error, `tie_break_key`) or 'pareto' (the smallest candidate, by
      parameter count, whose error is within one standard error of the lowest: sqrt(e(1 - e) / |V'|)).
  """

  max_steps: int = 1
  validation_fraction: float = 0.2
  candidate_fraction: float = 0.25
  num_seeds: int = 1
  score: str = 'best'
  schedule: str = 'truncated'
  space: SearchSpace = SearchSpace()
  inherit: str = 'none'
  inherited_fraction: float | None = None
  choose: str = 'error'

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
    if self.inherited_fraction is not None and not 0.0 < self.inherited_fraction <= 1.0:
      raise ValueError(f'INASConfig.inherited_fraction must be in (0, 1] or None, got {self.inherited_fraction}.')
    if self.inherit not in INHERIT:
      raise ValueError(f'INASConfig.inherit must be one of {INHERIT}, got {self.inherit!r}.')
    if self.choose not in ('error', 'pareto'):
      raise ValueError(f"INASConfig.choose must be 'error' or 'pareto', got {self.choose!r}.")


# scorer(arch, train_mask [N], validation_mask [N], rng) -> validation error in [0, 1], or an `Evaluation`; masks
# index the pool.
Scorer = Callable[[Architecture, np.ndarray, np.ndarray, jax.Array], 'float | Evaluation']


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """One candidate trained on S' and scored on V', and what that cost.

  Attributes:
    error: validation error on V' (mean over seeds).
    params: trainable parameters (None when the scorer cannot tell).
    steps: SGD steps spent, all seeds together (None when unknown).
    variables: seed 0's trained variables, for children that inherit them (None when not kept).
  """

  error: float
  params: int | None = None
  steps: int | None = None
  variables: dict | None = None


def as_evaluation(result) -> Evaluation:
  """A scorer's answer as an Evaluation (a plain float is the error alone)."""
  return result if isinstance(result, Evaluation) else Evaluation(float(result))


@dataclasses.dataclass(frozen=True)
class INASResult:
  """The chosen architecture, every candidate's validation error step by step, the search's cost, and the chosen
  candidate's evaluation with the S'/V' masks it was trained and scored on."""

  arch: Architecture
  steps: tuple[dict[str, float], ...]
  cost: dict[str, float] = dataclasses.field(default_factory=dict)
  evaluation: Evaluation | None = None
  split: tuple[np.ndarray, np.ndarray] | None = None

  def metrics(self) -> dict[str, float]:
    """Flat 'nas/...' scalars for a round's record."""
    out = {'nas/steps': len(self.steps), 'nas/chosen': str(self.arch), **self.cost}
    for step, errors in enumerate(self.steps):
      out.update({f'nas/step{step}/{name}': error for name, error in errors.items()})
    return out


class Ledger:
  """What a search spends on candidates: how many, SGD steps and seconds ('nas/candidate*' scalars)."""

  def __init__(self):
    self.candidates, self.steps, self.seconds, self.steps_known = 0, 0, 0.0, True

  def evaluate(self, scorer: Scorer, *args) -> Evaluation:
    """Calls the scorer, timing it and adding its cost."""
    start = time.perf_counter()
    evaluation = as_evaluation(scorer(*args))
    self.add(time.perf_counter() - start, evaluation.steps)
    return evaluation

  def add(self, seconds: float, steps: int | None) -> None:
    """Counts one candidate that took `seconds` and `steps` SGD steps (None: unknown)."""
    self.seconds += seconds
    self.candidates += 1
    if steps is None:
      self.steps_known = False
    else:
      self.steps += steps

  def metrics(self) -> dict[str, float]:
    out = {'nas/candidates': self.candidates, 'time/candidates': self.seconds}
    if self.steps_known:
      out['nas/candidate_steps'] = self.steps
    return out


def choose(evaluations: dict[Architecture, Evaluation], current: Architecture, config: INASConfig,
           num_validation: int) -> Architecture:
  """The candidate to keep: the lowest error (`tie_break_key`), or with choose='pareto' the smallest by
  parameter count among those within one standard error of the lowest (SE = sqrt(e(1 - e) / |V'|))."""
  best = min(evaluations, key=lambda arch: tie_break_key(arch, evaluations[arch].error, current))
  if config.choose == 'error':
    return best
  if any(e.params is None for e in evaluations.values()):
    raise ValueError("INASConfig.choose='pareto' needs each candidate's parameter count: return an Evaluation "
                     'with params from the scorer.')
  lowest = evaluations[best].error
  se = float(np.sqrt(max(lowest * (1.0 - lowest), 0.0) / max(num_validation, 1)))
  near = [arch for arch, e in evaluations.items() if e.error <= lowest + se]
  return min(near, key=lambda arch: (evaluations[arch].params,
                                     tie_break_key(arch, evaluations[arch].error, current)))


def split_labeled(labeled_mask: np.ndarray, validation_fraction: float, seed_rng: jax.Array,
                  unseen_mask: np.ndarray | None = None):
  """A seeded random split of the labelled set into S' and V' masks (V' has at least one item, S' too).

  With `unseen_mask` ([N] bool, e.g. the items a parent model never trained on), V' is drawn from the labelled
  items it holds first (as many as there are, up to the usual size), so an inherited model is not scored on its
  own training data.
  """
  labeled = np.flatnonzero(labeled_mask)
  if len(labeled) < 2:
    raise ValueError(f'iNAS needs at least 2 labelled items to split into S\' and V\', got {len(labeled)}.')
  seed = int(jax.random.randint(seed_rng, (), 0, np.iinfo(np.int32).max))
  order = np.random.default_rng(seed).permutation(labeled)
  if unseen_mask is not None:  # Unseen items first, each part in random order.
    order = np.concatenate([order[unseen_mask[order]], order[~unseen_mask[order]]])
  num_validation = min(len(labeled) - 1, max(1, int(round(validation_fraction * len(labeled)))))
  if unseen_mask is not None:
    num_validation = min(num_validation, max(1, int(np.sum(unseen_mask[order]))))
  train_mask = np.zeros_like(labeled_mask)
  validation_mask = np.zeros_like(labeled_mask)
  validation_mask[order[:num_validation]] = True
  train_mask[order[num_validation:]] = True
  return train_mask, validation_mask


def lineage_split(labeled_mask: np.ndarray, kept: inherit_lib.KeptModel, validation_fraction: float,
                  seed_rng: jax.Array):
  """S' and V' masks for candidates that inherit `kept`: V' keeps the labelled items held out from it and adds a
  seeded random `validation_fraction` of the items labelled since (at least one item in V'); S' is the rest of the
  labelled set. So V' grows with L as a random share of it, and no model of the lineage trains on it."""
  labeled = np.asarray(labeled_mask, bool)
  validation = np.asarray(kept.validation_mask, bool) & labeled
  new = np.flatnonzero(labeled & ~np.asarray(kept.train_mask, bool) & ~validation)
  seed = int(jax.random.randint(seed_rng, (), 0, np.iinfo(np.int32).max))
  order = np.random.default_rng(seed).permutation(new)
  count = int(round(validation_fraction * len(new)))
  count = min(len(new), max(count, 0 if validation.any() else 1))
  validation = validation.copy()
  validation[order[:count]] = True
  train = labeled & ~validation
  if not train.any() or not validation.any():
    raise ValueError(f'iNAS needs items in both S\' and V\', got {int(train.sum())} and {int(validation.sum())}.')
  return train, validation


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
    unseen_mask: np.ndarray | None = None,
    kept: inherit_lib.KeptModel | None = None,
) -> INASResult:
  """Algorithm 1: the architecture for the labelled set, starting from `start`.

  Args:
    labeled_mask: [N] bool, the labelled set S within the pool.
    start: A_{t-1}, the previous round's architecture (it must lie in `config.space`).
    config: iNAS settings.
    scorer: trains a candidate on S' and returns its validation error on V' (see `train_scorer`).
    rng: fixes the S'/V' split and the candidates' training.
    unseen_mask: [N] bool, items V' is drawn from first (those a parent model never trained on), or None.
    kept: the lineage the candidates inherit (`lineage_split` makes S' and V'), or None.
  """
  config.space.check(start)
  split_rng, train_rng = jax.random.split(rng)
  if kept is not None:
    train_mask, validation_mask = lineage_split(labeled_mask, kept, config.validation_fraction, split_rng)
  else:
    train_mask, validation_mask = split_labeled(np.asarray(labeled_mask), config.validation_fraction, split_rng,
                                                unseen_mask)
  ledger = Ledger()
  current, chosen = start, None
  steps = []
  for step in range(config.max_steps):
    candidates = config.space.candidates(current)
    evaluations = {arch: ledger.evaluate(scorer, arch, train_mask, validation_mask,
                                         jax.random.fold_in(train_rng, step)) for arch in candidates}
    steps.append({str(arch): e.error for arch, e in evaluations.items()})
    best = choose(evaluations, current, config, int(validation_mask.sum()))
    chosen = evaluations[best]
    if best == current:
      break
    current = best
  return INASResult(current, tuple(steps), {**ledger.metrics(), 'nas/validation_size': int(validation_mask.sum())},
                    chosen, (train_mask, validation_mask))


def candidate_schedule(train_config: TrainConfig, config: INASConfig, inherited: bool = False
                       ) -> tuple[TrainConfig, float]:
  """How a candidate trains: (its TrainConfig, the fraction of that schedule it runs), evaluated every epoch.

  'truncated' (the paper): the full schedule, stopped after `candidate_fraction` of it (so at the initial lr when
  the fraction is before the first decay); 'compressed': a whole schedule, decays included, in `candidate_fraction`
  of the epochs. An inherited candidate uses `inherited_fraction` instead, when set.
  """
  fraction = config.candidate_fraction
  if inherited and config.inherited_fraction is not None:
    fraction = config.inherited_fraction
  candidate_config = dataclasses.replace(train_config, eval_every=max(1, train_config.eval_every))
  if config.schedule == 'compressed':
    epochs = max(1, int(round(fraction * train_config.epochs)))
    return dataclasses.replace(candidate_config, epochs=epochs), 1.0
  return candidate_config, fraction


def train_scorer(
    pool: Dataset,
    labels: np.ndarray,
    train_config: TrainConfig,
    config: INASConfig,
    model_fn: ModelFn,
    parent: tuple[Architecture, dict] | None = None,
    keep_variables: bool = False,
) -> Scorer:
  """The scorer of the paper: train on S' for `candidate_fraction` of the schedule, score on V'.

  `labels` are the labels revealed so far ([N], read only where the masks hold); `model_fn` builds a candidate
  (the loop's model factory). With `parent` = (architecture, trained variables), every candidate starts from the
  parent's weights inherited into its architecture (`jal.inherit`) and trains for `inherited_fraction`; the
  scorer's optional fifth argument overrides the parent per call (evolution's Lamarckian children). Returns an
  `Evaluation`: the mean over `config.num_seeds` seeds of 1 - (best or final) validation accuracy, the parameter
  count, the SGD steps spent and, with `keep_variables`, seed 0's trained variables.
  """

  def scorer(arch, train_mask, validation_mask, rng, parent_override=None):
    model = model_fn(arch)
    source = parent_override or parent
    validation = (pool.images[validation_mask], labels[validation_mask])
    candidate_config, schedule_fraction = candidate_schedule(train_config, config, inherited=source is not None)
    kwargs = {}
    if source is not None:
      fresh = init_variables(model, jax.random.fold_in(rng, 1), pool.image_shape)
      kwargs['init'] = inherit_lib.inherit(source[1], source[0], fresh, arch)[0]
    with progress.task(f'candidate {arch}'):
      result = train(model, candidate_config, pool.images, np.maximum(labels, 0),
                     jax.random.split(rng, config.num_seeds), train_mask, validation=validation,
                     schedule_fraction=schedule_fraction, **kwargs)
    accuracies = result.best_val_accuracy() if config.score == 'best' else result.final_val_accuracy()
    steps = max(1, int(round(schedule_fraction * candidate_config.total_steps))) * config.num_seeds
    state = getattr(result, 'state', None)
    params = None if state is None else count_params(state.params) // config.num_seeds
    variables = result.state_for_seed(0).variables if keep_variables and state is not None else None
    return Evaluation(1.0 - float(np.mean(accuracies)), params, steps, variables)

  return scorer


def keeps_lineage(config: INASConfig) -> bool:
  """Whether a search keeps its chosen candidate for the next round (inherit='lineage')."""
  return config.inherit == 'lineage'


def lineage_of(inputs, config: INASConfig) -> inherit_lib.KeptModel | None:
  """The kept candidate this round's candidates inherit (inherit='lineage'), or None (round 0, or none)."""
  kept = getattr(inputs, 'kept', None)
  if not keeps_lineage(config) or kept is None:
    return None
  return kept if isinstance(kept.arch, Architecture) else None


def parent_of(inputs, config: INASConfig) -> tuple[Architecture, dict] | None:
  """(architecture, variables) candidates inherit: the previous round's model, or with inherit='lineage' the
  kept candidate; None when candidates start from scratch."""
  if keeps_lineage(config):
    kept = lineage_of(inputs, config)
    return None if kept is None else (kept.arch, jax.device_get(kept.variables))
  if (config.inherit != 'round_model' or inputs.previous_model is None
      or not isinstance(inputs.previous_arch, Architecture)):
    return None
  # On the host once per round: every candidate inherits from it (`inherit` would fetch it per candidate).
  return inputs.previous_arch, jax.device_get(inputs.previous_model.variables)


def unseen_of(inputs, config: INASConfig) -> np.ndarray | None:
  """With inheritance from the round model: the labelled items it never trained on (V' comes from them)."""
  if config.inherit != 'round_model' or inputs.previous_mask is None:
    return None
  return np.asarray(inputs.labeled_mask) & ~np.asarray(inputs.previous_mask)


def round_split(inputs, config: INASConfig, seed_rng: jax.Array) -> tuple[np.ndarray, np.ndarray]:
  """This round's S' and V' masks, as `inas` splits: `lineage_split` when candidates inherit a kept lineage, else
  `split_labeled` (V' first from the items the round model never saw, when candidates inherit it)."""
  kept = lineage_of(inputs, config)
  if kept is not None:
    return lineage_split(inputs.labeled_mask, kept, config.validation_fraction, seed_rng)
  return split_labeled(np.asarray(inputs.labeled_mask), config.validation_fraction, seed_rng,
                       unseen_of(inputs, config))


def answer(config: INASConfig, arch: Architecture, metrics: dict, evaluation: Evaluation | None,
           split: tuple[np.ndarray, np.ndarray]) -> tuple:
  """A search policy's return: (arch, scalars), plus the chosen candidate as a `jal.inherit.KeptModel` when it
  keeps a lineage."""
  if not keeps_lineage(config):
    return arch, metrics
  if evaluation is None or evaluation.variables is None:
    raise ValueError('A lineage search keeps its chosen candidate: its scorer must return the trained variables '
                     '(train_scorer(..., keep_variables=True)).')
  return arch, metrics, inherit_lib.KeptModel(evaluation.variables, split[0], split[1], arch)


def for_input(config: INASConfig, pool) -> INASConfig:
  """`config` with its space fitted to the pool's images (`SearchSpace.for_input`): no candidate leaves a last
  feature map under `space.min_feature_map`."""
  return dataclasses.replace(config, space=config.space.for_input(pool.image_shape))


def dropped_metrics(space: SearchSpace, arch: Architecture) -> dict[str, str]:
  """{'nas/dropped': 'A(1,4): a 1x1 feature map on 8x8 inputs (...); ...'} for the neighbours of `arch` that the
  input bound leaves out, or {} when it leaves out none."""
  dropped = space.dropped(arch)
  return {'nas/dropped': '; '.join(f'{a}: {why}' for a, why in dropped.items())} if dropped else {}


def inas_policy(config: INASConfig = INASConfig()):
  """active-iNAS's architecture policy for `jal.loop.run`: iNAS from the previous round's architecture.

  The first round starts from the space's root A(1,1); later rounds from the architecture the previous round
  chose, so capacity never shrinks. With inherit='lineage' it also returns the chosen
  candidate for the loop to keep (see `INASConfig`).
  """

  def policy(inputs, rng):
    search = for_input(config, inputs.pool)
    previous = inputs.previous_arch or search.space.root
    scorer = train_scorer(inputs.pool, inputs.labels, inputs.train, search, inputs.model_fn,
                          parent_of(inputs, search), keep_variables=keeps_lineage(search))
    result = inas(inputs.labeled_mask, previous, search, scorer, rng, unseen_of(inputs, search),
                  lineage_of(inputs, search))
    metrics = {**result.metrics(), **dropped_metrics(search.space, previous)}
    return answer(search, result.arch, metrics, result.evaluation, result.split)

  return policy
