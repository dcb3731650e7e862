"""Sessions that survive interruption: the loop's whole state on disk after every phase, resumed on restart.

A `Session` is one active-learning run's checkpoint directory, managed by Orbax's `CheckpointManager` (each save
is written to a temporary directory and renamed when complete, so a kill mid-save leaves the previous step
intact). A checkpoint holds the labelled mask and revealed labels, the round and its finished phase, the
architectures, the trained task model (parameters, batch statistics, optimiser state), the querier's state
(AutoAL's three networks and their optimiser states), the session key, the per-round history and the config.
`run` resumes from the latest checkpoint: a killed run continues at the phase where it stopped and, on CPU,
produces the same history and parameters as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from jal import loop
from jal.search_space import parse_architecture
from jal.train import create_train_state, make_optimizer


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be used: unreadable, inconsistent, or written by another config."""


def _json_default(value):
  return value.item() if isinstance(value, np.generic | np.ndarray) and np.ndim(value) == 0 else str(value)


def normalise_config(config: dict) -> dict:
  """A JSON round trip: tuples become lists, numpy scalars numbers, other objects strings, as when read back."""
  return json.loads(json.dumps(config, default=_json_default, sort_keys=True))


def _flatten(tree: dict, prefix: str = '') -> dict[str, object]:
  out = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict):
      out.update(_flatten(value, name + '.'))
    else:
      out[name] = value
  return out


def config_differences(saved: dict, current: dict) -> list[str]:
  """'field: saved -> current' for every (dotted) field that differs."""
  saved, current = _flatten(normalise_config(saved)), _flatten(normalise_config(current))
  return [f'{k}: {saved.get(k, "<absent>")!r} -> {current.get(k, "<absent>")!r}'
          for k in sorted(set(saved) | set(current)) if saved.get(k, '<absent>') != current.get(k, '<absent>')]


def check_config(saved: dict, current: dict, where: str) -> None:
  """Refuses a config that differs from the one a workdir or checkpoint was written with, naming the fields."""
  differences = config_differences(saved, current)
  if differences:
    raise CheckpointError(
        f'{where} was written with a different config; differing fields: ' + '; '.join(differences) +
        '. Use the original config to resume, or a new workdir for the new one.')


def _leaves(tree) -> dict[str, object]:
  return {f'leaf_{i:05d}': leaf for i, leaf in enumerate(jax.tree_util.tree_leaves(tree))}


def _unflatten(template, leaves: dict, what: str):
  treedef = jax.tree_util.tree_structure(template)
  if len(leaves) != treedef.num_leaves:
    raise CheckpointError(f'The checkpointed {what} has {len(leaves)} arrays where {treedef.num_leaves} were '
                          'expected: it was written by another model or version.')
  restored = [np.asarray(leaves[f'leaf_{i:05d}']) for i in range(treedef.num_leaves)]
  for leaf, spec in zip(restored, jax.tree_util.tree_leaves(template)):
    if leaf.shape != tuple(spec.shape):
      raise CheckpointError(f'The checkpointed {what} has an array of shape {leaf.shape} where {spec.shape} was '
                            'expected: it was written by another model or version.')
  return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(x) for x in restored])


