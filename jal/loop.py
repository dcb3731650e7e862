"""The active-learning loop: Algorithm 2 of active-iNAS, with the architecture policy and the query as parameters.

Each round r: the policy names an architecture for the labelled set L (a fixed one, or iNAS); the model is trained
on L and scored on the test split; the querier picks the next b pool items; the oracle labels them. A policy may
keep a model for its next round (`jal.inherit.KeptModel`: a search's chosen candidate, which the next search
inherits). `LoopState` holds everything the rounds change and `RoundProgress` what the current round has finished;
both are PyTrees, and with a `jal.checkpoint.Checkpointer` the loop saves them after every phase and resumes where
it stopped (on the CPU a killed run finishes with the same history and parameters as an uninterrupted one). Shapes
are fixed by the pool, so nothing recompiles between rounds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from flax import struct

from jal import checkpoint as checkpoint_lib
from jal import cold_start, pretrained
from jal import inherit as inherit_lib
from jal import progress as progress_lib
from jal import query as query_lib
from jal.data import Dataset, Splits, row_blocks
from jal.models import ModelConfig, ModelFn, count_params, init_variables
from jal.models import model_fn as default_model_fn
from jal.oracle import Oracle, SimulatedOracle
from jal.predict import evaluate, predict
from jal.search_space import Architecture, parse_architecture
from jal.train import TrainConfig, TrainState, create_train_state, make_optimizer, train


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


class CompileCounter:
  """XLA compilations of this process (events and seconds), from JAX's monitoring events: the loop records each
  round's share ('compile/events', 'time/compile'). One listener, registered at import."""

  EVENT = '/jax/core/compile/backend_compile_duration'

  def __init__(self):
    self.events, self.seconds = 0, 0.0
    jax.monitoring.register_event_duration_secs_listener(self._listen)

  def _listen(self, event: str, duration: float, **_):
    if event == self.EVENT:
      self.events += 1
      self.seconds += duration

  def snapshot(self) -> tuple[int, float]:
    return self.events, self.seconds


COMPILES = CompileCounter()


@dataclasses.dataclass(frozen=True)
class PolicyInputs:
  """What an architecture policy reads in a round: the pool, the labels revealed so far, the previous round's
  architecture and model, and how models are built and trained. Never the test split.

  Attributes:
    pool: the pool; its images are what candidates train and validate on.
    labeled_mask: [N] bool, the labelled set L.
    labels: [N] int32, revealed labels (-1 where not asked).
    previous_arch: the previous round's architecture (None in round 0).
    previous_model: the previous round's trained task model (None in round 0).
    previous_mask: [N] bool, the labelled set `previous_model` was trained on (None when unknown): a policy whose
      candidates inherit from it validates on items outside it.
    round: the round index.
    train: how the round model trains (policies derive candidate schedules from it).
    model_fn: architecture -> Flax module.
    kept: the model the policy kept last round (`jal.inherit.KeptModel`; None in round 0 and for policies that
      keep none).
  """

  pool: Dataset
  labeled_mask: np.ndarray
  labels: np.ndarray
  previous_arch: Any
  previous_model: TrainState | None
  previous_mask: np.ndarray | None
  round: int
  train: TrainConfig
  model_fn: ModelFn
  kept: inherit_lib.KeptModel | None = None


# An architecture policy: (inputs, rng) -> (the architecture for this round, 'nas/' scalars for the history), or
# (architecture, scalars, jal.inherit.KeptModel) to keep a model for the next round (`PolicyInputs.kept`).
ArchitecturePolicy = Callable[[PolicyInputs, jax.Array], tuple]


def fixed(arch) -> ArchitecturePolicy:
  """The baseline policy: the same architecture in every round (a `jal.Architecture`, or with your own model_fn
  any string that names your model)."""

  def policy(inputs, rng):
    del inputs, rng
    return arch, {}

  return policy


