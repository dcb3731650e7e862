"""Tests for the loop's checkpointed resume: after every phase, exact after SIGKILL, refusing other configs."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jal import albl, autoal, checkpoint, data, inas, loop
from jal.models import ModelConfig
from jal.search_space import Architecture, SearchSpace
from jal.train import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, 'tests', 'resume_worker.py')


def _worker(workdir, mode='fixed', cache=None):
  env = dict(os.environ)
  if cache is not None:  # Restarts reuse compiled steps, as a user's restarts with JAX's persistent cache would.
    env.update(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  return subprocess.Popen([sys.executable, WORKER, str(workdir), mode], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)


def _steps(directory):
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.exists() else []


def _result(process):
  stdout, stderr = process.communicate(timeout=600)
  assert process.returncode == 0, stderr[-3000:]
  return json.loads(stdout.strip().splitlines()[-1])


def test_active_inas_killed_after_every_checkpoint_of_two_rounds_ends_as_an_uninterrupted_run(tmp_path,
                                                                                            fashion_mnist):
  """The kill that used to wedge active-iNAS for good: after the checkpoint that ends round 0, restart, then after
  round 1's architecture choice (a new architecture), restart; and so on after every checkpoint."""
  del fashion_mnist
  cache = tmp_path / 'jax_cache'
  uninterrupted = _result(_worker(tmp_path / 'a', 'inas', cache))
  assert len(set(uninterrupted['archs'])) > 1, 'the architecture must change for this test to mean anything'
  directory = tmp_path / 'b'
  killed_after, deadline = [], time.time() + 900
  while True:
    process = _worker(directory, 'inas', cache)
    last = max(_steps(directory), default=-1)
    while process.poll() is None and max(_steps(directory), default=-1) <= last and time.time() < deadline:
      time.sleep(0.01)
    if process.poll() is not None:  # Finished before the next checkpoint: nothing left to kill.
      resumed = _result(process)
      break
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after.append(max(_steps(directory)))
  assert len(killed_after) >= 5  # 2 rounds x 4 phases, less those the process ran past before the kill.
  assert resumed['done'] and resumed['history'] == uninterrupted['history']
  assert resumed['labeled'] == uninterrupted['labeled']
  assert resumed['params_sha256'] == uninterrupted['params_sha256']


def test_a_run_on_a_pool_on_disk_killed_mid_session_resumes_to_the_uninterrupted_run(tmp_path, fashion_mnist):
  """SIGKILL once two checkpoints are on disk, in a run whose pool is an .npy file read through NpyPool; restart."""
  del fashion_mnist
  cache = tmp_path / 'jax_cache'
  uninterrupted = _result(_worker(tmp_path / 'a', 'disk', cache))
  directory = tmp_path / 'b'
  process, deadline = _worker(directory, 'disk', cache), time.time() + 600
  while process.poll() is None and len(_steps(directory)) < 2 and time.time() < deadline:
    time.sleep(0.01)
  assert process.poll() is None, 'the run finished before the kill'
  process.send_signal(signal.SIGKILL)
  process.wait()
  resumed = _result(_worker(directory, 'disk', cache))
  assert resumed['done'] and resumed['history'] == uninterrupted['history']
  assert resumed['labeled'] == uninterrupted['labeled']
  assert resumed['params_sha256'] == uninterrupted['params_sha256']


@pytest.fixture(scope='module')
def small(fashion_mnist):
  splits = data.Splits(data.Dataset(fashion_mnist.pool.images[:300], fashion_mnist.pool.labels[:300], 10),
                       None, fashion_mnist.test.subset(np.arange(200)), fashion_mnist.mean, fashion_mnist.std)
  config = loop.LoopConfig(loop.BudgetSchedule(20, 20, 60), TrainConfig(epochs=2, examples_per_epoch=64,
                                                                        batch_size=32), ModelConfig(width=4),
                           mc_passes=3)
  return splits, config


class Crash(Exception):
  pass


class CrashingCheckpointer(checkpoint.Checkpointer):
  """Saves, then raises once the save of (round, phase) is complete: a kill right after that checkpoint."""

  def __init__(self, directory, config, crash_at):
    super().__init__(directory, config)
    self.crash_at, self.saved = crash_at, []

  def save(self, step, tree, metadata):
    super().save(step, tree, metadata)
    self.saved.append((metadata['round'], metadata['phase'], metadata['done']))
    if (metadata['round'], metadata['phase']) == self.crash_at:
      raise Crash()


def _without_times(history):
  return [{k: v for k, v in r.items() if not k.startswith(('time/', 'compile/'))} for r in history]


def _run_with_crashes(directory, splits, config, strategy, policy, run_config, crashes=()):
  """Runs to the end; first crashes right after each checkpoint in `crashes` in turn, resuming from disk."""
  for crash_at in crashes:
    with pytest.raises(Crash):
      loop.run(splits, config, strategy, policy, seed=0,
               checkpointer=CrashingCheckpointer(directory, run_config, crash_at))
  return loop.run(splits, config, strategy, policy, seed=0,
                  checkpointer=checkpoint.Checkpointer(directory, run_config))


# (round, phase) of every checkpoint of rounds 0 and 1, in order; (r, 'start') is the one that ends round r - 1.
EVERY_PHASE_OF_TWO_ROUNDS = ((0, 'policy'), (0, 'train'), (0, 'query'), (1, 'start'),
                             (1, 'policy'), (1, 'train'), (1, 'query'), (2, 'start'))


