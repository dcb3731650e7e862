"""Checkpoints of any PyTree with JSON metadata, through Orbax, restored into an abstract tree.

A `Checkpointer` is one directory of numbered steps managed by Orbax's `CheckpointManager`: each step holds
`arrays` (the tree as a nested dict, every leaf under its tree path, so plain Orbax finds it by name:
`ocp.StandardCheckpointer().restore(f'{directory}/{step}/arrays')['state']['labels']`) and `meta` (JSON). Each save
goes to a temporary directory renamed when complete, so a kill mid-save leaves the previous step intact.

`restore` takes a function from the step's metadata to the abstract tree (`jax.eval_shape` of what was saved):
the metadata says what was saved (an architecture, a phase), the template gives its structure, and every leaf is
checked against it by path, shape and dtype. A checkpointer carries the config of its run and refuses a
checkpoint written under another one, naming the differing fields; a damaged step is refused with the command
that fixes it. Nothing is ever deleted for the user.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be used or written: unreadable, inconsistent, from another config, or a disk error."""


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


# Fields that say where things are, how to fetch them or what to show, not what a run is: a grid may move
# between machines and change its progress output (the data itself is guarded by the pool's fingerprint,
# `jal.loop.restore`).
LOCATION_FIELDS = ('data.data_dir', 'data.download', 'progress_every', 'tensorboard')

# Fields added to the configs after grids were written (or removed since), with the value that reproduces the code
# without them: a config without the field equals one that holds this value, so committed grids still resume.
# ('inas.inherit' and 'inas.inherit_from' left the configs when the policy's '+inherit'/'+lineage' became the one
# way to ask for inheritance; grids that ran from scratch recorded False and 'round_model'.)
ADDED_FIELDS = {'warm_start': False, 'autoal.mixture_init': 'kmeans++', 'autoal.head_init': 'uniform',
                'autoal.normalise': 'standard', 'autoal.informativeness_weight': 1.0,
                'inas.inherit': False, 'inas.inherited_fraction': 0.0, 'inas.choose': 'error',
                'inas.inherit_from': 'round_model',
                'nas.random_candidates': 3, 'nas.population': 3, 'nas.cycles': 3, 'nas.sample': 2,
                'model.cpu_fusions': 'default', 'data.image_size': 0, 'data.imbalance': 1.0, 'inas.min_feature_map': 1,
                'nas.folds': 3, 'nas.evidence': 2.0, 'nas.evidence_score': 'correct', 'data.on_disk': False,
                'stop.stabilise': 0, 'stop.agreement': 0.99, 'stop.set_size': 1000, 'model.precision': 'float32',
                'model.init_from': '', 'model.freeze': 'none', 'initial': 'random',
                'initial_labels': '', 'model.loss_prediction': False, 'train.loss_prediction_weight': 1.0,
                'train.loss_prediction_detach': 0.6, 'nas.candidate_fraction': 0.0,
                'nas.start': ''}


def config_differences(saved: dict, current: dict) -> list[str]:
  """'field: saved -> current' for every (dotted) field that differs, `LOCATION_FIELDS` aside and
  `ADDED_FIELDS` absent on one side at their neutral value on the other."""
  saved, current = _flatten(normalise_config(saved)), _flatten(normalise_config(current))
  for key, neutral in ADDED_FIELDS.items():
    if (key in saved) != (key in current) and saved.get(key, current.get(key)) == neutral:
      saved.pop(key, None)
      current.pop(key, None)
  return [f'{k}: {saved.get(k, "<absent>")!r} -> {current.get(k, "<absent>")!r}'
          for k in sorted(set(saved) | set(current))
          if k not in LOCATION_FIELDS and saved.get(k, '<absent>') != current.get(k, '<absent>')]


def check_config(saved: dict, current: dict, where: str) -> None:
  """Refuses a config that differs from the one a workdir or checkpoint was written with, naming the fields."""
  differences = config_differences(saved, current)
  if differences:
    raise CheckpointError(
        f'{where} was written with a different config; differing fields: ' + '; '.join(differences) +
        '. Use the original config to resume, or a new workdir for the new one.')