@struct.dataclass
class LoopState:
  """Everything an active-learning session changes, as a PyTree.

  Attributes:
    labeled_mask: [N] bool, the labelled set L within the pool.
    labels: [N] int32 labels revealed so far (-1 where not asked yet).
    rng: the session's root key; each round folds in its index.
    query_state: the querier's state carried between rounds (AutoAL's networks); None for plain strategies.
    train_state: the task model of the last finished round (None before the first).
    model_mask: [N] bool, the labelled set `train_state` was trained on (None before the first round, and in
      checkpoints written before it was kept): what a model inheriting from it has seen.
    kept: the model the policy kept in the last finished round (`jal.inherit.KeptModel`), or None.
    round: the number of finished rounds (static).
    arch: the architecture of the last finished round (static).
    history: one dict of scalars per finished round (static, JSON-friendly).
  """

  labeled_mask: np.ndarray
  labels: np.ndarray
  rng: jax.Array
  query_state: Any = None
  train_state: TrainState | None = None
  model_mask: np.ndarray | None = None
  kept: inherit_lib.KeptModel | None = None
  round: int = struct.field(pytree_node=False, default=0)
  arch: Any = struct.field(pytree_node=False, default=None)
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
    mask = np.asarray(self.labeled_mask).copy()
    revealed = np.asarray(self.labels).copy()
    mask[indices] = True
    revealed[indices] = labels
    return self.replace(labeled_mask=mask, labels=revealed)


@struct.dataclass
class RoundProgress:
  """What the current round has finished, phase by phase: the unit the loop checkpoints.

  Attributes:
    train_state: the round's trained task model (after 'train').
    pending: [b] int32 pool indices chosen by the query, awaiting labels (after 'query').
    query_state: the querier's state after this round's query.
    kept: the model this round's policy kept (after 'policy'), or None.
    phase: the last finished phase (static): 'start' (nothing yet), 'policy' (architecture chosen), 'train'
      (model trained and evaluated), 'query' (items chosen, awaiting their labels).
    arch: the architecture chosen for the round (static).
    record: the round's scalars so far (static).
  """

  train_state: TrainState | None = None
  pending: np.ndarray | None = None
  query_state: Any = None
  kept: inherit_lib.KeptModel | None = None
  phase: str = struct.field(pytree_node=False, default='start')
  arch: Any = struct.field(pytree_node=False, default=None)
  record: dict = struct.field(pytree_node=False, default_factory=dict)


PHASES = ('start', 'policy', 'train', 'query')


def initial_state(pool_size: int, schedule: BudgetSchedule, oracle: Oracle, seed: int,
                  initial: np.ndarray | None = None) -> LoopState:
  """The state with the initial set labelled: `initial` ([k] items, `jal.cold_start`), by default k random
  items (depending on `seed` only, so strategies compared on a seed share them)."""
  if schedule.total > pool_size:
    raise ValueError(
        f'The total budget ({schedule.total}) exceeds the pool ({pool_size} items); lower the budget or use a '
        'larger pool.')
  if initial is None:
    initial = cold_start.random_items(pool_size, schedule.initial, seed)
  state = LoopState(np.zeros(pool_size, bool), np.full(pool_size, -1, np.int32), jax.random.key(seed))
  return state.reveal(initial, oracle.label(initial, -1))


