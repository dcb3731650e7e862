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

from jal import autoal, checkpoint, data, inas, loop
from jal.models import ModelConfig
from jal.search_space import Architecture, SearchSpace
from jal.train import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, 'tests', 'resume_worker.py')


def _worker(workdir):
  return subprocess.Popen([sys.executable, WORKER, str(workdir)], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _result(process):
  stdout, stderr = process.communicate(timeout=600)
  assert process.returncode == 0, stderr[-3000:]
  return json.loads(stdout.strip().splitlines()[-1])


def test_sigkill_during_round_two_then_resume_gives_the_same_run(tmp_path, fashion_mnist):
  del fashion_mnist
  uninterrupted = _result(_worker(tmp_path / 'a'))

  process = _worker(tmp_path / 'b')
  checkpoints = tmp_path / 'b'
  deadline = time.time() + 600
  # Step 5 = round 1 (the second round) after its 'policy' phase: kill while it trains.
  while not (checkpoints / '5').exists() and process.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  assert process.poll() is None, 'the run ended before it could be killed'
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert process.returncode == -signal.SIGKILL
  steps = sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
  assert steps and max(steps) < 12  # Killed mid-run: not finished.

  resumed = _result(_worker(tmp_path / 'b'))
  assert resumed['done'] and uninterrupted['done']
  assert resumed['history'] == uninterrupted['history']
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
  return [{k: v for k, v in r.items() if not k.startswith('time/')} for r in history]


def _run_with_crash(directory, splits, config, strategy, policy, run_config, crash_at):
  """Runs to the end; with `crash_at`, first runs until that checkpoint, then resumes from disk."""
  if crash_at is not None:
    with pytest.raises(Crash):
      loop.run(splits, config, strategy, policy, seed=0,
               checkpointer=CrashingCheckpointer(directory, run_config, crash_at))
  return loop.run(splits, config, strategy, policy, seed=0,
                  checkpointer=checkpoint.Checkpointer(directory, run_config))


def test_autoal_and_inas_state_resume_exactly(tmp_path, small):
  splits, config = small
  querier = autoal.AutoAL(dataclasses.replace(
      autoal.AutoALConfig(candidates=('entropy', 'kmeans')), width=4, batch_size=16, pretrain_steps=3,
      cycles=2, num_threshold_samples=256))
  # A(1,1) -> A(1,2) at most: few architectures to compile. The crash comes after round 0's query, so round 1's
  # search continues from the restored AutoAL networks and its query uses them.
  policy = inas.inas_policy(inas.INASConfig(space=SearchSpace(1, 2), candidate_fraction=0.5))
  run_config = {'case': 'autoal+inas'}
  straight = _run_with_crash(tmp_path / 'a', splits, config, querier, policy, run_config, None)
  resumed = _run_with_crash(tmp_path / 'b', splits, config, querier, policy, run_config, (0, 'query'))
  assert resumed.query_state is not None and len(resumed.history) == 3
  assert _without_times(resumed.history) == _without_times(straight.history)
  np.testing.assert_array_equal(resumed.labeled_mask, straight.labeled_mask)
  for a, b in zip(jax.tree_util.tree_leaves(resumed.query_state), jax.tree_util.tree_leaves(straight.query_state)):
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