def disk_error(error: OSError, path: str, doing: str) -> CheckpointError:
  """A one-line message for a failed write: the path, the cause, and what to do."""
  cause = getattr(error, 'strerror', None) or str(error)[:200]
  return CheckpointError(
      f'Could not {doing} {path}: {cause}. Free disk space or make the directory writable, then run the same '
      'command again: it resumes from the last complete checkpoint.')


def is_primary() -> bool:
  """Whether this process writes results (process 0; every process when there is one). With several processes
  (`jax.distributed`) every one computes the same rounds and only this one writes rows, reports, JSON and locks;
  Orbax coordinates the checkpoints itself."""
  return jax.process_index() == 0


def write_json(path: str, value) -> None:
  """Writes JSON atomically (a temporary file renamed over `path`): a reader never sees half a file. Only the
  primary process writes (`is_primary`).

  Raises:
    CheckpointError: the disk is full or the directory is not writable.
  """
  if not is_primary():
    return
  try:
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
      json.dump(value, f, indent=1)
    os.replace(path + '.tmp', path)
  except OSError as error:
    raise disk_error(error, path, 'write') from error


def _is_key(leaf) -> bool:
  return hasattr(leaf, 'dtype') and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def to_arrays(tree) -> Any:
  """The tree as Orbax saves it: a nested dict (flax's state dict) with PRNG keys as their raw key data. With
  several processes the leaves come to the host first (every process holds the same replicated values), since
  Orbax cannot save a process's own single-device arrays there."""
  leaf = lambda x: jax.random.key_data(x) if _is_key(x) else x  # noqa: E731
  if jax.process_count() > 1:
    leaf = lambda x, key_data=leaf: np.asarray(key_data(x)) if hasattr(x, 'dtype') else x  # noqa: E731
  return jax.tree_util.tree_map(leaf, serialization.to_state_dict(tree))


def _path_name(path) -> str:
  return '/'.join(str(getattr(p, 'key', getattr(p, 'idx', p))) for p in path)