def seeded_state(pool: Dataset, schedule: BudgetSchedule, seed: int) -> LoopState:
  """The initial state of a pool that comes with its own labels for some items (your seed labels: an image
  folder's labeled/, an array folder's labeled.npz or known pool_labels.npy entries)."""
  known = np.asarray(pool.labels) >= 0
  if int(known.sum()) != schedule.initial:
    raise ValueError(f'The pool comes with {int(known.sum())} labelled items but the budget says initial = '
                     f'{schedule.initial}; set --config.budget.initial={int(known.sum())}.')
  if schedule.total > len(pool):
    raise ValueError(f'The total budget ({schedule.total}) exceeds the pool ({len(pool)} items); lower it.')
  return LoopState(known, np.where(known, pool.labels, -1).astype(np.int32), jax.random.key(seed))


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  """The loop's settings besides the query and the policy.

  Attributes:
    schedule: the label budget.
    train: optimisation of each round's model.
    model: how models are built (width, the dropout rate they train with, ...); the default factory reads it.
    mc_passes: T stochastic passes for MC-dropout strategies.
    mc_dropout_rate: the dropout rate of those passes (a query-time operation: the model may train without).
    warm_start: each round's model starts from the previous round's, its weights inherited into this round's
      architecture (`jal.inherit`: exact for a deeper one, every fitting leaf otherwise), with a fresh optimiser
      state; False (the paper) trains every round's model from scratch.
    stop_set: items of the pool (drawn once from the seed) on which successive rounds' predictions are compared:
      'stop/agreement' in every row from round 1, Cohen's kappa of the two models' predicted classes (stabilising
      predictions, Bloodgood & Vijay-Shanker, 2009).
    stop_rounds: > 0 ends the session early, without the round's query, once this many successive agreements
      reach `stop_agreement` (0: the budget alone ends it).
    stop_agreement: the kappa that counts as stable (0.99 in the paper).
    initial: how the initial set is chosen before any label: 'random', 'kmeans' or 'typiclust' on embeddings
      (`jal.cold_start`).
    embed: images -> [N, D] embeddings the cold start clusters (e.g. a pretrained backbone's); None: the pixels'
      principal components.
    init: pretrained variables ({'params', 'batch_stats'}, `jal.pretrained.load_variables`) every round's model
      starts from, each round afresh (not from the last round's): every leaf whose path and shape fit is taken, the
      rest (a head for another number of classes) starts fresh (`jal.pretrained.fit_to`). None: from scratch.
  """

  schedule: BudgetSchedule
  train: TrainConfig
  model: ModelConfig = ModelConfig()
  mc_passes: int = 100
  mc_dropout_rate: float = 0.5
  warm_start: bool = False
  stop_set: int = 1000
  stop_rounds: int = 0
  stop_agreement: float = 0.99
  initial: str = 'random'
  embed: Callable[[Any], np.ndarray] | None = dataclasses.field(default=None, compare=False, hash=False)
  init: dict | None = dataclasses.field(default=None, compare=False, hash=False)

  def __post_init__(self):
    if self.initial not in cold_start.COLD_STARTS:
      raise ValueError(f'Unknown initial-set method {self.initial!r}; use one of {cold_start.COLD_STARTS}.')
    if self.init is not None and self.warm_start:
      raise ValueError('A round model starts either from pretrained variables (init) or from the previous '
                       "round's (warm_start), not both.")
    if self.stop_set < 1 or self.stop_rounds < 0 or not 0.0 < self.stop_agreement <= 1.0:
      raise ValueError(f'The stop rule needs stop_set >= 1, stop_rounds >= 0 and stop_agreement in (0, 1], got '
                       f'{self.stop_set}, {self.stop_rounds}, {self.stop_agreement}: set --config.stop.set_size, '
                       '--config.stop.stabilise (0: the budget alone ends a session) and --config.stop.agreement '
                       "(Cohen's kappa, e.g. 0.99).")


def stop_set(pool_size: int, size: int, rng: jax.Array) -> np.ndarray:
  """[min(size, N)] sorted pool indices, the same every round of a seed: where successive models are compared."""
  seed = np.asarray(jax.random.key_data(jax.random.fold_in(rng, 0x5709)))
  return np.sort(np.random.default_rng(seed).choice(pool_size, min(size, pool_size), replace=False))


def cohen_kappa(a: np.ndarray, b: np.ndarray, num_classes: int) -> float:
  """Cohen's kappa of two [n] label vectors: agreement beyond what their class frequencies give by chance (1 when
  they agree on every item)."""
  observed = float(np.mean(a == b))
  expected = float(np.dot(np.bincount(a, minlength=num_classes), np.bincount(b, minlength=num_classes))) / len(a)**2
  return 1.0 if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def stopped(history: Sequence[dict], config: LoopConfig) -> bool:
  """Whether the last `config.stop_rounds` rows' agreements all reach `config.stop_agreement` (the stop rule)."""
  k = config.stop_rounds
  recent = [r.get('stop/agreement') for r in history[-k:]] if k else []
  return bool(k) and len(recent) == k and all(a is not None and a >= config.stop_agreement for a in recent)


def _add_compiles(record: dict, before: tuple[int, float]) -> dict:
  """The record with this phase's XLA compilations added to 'compile/events' and 'time/compile' (seconds, part of
  the phases' times: compiling is most of a small model's first round)."""
  events, seconds = COMPILES.snapshot()
  return {**record, 'compile/events': record.get('compile/events', 0) + events - before[0],
          'time/compile': record.get('time/compile', 0.0) + seconds - before[1]}