class Session:
  """One run's checkpoints: `save` after every phase, `restore` the latest.

  Args:
    directory: where the checkpoints live (created).
    config: everything that determines the run (JSON-serialisable); a restore under a different one is refused.
    max_to_keep: checkpoints kept (older ones are deleted once a newer one is complete).
  """

  def __init__(self, directory: str, config: dict, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self.config = normalise_config(config)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False,
                                             create=True))

  @property
  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: loop.LoopState, progress: loop.RoundProgress, done: bool = False) -> None:
    """Writes the state after `progress.phase` of round `state.round` (atomically)."""
    step = state.round * len(loop.PHASES) + loop.PHASES.index(progress.phase)
    arrays = {'labeled_mask': np.asarray(state.labeled_mask), 'labels': np.asarray(state.labels, np.int32),
              'rng': np.asarray(jax.random.key_data(state.rng))}
    if progress.pending is not None and len(progress.pending):
      arrays['pending'] = np.asarray(progress.pending, np.int32)
    if progress.train_state is not None:
      arrays['train_state'] = _leaves(progress.train_state)
    query_state = progress.query_state if progress.phase == 'query' else state.query_state
    if query_state is not None:
      arrays['query_state'] = _leaves(query_state)
    meta = {
        'round': state.round, 'phase': progress.phase, 'done': done,
        'state_arch': str(state.arch) if state.arch else None,
        'progress_arch': str(progress.arch) if progress.arch else None,
        'record': progress.record, 'history': list(state.history), 'config': self.config,
        'has_pending': 'pending' in arrays,
    }
    self._manager.save(step, args=ocp.args.Composite(arrays=ocp.args.StandardSave(arrays),
                                                     meta=ocp.args.JsonSave(normalise_config(meta))), force=True)

  def restore(
      self,
      train_template: Callable[[str], object],
      query_template: Callable[[], object] | None,
  ) -> tuple[loop.LoopState, loop.RoundProgress, bool] | None:
    """The latest (state, progress, done), or None if there is no checkpoint.

    Args:
      train_template: architecture string -> an abstract task-model TrainState (shapes) to restore into.
      query_template: -> an abstract querier state, for queriers that carry one.

    Raises:
      CheckpointError: the checkpoint is unreadable, or was written under another config.
    """
    step = self.latest_step
    if step is None:
      return None
    step_dir = os.path.join(self.directory, str(step))
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(),
                                                                     meta=ocp.args.JsonRestore()))
      arrays, meta = restored['arrays'], restored['meta']
      if meta is None or arrays is None:
        raise ValueError('missing arrays or metadata')
    except CheckpointError:
      raise
    except Exception as error:  # Orbax raises many types for a damaged directory; all mean the same here.
      raise CheckpointError(
          f'The checkpoint {step_dir} cannot be read ({type(error).__name__}: {str(error)[:300]}). It is damaged '
          f'(a truncated or edited file). Delete {step_dir} to resume from the previous checkpoint '
          f'(steps on disk: {self._manager.all_steps()}), or start a new workdir.') from error
    check_config(meta.get('config', {}), self.config, f'The checkpoint {step_dir}')
    mask, labels = np.asarray(arrays['labeled_mask']), np.asarray(arrays['labels'])
    if mask.dtype != bool or labels.shape != mask.shape or np.any((labels >= 0) != mask):
      raise CheckpointError(f'The checkpoint {step_dir} is inconsistent (labelled mask and labels disagree); '
                            'delete it to resume from the previous checkpoint.')
    progress_arch = parse_architecture(meta['progress_arch']) if meta['progress_arch'] else None
    train_state = None
    if 'train_state' in arrays:
      train_state = _unflatten(train_template(meta['progress_arch']), arrays['train_state'], 'task model')
    query_state = None
    if 'query_state' in arrays:
      if query_template is None:
        raise CheckpointError(f'The checkpoint {step_dir} holds a querier state but this run has no querier '
                              'that carries one: it was written by another strategy.')
      query_state = _unflatten(query_template(), arrays['query_state'], 'querier state')
    rng = jax.random.wrap_key_data(np.asarray(arrays['rng']))
    state = loop.LoopState(mask, labels, int(meta['round']), rng,
                           arch=parse_architecture(meta['state_arch']) if meta['state_arch'] else None,
                           history=tuple(meta['history']))
    pending = np.asarray(arrays['pending'], np.int32) if meta['has_pending'] else np.zeros(0, np.int32)
    phase = meta['phase']
    if phase == 'query':
      progress = loop.RoundProgress(phase, progress_arch, meta['record'], train_state, pending, query_state)
    else:
      state = state.replace(query_state=query_state)
      progress = loop.RoundProgress(phase, progress_arch, meta['record'], train_state, pending,
                                    None)
    return state, progress, bool(meta['done'])


def task_model_template(splits, config: loop.LoopConfig) -> Callable[[str], object]:
  """Architecture string -> the abstract TrainState `jal.train.train` produces for it (shapes only)."""
  tx = make_optimizer(config.train, config.train.total_steps)

  def template(arch: str):
    model = loop.round_model(parse_architecture(arch), splits.pool, config)
    return jax.eval_shape(lambda: create_train_state(model, tx, jax.random.key(0), splits.pool.image_shape))

  return template


def run(
    session: Session,
    splits,
    config: loop.LoopConfig,
    strategy,
    policy: loop.ArchitecturePolicy,
    oracle: loop.Oracle | None = None,
    seed: int = 0,
    on_round: Callable[[loop.LoopState], None] | None = None,
    on_resume: Callable[[loop.LoopState], None] | None = None,
) -> loop.LoopState:
  """`jal.loop.run`, checkpointed after every phase and resumed from the latest checkpoint.

  Args:
    on_resume: called with the restored state when a checkpoint is found (e.g. to rewrite result rows).

  Returns:
    The final state (at once, without training, when the checkpoint says the run is finished).
  """
  template = getattr(strategy, 'state_template', None)
  restored = session.restore(task_model_template(splits, config),
                             (lambda: template(splits.pool)) if template else None)
  state = progress = None
  if restored is not None:
    state, progress, done = restored
    if len(state.labeled_mask) != len(splits.pool):
      raise CheckpointError(f'The checkpoint in {session.directory} is for a pool of {len(state.labeled_mask)} '
                            f'items, the data has {len(splits.pool)}: it belongs to other data.')
    if on_resume is not None:
      on_resume(state)
    if done:
      logging.info('%s: the run finished (%d rounds); nothing to do.', session.directory, state.round)
      return state
    logging.info('%s: resuming round %d after its %r phase.', session.directory, state.round, progress.phase)

  num_rounds = len(config.schedule.label_counts())
  last = {'progress': progress}

  def save_phase(state, progress):
    last['progress'] = progress
    session.save(state, progress)

  def save_round(new_state):
    # The round's trained model stays in the checkpoint: after the last round it is the session's final model.
    finished = last.get('progress') or loop.RoundProgress()
    session.save(new_state, loop.RoundProgress(arch=finished.arch, train_state=finished.train_state),
                 done=new_state.round >= num_rounds)
    if on_round is not None:
      on_round(new_state)

  return loop.run(splits, config, strategy, policy, oracle, seed, state=state, on_round=save_round,
                  progress=progress, on_phase=save_phase)