def from_arrays(template, arrays, where: str) -> Any:
  """Restores `arrays` (a nested dict as saved) into the structure of `template` (abstract or concrete leaves).

  Raises:
    CheckpointError: a missing or extra entry, or a leaf whose shape or dtype differs from the template's.
  """
  template_dict = serialization.to_state_dict(template)
  saved = {_path_name(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(arrays)}
  expected = {_path_name(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(template_dict)}
  missing, extra = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
  if missing or extra:
    raise CheckpointError(
        f'{where} does not match what this run expects: missing {missing[:5]}, unexpected {extra[:5]}. It was '
        'written by another model, strategy or version of jal: resume with the config it was written with, or '
        'use a new workdir.')

  def restore_leaf(path, spec):
    name = _path_name(path)
    leaf = np.asarray(saved[name])
    if _is_key(spec):
      return jax.random.wrap_key_data(leaf)
    if leaf.shape != tuple(spec.shape) or leaf.dtype != spec.dtype:
      raise CheckpointError(
          f'{where}: {name} has {leaf.dtype}{list(leaf.shape)} where {spec.dtype}{list(spec.shape)} was expected: '
          'it was written by another model or version; resume with its config, or use a new workdir.')
    return jax.numpy.asarray(leaf)

  restored = jax.tree_util.tree_map_with_path(restore_leaf, template_dict)
  return serialization.from_state_dict(template, restored)


class LockedError(CheckpointError):
  """Another process holds the directory."""


@contextlib.contextmanager
def lock_directory(directory: str) -> Iterator[None]:
  """Holds an OS-level lock on `directory` (its `.lock` file) for the block: one process per workdir.

  The lock is `flock`, so the OS releases it on any exit, a kill -9 included: a `.lock` file left by a crashed
  process is taken over without a word. The file names the holder (host and pid) for the message another
  process gets.

  With several processes (`jax.distributed`) only the primary one locks: the others are the same run.

  Raises:
    LockedError: another live process holds the lock; the message names it.
  """
  if not is_primary():
    os.makedirs(directory, exist_ok=True)
    yield
    return
  path = os.path.join(directory, '.lock')
  try:  # Also the early check that the directory is writable, before any training.
    os.makedirs(directory, exist_ok=True)
    handle = open(path, 'a+', encoding='utf-8')  # noqa: SIM115 (held for the whole block)
  except OSError as error:
    raise disk_error(error, directory, 'write in') from error
  try:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = handle.read().strip() or 'another process'
      raise LockedError(
          f'{directory} is in use by {holder}. One process per workdir: wait for it to finish (or stop it), or '
          'use another workdir.') from None
    handle.seek(0)
    handle.truncate()
    handle.write(f'process {os.getpid()} on {socket.gethostname()}\n')
    handle.flush()
    yield
  finally:
    handle.close()  # Releases the lock.


class Checkpointer:
  """Numbered checkpoints of a PyTree plus JSON metadata in one directory.

  Args:
    directory: where the steps live (created on the first save).
    config: what determines the run (JSON-friendly); a checkpoint written under another config is refused.
    max_to_keep: steps kept; older ones are deleted by Orbax once a newer one is complete.
  """

  def __init__(self, directory: str, config: dict | None = None, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self.config = normalise_config(config or {})
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False,
                                             create=False))

  @property
  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, tree, metadata: dict) -> None:
    """Writes `tree` and `metadata` (plus the config) as `step`, atomically.

    Raises:
      CheckpointError: the disk is full or the directory is not writable (the previous step stays intact).
    """
    meta = normalise_config({**metadata, 'config': self.config})
    try:
      os.makedirs(self.directory, exist_ok=True)
      self._manager.save(step, args=ocp.args.Composite(arrays=ocp.args.StandardSave(to_arrays(tree)),
                                                       meta=ocp.args.JsonSave(meta)), force=True)
    except OSError as error:
      raise disk_error(error, self.directory, 'write a checkpoint in') from error
    except Exception as error:  # Orbax wraps disk errors (e.g. RESOURCE_EXHAUSTED from TensorStore).
      message = str(error)
      if any(word in message for word in ('RESOURCE_EXHAUSTED', 'No space', 'Read-only', 'ermission denied')):
        raise disk_error(OSError(message.splitlines()[0][:200]), self.directory,
                         'write a checkpoint in') from error
      raise

  def _damaged(self, step: int, error: Exception) -> CheckpointError:
    step_dir = os.path.join(self.directory, str(step))
    return CheckpointError(
        f'The checkpoint {step_dir} cannot be read ({type(error).__name__}: {str(error)[:300]}). It is damaged '
        f'(a truncated or edited file). Delete {step_dir} to resume from the previous checkpoint '
        f'(steps on disk: {self.all_steps()}), or start a new workdir.')

  def metadata_unchecked(self, step: int | None = None) -> dict | None:
    """The JSON metadata of `step` (default: the latest) whatever its config; None without checkpoints."""
    step = self.latest_step if step is None else step
    if step is None:
      return None
    try:
      meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']
      if not isinstance(meta, dict):
        raise ValueError('missing metadata')
    except Exception as error:  # Orbax raises many types for a damaged directory; all mean the same here.
      raise self._damaged(step, error) from error
    return meta

  def metadata(self, step: int | None = None) -> dict | None:
    """The JSON metadata of `step` (default: the latest), after checking its config; None without checkpoints."""
    step = self.latest_step if step is None else step
    meta = self.metadata_unchecked(step)
    if meta is not None:
      check_config(meta.get('config', {}), self.config,
                   f'The checkpoint {os.path.join(self.directory, str(step))}')
    return meta

  def restore(self, template_fn: Callable[[dict], Any], step: int | None = None) -> tuple[Any, dict] | None:
    """(tree, metadata) of `step` (default: the latest), or None if there is no checkpoint.

    Args:
      template_fn: metadata -> the abstract tree to restore into (`jax.eval_shape` of what was saved).

    Raises:
      CheckpointError: the step is unreadable, was written under another config, or does not fit the template.
    """
    step = self.latest_step if step is None else step
    meta = self.metadata(step)
    if meta is None:
      return None
    where = f'The checkpoint {os.path.join(self.directory, str(step))}'
    template = template_fn(meta)
    try:
      arrays = self._manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore()))['arrays']
      if arrays is None:
        raise ValueError('missing arrays')
    except Exception as error:
      raise self._damaged(step, error) from error
    return from_arrays(template, arrays, where), meta