def _inherited_start(state: LoopState, arch, model, rng: jax.Array, image_shape) -> tuple[dict | None, dict]:
  """The previous round's model inherited into `arch` (variables, and 'train/inherited' share of leaves), or
  (None, {}) when either architecture is a user's own model that `jal.inherit` cannot map."""
  if not isinstance(arch, Architecture) or not isinstance(state.arch, Architecture):
    return None, {}
  fresh = init_variables(model, jax.random.fold_in(rng, 1), image_shape)
  variables, report = inherit_lib.inherit(state.train_state.variables, state.arch, fresh, arch)
  return variables, {'train/inherited': report.inherited / (report.inherited + report.fresh),
                     'train/function_preserving': float(report.function_preserving)}


def arch_name(arch) -> str:
  """How an architecture is recorded (history, checkpoints): 'A(1,2)', or your model's name."""
  return str(arch)


def _arch_from_name(name: str | None):
  if name is None:
    return None
  try:
    return parse_architecture(name)
  except ValueError:
    return name  # A user model's name.


def _abstract_train_state(model, config: TrainConfig, image_shape) -> TrainState:
  """The shapes of the TrainState `jal.train.train` produces for `model` (no computation)."""
  tx = make_optimizer(config, config.total_steps)
  return jax.eval_shape(lambda: create_train_state(model, tx, jax.random.key(0), image_shape))


def pool_fingerprint(pool: Dataset) -> dict:
  """What identifies a pool: its size and digests of its item ids and images (a restore refuses another)."""
  ids = hashlib.sha256('\n'.join(pool.item_ids).encode()).hexdigest()
  images = hashlib.sha256()
  for block in row_blocks(pool.images):  # The digest of the whole array's bytes, read a chunk at a time.
    images.update(np.ascontiguousarray(block).tobytes())
  return {'size': len(pool), 'ids_sha256': ids, 'images_sha256': images.hexdigest()}


POOL_FILE = 'pool_items.json'


def _pool_items(splits: Splits) -> dict:
  """Item ids and a short digest of each item's image before normalisation (a pool whose statistics moved
  because one image was added still shows only that image): what a changed pool is compared against."""
  digests = []
  for block in row_blocks(splits.pool.images):
    raw = np.round((block * splits.std + splits.mean) * 255.0).astype(np.int32)
    digests.extend(hashlib.sha1(image.tobytes()).hexdigest()[:16] for image in np.ascontiguousarray(raw))
  return {'ids': list(splits.pool.item_ids), 'digests': digests}


def _pool_changes(directory: str, splits: Splits) -> str:
  """What differs between the pool a checkpoint was written for (its pool_items.json) and `pool`."""
  path = os.path.join(directory, POOL_FILE)
  try:
    with open(path, encoding='utf-8') as f:
      saved = json.load(f)
  except (OSError, ValueError):
    return ''
  current = _pool_items(splits)
  before, now = dict(zip(saved['ids'], saved['digests'])), dict(zip(current['ids'], current['digests']))
  added, removed = sorted(set(now) - set(before)), sorted(set(before) - set(now))
  edited = sorted(i for i in set(now) & set(before) if now[i] != before[i])
  parts = [f'{what} ({len(items)}): {", ".join(items[:8])}{" ..." if len(items) > 8 else ""}'
           for what, items in (('added', added), ('removed', removed), ('changed images', edited)) if items]
  if not parts and saved['ids'] != current['ids']:
    parts = ['the same items in another order']
  return '; '.join(parts)


def _kept_tree(kept: inherit_lib.KeptModel | None) -> dict | None:
  """A KeptModel as the plain tree a checkpoint holds (its architecture goes to the metadata)."""
  if kept is None:
    return None
  return {'variables': kept.variables, 'train_mask': np.asarray(kept.train_mask),
          'validation_mask': np.asarray(kept.validation_mask)}


def _kept_model(tree: dict | None, arch: str | None) -> inherit_lib.KeptModel | None:
  if tree is None:
    return None
  return inherit_lib.KeptModel(tree['variables'], np.asarray(tree['train_mask']),
                               np.asarray(tree['validation_mask']), _arch_from_name(arch))


