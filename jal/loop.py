"""The active-learning loop: Algorithm 2 of active-iNAS with the architecture policy as a parameter.

Each round r: the policy names an architecture for the labelled set L (a fixed one, or iNAS later); the model
is trained on L and scored on the test split; the query strategy picks the next b pool items; the oracle labels
them. The state (`LoopState`) holds everything a round changes; shapes are fixed by the pool, so nothing
recompiles between rounds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Protocol

import jax
import numpy as np
from flax import struct

from jal import query as query_lib
from jal.data import Dataset, Splits
from jal.models import ResNet, build_model
from jal.search_space import Architecture
from jal.train import TrainConfig, TrainState, evaluate, train


class Oracle(Protocol):
  """Answers label requests: `label(indices [b] int, round_index) -> [b] int class indices`.

  A human oracle may instead raise (`jal.labelling.LabelsRequested`) after writing the items to label; the
  session's checkpoint keeps the query, and the next run with the answers continues from it.
  """

  def label(self, indices: np.ndarray, round_index: int) -> np.ndarray:
    ...


@dataclasses.dataclass(frozen=True, eq=False)
class SimulatedOracle:
  """Reveals the known labels of a pool (the standard simulated active-learning protocol)."""

  labels: np.ndarray

  def label(self, indices: np.ndarray, round_index: int = 0) -> np.ndarray:
    del round_index
    labels = np.asarray(self.labels)[np.asarray(indices)]
    if np.any(labels < 0):
      raise ValueError('The pool has no known labels for some queried items (an unlabelled image folder): '
                       'only a human oracle can label them (jal.labelling.HumanOracle, --oracle=human).')
    return labels


@dataclasses.dataclass(frozen=True)
class BudgetSchedule:
  """How many labels to ask for: k random initial labels, then b per round, growing to b2 once |L| >= grow_after,
  until |L| reaches `total` (the paper: 2000, 2000 -> 5000 after 10,000, total 50,000)."""

  initial: int
  per_round: int
  total: int
  grown_per_round: int | None = None
  grow_after: int | None = None

  def __post_init__(self):
    if self.initial < 1 or self.per_round < 1 or self.total < self.initial:
      raise ValueError(
          f'BudgetSchedule needs initial >= 1, per_round >= 1 and total >= initial; got initial={self.initial}, '
          f'per_round={self.per_round}, total={self.total}.')
    if (self.grown_per_round is None) != (self.grow_after is None):
      raise ValueError('Set both grown_per_round and grow_after, or neither.')

  def next_batch(self, num_labeled: int) -> int:
    """Labels to ask for in the round that starts with `num_labeled` labels (0 when the budget is spent)."""
    size = self.per_round
    if self.grow_after is not None and num_labeled >= self.grow_after:
      size = self.grown_per_round
    return max(0, min(size, self.total - num_labeled))

  def label_counts(self) -> list[int]:
    """|L| at every round, initial set included."""
    counts = [self.initial]
    while (b := self.next_batch(counts[-1])) > 0:
      counts.append(counts[-1] + b)
    return counts


class Querier(Protocol):
  """A query method with state that persists across rounds (AutoAL's networks), beside the stateless strategies.

  `name` appears in the history; `needs` lists the task-model outputs it reads ('probs', 'embeddings', 'mc'), so
  the loop trains the task model with the dropout slot when 'mc' is needed. A querier whose state should survive
  a restart also defines `state_template(pool)`, the abstract (shape-only) state `jal.session` restores into.
  """

  name: str
  needs: frozenset[str]

  def query(self, state: LoopState, pool: Dataset, model: ResNet, variables: dict, budget: int,
            rng: jax.Array) -> tuple[np.ndarray, dict, object]:
    """Picks `budget` unlabelled pool items: ([budget] indices, scalars for the history, new `state.query_state`)."""
    ...


def strategy_name(strategy: str | Querier) -> str:
  """The name a strategy is recorded under."""
  return strategy if isinstance(strategy, str) else strategy.name


def strategy_needs(strategy: str | Querier) -> frozenset[str]:
  """The task-model outputs a strategy reads."""
  return query_lib.get_query(strategy).needs if isinstance(strategy, str) else strategy.needs


# An architecture policy: (state, pool, loop config, rng) -> (the architecture for this round, 'nas/' scalars).
# It sees the pool and the labels revealed so far, never the test split.
ArchitecturePolicy = Callable[['LoopState', Dataset, 'LoopConfig', jax.Array], tuple[Architecture, dict]]


def fixed(arch: Architecture) -> ArchitecturePolicy:
  """The baseline policy: the same architecture in every round."""

  def policy(state, pool, config, rng):
    del state, pool, config, rng
    return arch, {}

  return policy


@struct.dataclass
class LoopState:
  """Everything an active-learning session changes, as a PyTree.

  Attributes:
    labeled_mask: [N] bool, the labelled set L within the pool.
    labels: [N] int32 labels revealed so far (-1 where not asked yet).
    round: the number of finished rounds.
    rng: the session's root key; each round folds in its index.
    query_state: the state a `Querier` carries between rounds (AutoAL's networks); None for plain strategies.
    arch: the architecture of the last trained round (static).
    history: one dict of scalars per finished round (static, JSON-friendly).
  """

  labeled_mask: np.ndarray
  labels: np.ndarray
  round: int
  rng: jax.Array
  query_state: object = None
  arch: Architecture | None = struct.field(pytree_node=False, default=None)
  history: tuple[dict, ...] = struct.field(pytree_node=False, default=())

  @property
  def num_labeled(self) -> int:
    return int(np.sum(self.labeled_mask))

  def reveal(self, indices: np.ndarray, labels: np.ndarray) -> LoopState:
    """L ∪ indices with their labels; refuses items already labelled or labels of the wrong shape."""
    indices = np.asarray(indices)
    labels = np.asarray(labels)
    if labels.shape != indices.shape:
      raise ValueError(f'The oracle returned {labels.shape} labels for {indices.shape} items.')
    if np.any(self.labeled_mask[indices]) or len(np.unique(indices)) != len(indices):
      raise ValueError('A query selected an item twice or one that is already labelled.')
    mask = self.labeled_mask.copy()
    revealed = self.labels.copy()
    mask[indices] = True
    revealed[indices] = labels
    return self.replace(labeled_mask=mask, labels=revealed)


def init_state(pool_size: int, schedule: BudgetSchedule, oracle: Oracle, seed: int) -> LoopState:
  """k random initial labels (depending on `seed` only, so strategies compared on a seed share them)."""
  if schedule.total > pool_size:
    raise ValueError(
        f'The total budget ({schedule.total}) exceeds the pool ({pool_size} items); lower the budget or use a '
        'larger pool.')
  initial = np.random.default_rng(seed).choice(pool_size, schedule.initial, replace=False)
  state = LoopState(np.zeros(pool_size, bool), np.full(pool_size, -1, np.int32), 0, jax.random.key(seed))
  return state.reveal(initial, oracle.label(initial, -1))


def seeded_state(pool: Dataset, schedule: BudgetSchedule, seed: int) -> LoopState:
  """The initial state of a pool that comes with its own labels for some items (an image folder's seed labels)."""
  known = np.asarray(pool.labels) >= 0
  if int(known.sum()) != schedule.initial:
    raise ValueError(f'The pool comes with {int(known.sum())} labelled items but the budget says initial = '
                     f'{schedule.initial}; set --config.budget.initial={int(known.sum())}.')
  if schedule.total > len(pool):
    raise ValueError(f'The total budget ({schedule.total}) exceeds the pool ({len(pool)} items); lower it.')
  return LoopState(known, np.where(known, pool.labels, -1).astype(np.int32), 0, jax.random.key(seed))


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  """The loop's settings besides the strategy and policy.

  Attributes:
    schedule: the label budget.
    train: optimisation of each round's model.
    width: base width of the models.
    dropout_rate: rate of the dropout slot (0.5 for MC-dropout strategies; trained with it, as in the paper).
    mc_passes: T stochastic passes for MC-dropout strategies.
    conv_bias, conv_impl: model options (see `jal.models.build_model`).
  """

  schedule: BudgetSchedule
  train: TrainConfig
  width: int = 64
  dropout_rate: float = 0.0
  mc_passes: int = 100
  conv_bias: bool = True
  conv_impl: str = 'auto'


@dataclasses.dataclass
class RoundProgress:
  """What the current round has finished, phase by phase: the unit a session checkpoints.

  Attributes:
    phase: the last finished phase: 'start' (nothing yet), 'policy' (architecture chosen), 'train' (model trained
      and evaluated), 'query' (items chosen, awaiting their labels).
    arch: the architecture chosen for the round.
    record: the round's scalars so far.
    train_state: the trained task model (seed 0).
    pending: [b] pool indices chosen by the query, awaiting labels (empty when the budget is spent).
    query_state: the querier's state after this round's query.
  """

  phase: str = 'start'
  arch: Architecture | None = None
  record: dict = dataclasses.field(default_factory=dict)
  train_state: TrainState | None = None
  pending: np.ndarray | None = None
  query_state: object = None


PHASES = ('start', 'policy', 'train', 'query')


def round_model(arch: Architecture, pool: Dataset, config: LoopConfig) -> ResNet:
  """The task model of a round."""
  return build_model(arch, pool.num_classes, config.width, config.conv_bias, config.dropout_rate, config.conv_impl)


def run_round(
    state: LoopState,
    splits: Splits,
    config: LoopConfig,
    strategy: str | Querier,
    policy: ArchitecturePolicy,
    oracle: Oracle,
    progress: RoundProgress | None = None,
    on_phase: Callable[[LoopState, RoundProgress], None] | None = None,
) -> LoopState:
  """One round of Algorithm 2: choose the architecture, train on L and evaluate on test, query b items, label them.

  Args:
    progress: resume the round after its last finished phase (from a checkpoint); default: from the start.
    on_phase: called after each phase with the unchanged state and the progress (a session saves it).
  """
  pool = splits.pool
  progress = progress or RoundProgress()
  round_rng = jax.random.fold_in(state.rng, state.round)
  policy_rng, train_rng, query_rng = jax.random.split(round_rng, 3)

  if progress.phase == 'start':
    start = time.perf_counter()
    arch, policy_metrics = policy(state, pool, config, policy_rng)
    progress = dataclasses.replace(progress, phase='policy', arch=arch, record={
        'round': state.round, 'num_labeled': state.num_labeled, 'strategy': strategy_name(strategy),
        'arch': str(arch), 'arch/blocks': arch.blocks, 'arch/stacks': arch.stacks, 'arch/depth': arch.depth,
        'arch/params': arch.num_params(pool.num_classes, pool.image_shape[-1], config.width, config.conv_bias),
        'time/nas': time.perf_counter() - start, **policy_metrics})
    if on_phase is not None:
      on_phase(state, progress)

  model = round_model(progress.arch, pool, config)
  if progress.phase == 'policy':
    start = time.perf_counter()
    result = train(model, config.train, pool.images, np.maximum(state.labels, 0), train_rng, state.labeled_mask)
    train_state = result.state_for_seed(0)
    train_seconds = time.perf_counter() - start
    scores = evaluate(model, train_state.variables, splits.test.images, splits.test.labels)
    progress = dataclasses.replace(progress, phase='train', train_state=train_state, record={
        **progress.record, 'test/accuracy': scores['accuracy'], 'test/loss': scores['loss'],
        'train/loss': result.history[0][-1]['train/loss'], 'time/train': train_seconds})
    if on_phase is not None:
      on_phase(state, progress)

  if progress.phase == 'train':
    record = {**progress.record, 'time/score': 0.0, 'time/select': 0.0, 'query/size': 0}
    variables = progress.train_state.variables
    budget = config.schedule.next_batch(state.num_labeled)
    indices, query_state = np.zeros(0, np.int32), state.query_state
    if budget > 0 and not isinstance(strategy, str):
      start = time.perf_counter()
      indices, query_metrics, query_state = strategy.query(state, pool, model, variables, budget, query_rng)
      record['time/query'] = time.perf_counter() - start
      record.update(query_metrics)
    elif budget > 0:
      start = time.perf_counter()
      inputs = query_lib.pool_inputs(strategy, model, variables, pool.images, ~state.labeled_mask,
                                     state.labeled_mask, jax.random.fold_in(query_rng, 0), config.mc_passes)
      jax.block_until_ready(inputs)
      record['time/score'] = time.perf_counter() - start
      start = time.perf_counter()
      indices = query_lib.select(strategy, inputs, budget, jax.random.fold_in(query_rng, 1))
      record['time/select'] = time.perf_counter() - start
    record['query/size'] = int(len(indices))
    progress = dataclasses.replace(progress, phase='query', record=record,
                                   pending=np.asarray(indices, np.int32), query_state=query_state)
    if on_phase is not None:
      on_phase(state, progress)

  new_state = state
  if len(progress.pending):
    new_state = state.reveal(progress.pending, oracle.label(progress.pending, state.round))
  return new_state.replace(round=state.round + 1, arch=progress.arch, query_state=progress.query_state,
                           history=state.history + (progress.record,))


def run(
    splits: Splits,
    config: LoopConfig,
    strategy: str | Querier,
    policy: ArchitecturePolicy,
    oracle: Oracle | None = None,
    seed: int = 0,
    state: LoopState | None = None,
    on_round: Callable[[LoopState], None] | None = None,
    progress: RoundProgress | None = None,
    on_phase: Callable[[LoopState, RoundProgress], None] | None = None,
) -> LoopState:
  """Runs rounds until the budget is spent and the final labelled set has been trained on.

  Args:
    splits: pool (the oracle's labels), test (reporting only).
    config: budget, training and model settings.
    strategy: a registered query strategy (`jal.query.QUERIES`) or a `Querier` (`jal.autoal.AutoAL`).
    policy: the architecture policy (`fixed(A(1,2))`, or `jal.inas.inas_policy(...)`).
    oracle: answers label requests; default: the pool's own labels (simulation).
    seed: fixes the initial labelled set and every key.
    state: resume from this state instead of starting afresh.
    on_round: called with the state after every round (progress reports, checkpoints).
    progress: resume the current round of `state` after this phase (see `RoundProgress`).
    on_phase: called after every phase of every round (`jal.session.Session` saves there).
  """
  strategy_needs(strategy)  # An unknown name fails before any training.
  oracle = oracle or SimulatedOracle(splits.pool.labels)
  if state is None:
    state = (seeded_state(splits.pool, config.schedule, seed) if splits.pool.unknown_labels
             else init_state(len(splits.pool), config.schedule, oracle, seed))
  num_rounds = len(config.schedule.label_counts())
  while state.round < num_rounds:
    state = run_round(state, splits, config, strategy, policy, oracle, progress, on_phase)
    progress = None
    if on_round is not None:
      on_round(state)
  return state