def test_autoal_and_inas_state_resume_exactly(tmp_path, small):
  splits, config = small
  querier = autoal.AutoAL(dataclasses.replace(
      autoal.AutoALConfig(candidates=('entropy', 'kmeans')), width=4, batch_size=8, pretrain_steps=3,
      cycles=2, num_threshold_samples=256))
  # A(1,1) -> A(1,2) at most: few architectures to compile. A crash after every checkpoint of two rounds: after
  # round 0's query, round 1's search continues from the restored AutoAL networks and its query uses them.
  policy = inas.inas_policy(inas.INASConfig(space=SearchSpace(1, 2), candidate_fraction=0.5))
  run_config = {'case': 'autoal+inas'}
  straight = _run_with_crashes(tmp_path / 'a', splits, config, querier, policy, run_config)
  resumed = _run_with_crashes(tmp_path / 'b', splits, config, querier, policy, run_config,
                              EVERY_PHASE_OF_TWO_ROUNDS)
  assert resumed.query_state is not None and len(resumed.history) == 3
  assert _without_times(resumed.history) == _without_times(straight.history)
  np.testing.assert_array_equal(resumed.labeled_mask, straight.labeled_mask)
  for a, b in zip(jax.tree_util.tree_leaves(resumed.query_state), jax.tree_util.tree_leaves(straight.query_state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_albl_bandit_resumes_exactly(tmp_path, small):
  """ALBL's bandit (weights, the last two arms, the pending predictions) is checkpointed with the state: crashes
  after round 0's query and after round 0 give the uninterrupted rows, round 1's reward read from restored state."""
  splits, config = small
  querier = albl.ALBL(albl.ALBLConfig(candidates=('entropy', 'kmeans'), exploration=0.5, mc_passes=3))
  straight = _run_with_crashes(tmp_path / 'a', splits, config, querier, loop.fixed(Architecture(1, 1)),
                               {'case': 'albl'})
  resumed = _run_with_crashes(tmp_path / 'b', splits, config, querier, loop.fixed(Architecture(1, 1)),
                              {'case': 'albl'}, ((0, 'query'), (1, 'start')))
  assert 'albl/reward' in resumed.history[1] and _without_times(resumed.history) == _without_times(straight.history)
  for a, b in zip(jax.tree_util.tree_leaves(resumed.query_state), jax.tree_util.tree_leaves(straight.query_state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_kept_lineage_resumes_exactly(tmp_path, small):
  """iNAS whose candidates inherit the last search's choice: the kept candidate is checkpointed with the state
  and the round's progress, so crashes after round 0's choice and after round 0 give the uninterrupted rows."""
  splits, config = small
  policy = inas.inas_policy(inas.INASConfig(space=SearchSpace(1, 2), candidate_fraction=0.5, inherit='lineage',
                                            inherited_fraction=0.25))
  run_config = {'case': 'lineage'}
  straight = _run_with_crashes(tmp_path / 'a', splits, config, 'margin', policy, run_config)
  resumed = _run_with_crashes(tmp_path / 'b', splits, config, 'margin', policy, run_config,
                              ((0, 'policy'), (1, 'start')))  # progress.kept, then state.kept.
  steps = [r['nas/candidate_steps'] / r['nas/candidates'] for r in straight.history]
  assert steps[1] == steps[2] == steps[0] / 2  # Rounds 1 and 2 inherit (half the steps of round 0's).
  assert _without_times(resumed.history) == _without_times(straight.history)
  assert resumed.kept is not None and resumed.kept.arch == straight.kept.arch
  np.testing.assert_array_equal(resumed.kept.validation_mask, straight.kept.validation_mask)
  leaves = jax.tree_util.tree_leaves
  for a, b in zip(leaves(resumed.kept.variables), leaves(straight.kept.variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_every_phase_is_checkpointed_and_a_finished_run_does_nothing(tmp_path, small):
  splits, config = small
  recorder = CrashingCheckpointer(tmp_path, {'case': 'phases'}, crash_at=None)
  state = loop.run(splits, config, 'entropy', loop.fixed(Architecture(1, 1)), seed=0, checkpointer=recorder)
  assert recorder.saved[:4] == [(0, 'policy', False), (0, 'train', False), (0, 'query', False), (1, 'start', False)]
  assert recorder.saved[-1] == (3, 'start', True)

  calls = []
  again = loop.run(splits, config, 'entropy', loop.fixed(Architecture(1, 1)), seed=0,
                   checkpointer=checkpoint.Checkpointer(tmp_path, {'case': 'phases'}), on_round=calls.append)
  assert calls == []  # Nothing was trained again.
  assert again.history == state.history
  for a, b in zip(jax.tree_util.tree_leaves(again.train_state), jax.tree_util.tree_leaves(state.train_state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_different_config_is_refused_naming_the_fields(tmp_path, small):
  splits, config = small
  loop.run(splits, dataclasses.replace(config, schedule=loop.BudgetSchedule(20, 20, 40)), 'entropy',
           loop.fixed(Architecture(1, 1)), seed=0,
           checkpointer=checkpoint.Checkpointer(tmp_path, {'width': 4, 'budget': {'total': 60}}))
  before = sorted(os.listdir(tmp_path))
  with pytest.raises(checkpoint.CheckpointError, match=r'budget.total: 60 -> 80.*width: 4 -> 8'):
    loop.run(splits, config, 'entropy', loop.fixed(Architecture(1, 1)), seed=0,
             checkpointer=checkpoint.Checkpointer(tmp_path, {'width': 8, 'budget': {'total': 80}}))
  assert sorted(os.listdir(tmp_path)) == before