def save(checkpointer: checkpoint_lib.Checkpointer, state: LoopState, progress: RoundProgress, fingerprint: dict,
         done: bool = False) -> None:
  """Writes the state after `progress.phase` of round `state.round` as step round * 4 + phase.

  Args:
    fingerprint: the pool's `pool_fingerprint` (computed once per run).
  """
  step = state.round * len(PHASES) + PHASES.index(progress.phase)
  tree = {'state': {'labeled_mask': np.asarray(state.labeled_mask), 'labels': np.asarray(state.labels, np.int32),
                    'rng': state.rng, 'train_state': state.train_state, 'query_state': state.query_state,
                    'model_mask': None if state.model_mask is None else np.asarray(state.model_mask),
                    'kept': _kept_tree(state.kept)},
          'progress': {'train_state': progress.train_state, 'kept': _kept_tree(progress.kept),
                       # Orbax refuses empty arrays: no pending items (the budget is spent) is saved as None.
                       'pending': progress.pending if progress.pending is not None and len(progress.pending) else None,
                       'query_state': progress.query_state}}
  present = sorted(f'{part}.{name}' for part, fields in tree.items() for name, value in fields.items()
                   if value is not None)
  meta = {'round': state.round, 'phase': progress.phase, 'done': done,
          'state_arch': None if state.arch is None else arch_name(state.arch),
          'progress_arch': None if progress.arch is None else arch_name(progress.arch),
          'state_kept_arch': None if state.kept is None else arch_name(state.kept.arch),
          'progress_kept_arch': None if progress.kept is None else arch_name(progress.kept.arch),
          'record': progress.record, 'history': list(state.history), 'present': present,
          'num_pending': len(tree['progress']['pending']) if tree['progress']['pending'] is not None else 0,
          'pool': fingerprint}
  checkpointer.save(step, tree, meta)


def restore(checkpointer: checkpoint_lib.Checkpointer, splits: Splits, config: LoopConfig,
            querier: query_lib.Querier, model_fn: ModelFn, fingerprint: dict | None = None
            ) -> tuple[LoopState, RoundProgress, bool] | None:
  """The latest checkpointed (state, progress, done), or None if there is none.

  Args:
    fingerprint: `pool_fingerprint(pool)`, if already computed.

  Raises:
    CheckpointError: unreadable, written under another config or for another pool, or by another model.
  """
  pool = splits.pool
  image_shape = pool.image_shape
  current = fingerprint or pool_fingerprint(pool)

  def template(meta):
    present = set(meta['present'])
    where = f'The checkpoint in {checkpointer.directory}'
    saved_pool = meta.get('pool', {})
    if saved_pool != current:
      changes = _pool_changes(checkpointer.directory, splits)
      raise checkpoint_lib.CheckpointError(
          f'{where} belongs to another pool (pool of {saved_pool.get("size")} items then, {current["size"]} now'
          + (f'; {changes}' if changes else '') + '). Its labels would land on other items. Restore the data the '
          'session was started with, or start a new workdir.')
    num_items = meta['pool']['size']

    def model_state(arch_field, part):
      if f'{part}.train_state' not in present:
        return None
      return _abstract_train_state(model_fn(_arch_from_name(meta[arch_field])), config.train, image_shape)

    def kept(part):
      if f'{part}.kept' not in present:
        return None
      model = model_fn(_arch_from_name(meta[f'{part}_kept_arch']))
      mask = jax.ShapeDtypeStruct((num_items,), np.bool_)
      return {'variables': jax.eval_shape(lambda: init_variables(model, jax.random.key(0), image_shape)),
              'train_mask': mask, 'validation_mask': mask}

    def query_state(part):
      if f'{part}.query_state' not in present:
        return None
      if not hasattr(querier, 'state_template'):
        raise checkpoint_lib.CheckpointError(
            f'{where} holds a query state but {querier.name!r} keeps none: it was written by another strategy.')
      return querier.state_template(pool)

    return {'state': {'labeled_mask': jax.ShapeDtypeStruct((num_items,), np.bool_),
                      'labels': jax.ShapeDtypeStruct((num_items,), np.int32),
                      'rng': jax.eval_shape(lambda: jax.random.key(0)),
                      'train_state': model_state('state_arch', 'state'), 'query_state': query_state('state'),
                      'model_mask': (jax.ShapeDtypeStruct((num_items,), np.bool_) if 'state.model_mask' in present
                                     else None),
                      'kept': kept('state')},
            'progress': {'train_state': model_state('progress_arch', 'progress'), 'kept': kept('progress'),
                         'pending': (jax.ShapeDtypeStruct((meta['num_pending'],), np.int32)
                                     if 'progress.pending' in present else None),
                         'query_state': query_state('progress')}}

  restored = checkpointer.restore(template)
  if restored is None:
    return None
  tree, meta = restored
  saved_state, saved_progress = tree['state'], tree['progress']
  mask, labels = np.asarray(saved_state['labeled_mask']), np.asarray(saved_state['labels'])
  if np.any((labels >= 0) != mask):
    raise checkpoint_lib.CheckpointError(
        f'The checkpoint {checkpointer.directory}/{checkpointer.latest_step} is inconsistent (labelled mask and '
        'labels disagree); delete it to resume from the previous checkpoint.')
  model_mask = None if saved_state.get('model_mask') is None else np.asarray(saved_state['model_mask'])
  state = LoopState(mask, labels, saved_state['rng'], saved_state['query_state'], saved_state['train_state'],
                    model_mask, _kept_model(saved_state.get('kept'), meta.get('state_kept_arch')), int(meta['round']),
                    _arch_from_name(meta['state_arch']), tuple(meta['history']))
  pending = saved_progress['pending']
  if pending is None and meta['phase'] == 'query':
    pending = np.zeros(0, np.int32)
  progress = RoundProgress(saved_progress['train_state'], None if pending is None else np.asarray(pending),
                           saved_progress['query_state'],
                           _kept_model(saved_progress.get('kept'), meta.get('progress_kept_arch')), meta['phase'],
                           _arch_from_name(meta['progress_arch']), meta['record'])
  return state, progress, bool(meta['done'])


def run_round(
    state: LoopState,
    splits: Splits,
    config: LoopConfig,
    querier: query_lib.Querier,
    policy: ArchitecturePolicy,
    oracle: Oracle,
    model_fn: ModelFn,
    progress: RoundProgress | None = None,
    on_phase: Callable[[LoopState, RoundProgress], None] | None = None,
) -> LoopState:
  """One round of Algorithm 2: choose the architecture, train on L and evaluate on test, query b items, label them.

  Args:
    progress: resume the round after its last finished phase (from a checkpoint); default: from the start.
    on_phase: called after each phase with the unchanged state and the progress (the loop saves there).

  Raises:
    FloatingPointError: the round's training loss is not finite (names the round and the likely causes).
  """
  pool = splits.pool
  progress = progress or RoundProgress()
  round_rng = jax.random.fold_in(state.rng, state.round)
  policy_rng, train_rng, query_rng = jax.random.split(round_rng, 3)

  if progress.phase == 'start':
    start, cpu_start, compiled = time.perf_counter(), time.process_time(), COMPILES.snapshot()
    inputs = PolicyInputs(pool, state.labeled_mask, state.labels, state.arch, state.train_state, state.model_mask,
                          state.round, config.train, model_fn, state.kept)
    arch, policy_metrics, *kept = policy(inputs, policy_rng)
    kept = kept[0] if kept else None
    if kept is not None and not isinstance(kept, inherit_lib.KeptModel):
      raise TypeError('An architecture policy returns (arch, scalars) or (arch, scalars, jal.inherit.KeptModel), '
                      f'got a {type(kept).__name__} third.')
    model = model_fn(arch)
    params = count_params(_abstract_train_state(model, config.train, pool.image_shape).params)
    record = {'round': state.round, 'num_labeled': state.num_labeled, 'strategy': querier.name,
              'arch': arch_name(arch), 'arch/params': params,
              'labels/per_class': np.bincount(state.labels[state.labeled_mask], minlength=pool.num_classes).tolist()}
    if isinstance(arch, Architecture):
      record.update({'arch/blocks': arch.blocks, 'arch/stacks': arch.stacks, 'arch/depth': arch.depth})
    # Wall seconds, and the process's CPU seconds (all threads): a pause or another process's load on a shared
    # machine inflates the first, not the second, so search costs stay comparable across runs.
    record.update({'time/nas': time.perf_counter() - start, 'time/nas_cpu': time.process_time() - cpu_start,
                   **policy_metrics})
    record = _add_compiles(record, compiled)
    # A fresh progress: nothing of the previous round's model may be saved under this round's architecture.
    progress = RoundProgress(kept=kept, phase='policy', arch=arch, record=record)
    if on_phase is not None:
      on_phase(state, progress)

  model = model_fn(progress.arch)
  if progress.phase == 'policy':
    start, cpu_start, compiled = time.perf_counter(), time.process_time(), COMPILES.snapshot()
    init, inherited = None, {}
    if config.warm_start and state.train_state is not None:
      init, inherited = _inherited_start(state, progress.arch, model, train_rng, pool.image_shape)
    if config.init is not None:
      init, taken, fresh = pretrained.fit_to(
          config.init, init_variables(model, jax.random.fold_in(train_rng, 1), pool.image_shape))
      inherited = {'train/pretrained': taken / (taken + fresh)}
    with progress_lib.task(f'model {arch_name(progress.arch)}'):
      result = train(model, config.train, pool.images, np.maximum(state.labels, 0), train_rng,
                     state.labeled_mask, init=init)
    train_state = result.state_for_seed(0)
    train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    train_loss = result.history[0][-1]['train/loss']
    if not np.isfinite(train_loss):
      raise FloatingPointError(
          f'Round {state.round}: the training loss of {arch_name(progress.arch)} is {train_loss} (not finite). '
          'Likely causes: a learning rate too high for this model or data, or images that are not normalised '
          '(NaN or huge values). Lower --config.train.learning_rate or check the data; finished rounds are kept.')
    scores = evaluate(model, train_state.variables, splits.test.images, splits.test.labels)
    stability = {}
    if state.train_state is not None:  # Round >= 1: this round's model against the previous round's.
      items = stop_set(len(pool), config.stop_set, state.rng)
      images = pool.images[items]
      before = predict(model_fn(state.arch), state.train_state.variables, images).probs.argmax(-1)
      after = predict(model, train_state.variables, images).probs.argmax(-1)
      stability['stop/agreement'] = cohen_kappa(np.asarray(before), np.asarray(after), pool.num_classes)
    progress = progress.replace(phase='train', train_state=train_state, record=_add_compiles({
        **progress.record, 'test/accuracy': scores['accuracy'], 'test/loss': scores['loss'],
        'train/loss': train_loss, 'time/train': train_seconds, 'time/train_cpu': train_cpu_seconds,
        'train/curve': result.curve(0),
        'train/steps': result.history[0][-1]['step'],
        **inherited, **stability}, compiled))
    if on_phase is not None:
      on_phase(state, progress)

  if progress.phase == 'train':
    compiled = COMPILES.snapshot()
    record = {**progress.record, 'time/score': 0.0, 'time/select': 0.0, 'query/size': 0}
    budget = config.schedule.next_batch(state.num_labeled)
    if stopped(state.history + (record,), config):
      budget, record['stop/stopped'] = 0, True
    indices, query_state = np.zeros(0, np.int32), state.query_state
    if budget > 0:
      start = time.perf_counter()
      context = query_lib.QueryContext(pool, state.labeled_mask, state.labels, model,
                                       progress.train_state.variables, budget, state.query_state)
      indices, query_metrics, query_state = querier.query(context, query_rng)
      record['time/query'] = time.perf_counter() - start
      record.update(query_metrics)
    record['query/size'] = int(len(indices))
    record = _add_compiles(record, compiled)
    progress = progress.replace(phase='query', record=record, pending=np.asarray(indices, np.int32),
                                query_state=query_state)
    if on_phase is not None:
      on_phase(state, progress)

  new_state = state
  if len(progress.pending):
    new_state = state.reveal(progress.pending, oracle.label(progress.pending, state.round))
  return new_state.replace(round=state.round + 1, arch=progress.arch, train_state=progress.train_state,
                           model_mask=np.asarray(state.labeled_mask), query_state=progress.query_state,
                           kept=progress.kept, history=state.history + (progress.record,))


def run(
    splits: Splits,
    config: LoopConfig,
    strategy: str | query_lib.Querier,
    policy: ArchitecturePolicy,
    oracle: Oracle | None = None,
    seed: int = 0,
    *,
    model_fn: ModelFn | None = None,
    checkpointer: checkpoint_lib.Checkpointer | None = None,
    resume: tuple[LoopState, RoundProgress, bool] | None = None,
    on_round: Callable[[LoopState], None] | None = None,
) -> LoopState:
  """Runs rounds until the budget is spent and the final labelled set has been trained on.

  Args:
    splits: pool (the oracle's labels), test (reporting only).
    config: budget, training and model settings.
    strategy: a registered query strategy (`jal.query.QUERIES`) or a `jal.query.Querier` (`jal.autoal.AutoAL`).
    policy: the architecture policy (`fixed(A(1,2))`, or `jal.inas.inas_policy(...)`).
    oracle: answers label requests; default: the pool's own labels (simulation).
    seed: fixes the initial labelled set and every key.
    model_fn: architecture -> Flax module; default: `jal.models.model_fn(num_classes, config.model)`. Your own
      module works with a fixed policy as long as it returns a `jal.models.ModelOutput`.
    checkpointer: save after every phase and resume from its latest checkpoint (a finished run returns at once).
    resume: a (state, progress, done) already restored with `restore` (the checkpointer then only saves).
    on_round: called with the state after every round (progress reports, result rows).

  Returns:
    The final state; `state.train_state` is the model trained on the final labelled set.
  """
  querier = query_lib.as_querier(strategy, config.mc_passes, config.mc_dropout_rate)
  model_fn = model_fn or default_model_fn(splits.pool.num_classes, config.model)
  oracle = oracle or SimulatedOracle(splits.pool.labels)
  if checkpointer is None:
    return _run(splits, config, querier, policy, oracle, seed, model_fn, None, resume, on_round)
  with checkpoint_lib.lock_directory(checkpointer.directory):
    return _run(splits, config, querier, policy, oracle, seed, model_fn, checkpointer, resume, on_round)


def _run(splits, config, querier, policy, oracle, seed, model_fn, checkpointer, resume, on_round) -> LoopState:
  state = progress = None
  fingerprint = pool_fingerprint(splits.pool) if checkpointer is not None else None
  if resume is None and checkpointer is not None:
    resume = restore(checkpointer, splits, config, querier, model_fn, fingerprint)
  if checkpointer is not None and not os.path.exists(os.path.join(checkpointer.directory, POOL_FILE)):
    checkpoint_lib.write_json(os.path.join(checkpointer.directory, POOL_FILE), _pool_items(splits))
  if resume is not None:
    state, progress, done = resume
    if done:
      return state
  if state is None:
    seeded = splits.pool.unknown_labels and bool(np.any(splits.pool.labels >= 0))
    if seeded and config.initial != 'random':
      raise ValueError(f'The pool comes with your seed labels, which are the initial set: a cold start '
                       f"('{config.initial}') chooses one only for a pool without; drop --config.initial.")
    if seeded:
      state = seeded_state(splits.pool, config.schedule, seed)
    else:
      initial = None
      if config.initial != 'random':
        with progress_lib.task(f'initial set ({config.initial})'):
          initial = cold_start.initial_items(config.initial, splits.pool.images, config.schedule.initial, seed,
                                             config.embed)
      state = initial_state(len(splits.pool), config.schedule, oracle, seed, initial)
  num_rounds = len(config.schedule.label_counts())

  def save_phase(state, progress):
    if checkpointer is not None:
      save(checkpointer, state, progress, fingerprint)

  while state.round < num_rounds and not stopped(state.history, config):
    with progress_lib.task(f'round {state.round} ({state.num_labeled} labels)'):
      state = run_round(state, splits, config, querier, policy, oracle, model_fn, progress, save_phase)
    progress = None
    done = state.round >= num_rounds or stopped(state.history, config)
    if checkpointer is not None:
      save(checkpointer, state, RoundProgress(), fingerprint, done=done)
    if on_round is not None:
      on_round(state)
  if stopped(state.history, config) and state.round < num_rounds:
    logging.info('Stopped after round %d with %d labels: %d successive rounds agreed on the stop set with kappa >= '
                 '%g (the model has stopped changing); %d labels of the budget are left unspent.', state.round - 1,
                 state.num_labeled, config.stop_rounds, config.stop_agreement,
                 config.schedule.total - state.num_labeled)
  return state
