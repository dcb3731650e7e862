"""Tests for jal.loop: the budget schedule, the state, the oracle, and an end-to-end run."""

import dataclasses
import time

import flax.linen as nn
import jax
import numpy as np
import pytest

from jal import checkpoint, data, experiment, loop, report
from jal import oracle as oracle_lib
from jal.models import ModelConfig, ModelOutput, count_params
from jal.search_space import Architecture
from jal.train import TrainConfig


def test_budget_schedule_follows_the_paper():
  schedule = loop.BudgetSchedule(2000, 2000, 50_000, grown_per_round=5000, grow_after=10_000)
  counts = schedule.label_counts()
  assert counts[:6] == [2000, 4000, 6000, 8000, 10_000, 15_000]
  assert counts[-1] == 50_000 and len(counts) == 13
  assert loop.BudgetSchedule(10, 7, 30).label_counts() == [10, 17, 24, 30]  # The last round is clipped.


@pytest.mark.parametrize('kwargs, message', [
    ({'initial': 0, 'per_round': 1, 'total': 5}, 'initial >= 1'),
    ({'initial': 5, 'per_round': 1, 'total': 4}, 'total >= initial'),
    ({'initial': 1, 'per_round': -1, 'total': 5}, 'per_round >= 1'),
    ({'initial': 1, 'per_round': 1, 'total': 5, 'grow_after': 3}, 'grown_per_round and grow_after'),
])
def test_bad_schedules_are_rejected(kwargs, message):
  with pytest.raises(ValueError, match=message):
    loop.BudgetSchedule(**kwargs)


def test_initial_set_depends_on_the_seed_only_and_budget_is_checked():
  oracle = oracle_lib.SimulatedOracle(np.arange(50) % 3)
  schedule = loop.BudgetSchedule(5, 5, 20)
  a, b = (loop.initial_state(50, schedule, oracle, seed=3) for _ in range(2))
  np.testing.assert_array_equal(a.labeled_mask, b.labeled_mask)
  assert a.num_labeled == 5
  np.testing.assert_array_equal(a.labels[a.labeled_mask], (np.arange(50) % 3)[a.labeled_mask])
  assert (a.labels[~a.labeled_mask] == -1).all()
  with pytest.raises(ValueError, match='exceeds the pool'):
    loop.initial_state(10, schedule, oracle, seed=0)


def test_reveal_refuses_relabelling():
  state = loop.initial_state(10, loop.BudgetSchedule(2, 2, 6), oracle_lib.SimulatedOracle(np.zeros(10, int)), 0)
  labelled = np.flatnonzero(state.labeled_mask)
  with pytest.raises(ValueError, match='already labelled'):
    state.reveal(labelled[:1], np.zeros(1, int))
  with pytest.raises(ValueError, match='returned'):
    state.reveal(np.flatnonzero(~state.labeled_mask)[:2], np.zeros(3, int))


def _tiny_splits():
  rng = np.random.default_rng(0)
  images = rng.normal(size=(120, 8, 8, 1)).astype(np.float32)
  labels = (images[:, 2:6, 2:6, 0].mean(axis=(1, 2)) > 0).astype(np.int32)
  return data.make_splits(data.from_arrays(images[:90], labels[:90]), data.from_arrays(images[90:], labels[90:]))


@pytest.mark.parametrize('strategy', ['entropy', 'bald', 'coreset'])
def test_end_to_end_rounds(strategy):
  splits = _tiny_splits()
  config = loop.LoopConfig(
      loop.BudgetSchedule(10, 8, 26), TrainConfig(epochs=2, examples_per_epoch=32, batch_size=16),
      ModelConfig(width=4, dropout_rate=0.5), mc_passes=4)
  seen = []
  state = loop.run(splits, config, strategy, loop.fixed(Architecture(1, 1)), seed=1, on_round=seen.append)
  history = state.history
  assert [r['num_labeled'] for r in history] == [10, 18, 26]
  assert [r['round'] for r in history] == [0, 1, 2] and len(seen) == 3
  assert state.num_labeled == 26
  np.testing.assert_array_equal(state.labels[state.labeled_mask], splits.pool.labels[state.labeled_mask])
  assert all(0 <= r['test/accuracy'] <= 1 and r['arch'] == 'A(1,1)' for r in history)
  assert history[0]['query/size'] == 8 and history[-1]['query/size'] == 0
  assert all(r['time/train'] > 0 for r in history)
  # Paired seeds: another strategy on the same seed starts from the same labelled set.
  other = loop.initial_state(len(splits.pool), config.schedule, oracle_lib.SimulatedOracle(splits.pool.labels), 1)
  assert history[0]['num_labeled'] == other.num_labeled


def test_rows_record_cpu_seconds_that_a_pause_does_not_inflate():
  """A search that waits (as a paused process or a busy machine makes it) spends wall seconds, not CPU seconds."""
  def waiting_policy(inputs, rng):
    del inputs, rng
    time.sleep(0.5)
    return Architecture(1, 1), {}

  config = loop.LoopConfig(loop.BudgetSchedule(10, 8, 10), TrainConfig(epochs=1, examples_per_epoch=32,
                                                                       batch_size=16), ModelConfig(width=4))
  row, = loop.run(_tiny_splits(), config, 'entropy', waiting_policy, seed=0).history
  assert row['time/nas'] >= 0.5 and row['time/nas_cpu'] < row['time/nas'] - 0.4
  assert row['time/train_cpu'] > 0 and row['time/train'] > 0


def test_warm_start_inherits_the_previous_rounds_model():
  """With warm_start each round's model starts from the previous round's, inherited into the new architecture:
  at a learning rate of ~0 it stays where the previous round left it, and a deeper one computes its function."""
  splits = _tiny_splits()
  still = TrainConfig(epochs=1, examples_per_epoch=16, batch_size=16, learning_rate=1e-12, weight_decay=0.0)
  config = loop.LoopConfig(loop.BudgetSchedule(10, 8, 18), still, ModelConfig(width=4), warm_start=True)
  archs = {0: Architecture(1, 1), 1: Architecture(2, 1)}
  models = []
  state = loop.run(splits, config, 'entropy', lambda inputs, rng: (archs[inputs.round], {}), seed=0,
                   on_round=lambda s: models.append(s.train_state))
  first, second = models
  # A(1,1) -> A(2,1): every parent leaf copied, the new block (a third of the leaves) the identity.
  assert state.history[1]['train/inherited'] == pytest.approx(2 / 3)
  assert state.history[1]['train/function_preserving'] == 1.0
  assert 'train/inherited' not in state.history[0]
  np.testing.assert_allclose(second.params['stem_conv']['kernel'], first.params['stem_conv']['kernel'], atol=1e-6)
  np.testing.assert_allclose(second.params['head']['dense']['kernel'], first.params['head']['dense']['kernel'],
                             atol=1e-6)
  cold = loop.run(splits, dataclasses.replace(config, warm_start=False), 'entropy',
                  lambda inputs, rng: (archs[inputs.round], {}), seed=0)
  assert not np.allclose(cold.train_state.params['head']['dense']['kernel'], first.params['head']['dense']['kernel'])


def test_unknown_strategy_fails_before_training():
  config = loop.LoopConfig(loop.BudgetSchedule(10, 8, 26), TrainConfig(epochs=1, examples_per_epoch=16,
                                                                        batch_size=16))
  with pytest.raises(ValueError, match='Unknown query strategy'):
    loop.run(_tiny_splits(), config, 'entropi', loop.fixed(Architecture(1, 1)))


def test_loop_state_is_a_pytree():
  state = loop.initial_state(10, loop.BudgetSchedule(2, 2, 6), oracle_lib.SimulatedOracle(np.zeros(10, int)), 0)
  leaves = jax.tree_util.tree_leaves(state)
  assert len(leaves) == 3  # mask, labels, key; round, arch and history are static; no model or query state yet.


class TinyCNN(nn.Module):
  """A researcher's own task model: no BatchNorm, not in the A(B, i, j) family."""

  num_classes: int

  @nn.compact
  def __call__(self, images, train=False, dropout=None):
    del train, dropout
    x = nn.relu(nn.Conv(6, (3, 3))(images))
    embedding = x.mean(axis=(1, 2))
    return ModelOutput(nn.Dense(self.num_classes)(embedding), embedding)


@pytest.mark.parametrize('strategy', ['entropy', 'coreset'])
def test_a_user_defined_module_is_the_task_model_of_a_fixed_run(tmp_path, strategy):
  splits = _tiny_splits()
  config = loop.LoopConfig(loop.BudgetSchedule(10, 8, 26), TrainConfig(epochs=2, examples_per_epoch=32,
                                                                        batch_size=16))
  model_fn = lambda name: TinyCNN(splits.pool.num_classes)  # noqa: E731
  run = lambda directory: loop.run(splits, config, strategy, loop.fixed('tiny_cnn'), seed=0,  # noqa: E731
                                   model_fn=model_fn, checkpointer=checkpoint.Checkpointer(directory))
  state = run(tmp_path)
  assert [r['arch'] for r in state.history] == ['tiny_cnn'] * 3
  assert state.num_labeled == 26 and all(r['query/size'] == 8 for r in state.history[:2])
  assert state.history[0]['arch/params'] == count_params(state.train_state.params) == 6 * 9 + 6 + 6 * 2 + 2
  assert all(0.0 <= r['test/accuracy'] <= 1.0 for r in state.history)
  again = run(tmp_path)  # Restored from disk, by the model's name: finished, nothing trained.
  assert again.arch == 'tiny_cnn' and again.history == state.history


def test_a_pool_on_disk_runs_and_resumes_as_the_same_pool_in_memory(tmp_path):
  # An uint8 pool in a .npy file, read through `NpyPool`: make_splits keeps it there (a normalising `PoolView`),
  # the loop trains, scores, fingerprints and checkpoints through row reads, a run stopped after round 0 resumes,
  # and every row equals the run on the same normalised pool held in memory.
  rng = np.random.default_rng(0)
  raw = rng.integers(0, 256, (150, 8, 8, 1), dtype=np.uint8)
  labels = (raw[:, 2:6, 2:6, 0].mean(axis=(1, 2)) > 127).astype(np.int32)
  np.save(tmp_path / 'pool.npy', raw[:120])
  source = data.Dataset(data.NpyPool(str(tmp_path / 'pool.npy')), labels[:120], 2, name='disk')
  on_disk = data.make_splits(source, data.from_arrays(raw[120:], labels[120:]))
  assert isinstance(on_disk.pool.images, data.PoolView) and on_disk.pool.images.dtype == np.float32
  in_memory = dataclasses.replace(on_disk, pool=dataclasses.replace(on_disk.pool, images=on_disk.pool.images[:]))
  config = loop.LoopConfig(loop.BudgetSchedule(10, 8, 26), TrainConfig(epochs=2, examples_per_epoch=32,
                                                                        batch_size=16), ModelConfig(width=4))
  policy = loop.fixed(Architecture(1, 1))
  expected = loop.run(in_memory, config, 'coreset', policy, seed=1).history

  class Stop(Exception):
    pass

  def stop_after_round_0(state):
    if state.round == 1:
      raise Stop

  workdir = str(tmp_path / 'run')
  with pytest.raises(Stop):
    loop.run(on_disk, config, 'coreset', policy, seed=1, checkpointer=checkpoint.Checkpointer(workdir),
             on_round=stop_after_round_0)
  resumed = loop.run(on_disk, config, 'coreset', policy, seed=1, checkpointer=checkpoint.Checkpointer(workdir))
  assert len(resumed.history) == len(expected) == 3

  def outcome(rows):
    return [{k: v for k, v in r.items() if not k.startswith(('time/', 'compile/'))} for r in rows]

  assert outcome(resumed.history) == outcome(expected)


def test_stabilising_predictions_end_the_session_without_spending_the_rest_of_the_budget():
  # Warm starts at a learning rate of ~0: every round's model is the previous one, so successive models agree on
  # the stop set (kappa 1). With stop_rounds=2 the session ends at round 2 without its query, the budget unspent.
  splits = _tiny_splits()
  still = TrainConfig(epochs=1, examples_per_epoch=16, batch_size=16, learning_rate=1e-12, weight_decay=0.0)
  config = loop.LoopConfig(loop.BudgetSchedule(10, 8, 42), still, ModelConfig(width=4), warm_start=True,
                           stop_set=40, stop_rounds=2, stop_agreement=0.9)
  rows = []
  state = loop.run(splits, config, 'entropy', loop.fixed(Architecture(1, 1)), seed=0,
                   on_round=lambda s: rows.append(s.history[-1]))
  history = state.history
  assert [r['num_labeled'] for r in history] == [10, 18, 26] and state.num_labeled == 26
  assert 'stop/agreement' not in history[0] and [r['stop/agreement'] for r in history[1:]] == [1.0, 1.0]
  assert history[-1]['stop/stopped'] and history[-1]['query/size'] == 0 and 'stop/stopped' not in history[1]
  assert all(sum(r['labels/per_class']) == r['num_labeled'] and len(r['labels/per_class']) == 2 for r in history)
  assert 'agreement 1.000 (stopped: stable)' in report.round_line({**history[-1], 'policy': 'fixed', 'seed': 0})
  rows_of_grid = [{**r, 'policy': 'fixed:A(1,1)', 'seed': 0} for r in history]
  grid = experiment.base_config()
  grid.policies, grid.strategies = ('fixed:A(1,1)',), ('entropy',)
  grid.budget.initial, grid.budget.per_round, grid.budget.total = 10, 8, 42
  assert experiment.complete(grid, rows_of_grid, 0)  # A run the rule ended is finished, not to be run again.
  assert not experiment.complete(grid, rows_of_grid[:2], 0)
  # Without the rule the same models run the whole budget, the agreement recorded each round.
  everything = loop.run(splits, dataclasses.replace(config, stop_rounds=0), 'entropy',
                        loop.fixed(Architecture(1, 1)), seed=0)
  assert [r['num_labeled'] for r in everything.history] == [10, 18, 26, 34, 42]
  assert not any(r.get('stop/stopped') for r in everything.history)
  with pytest.raises(ValueError, match='stop_agreement in'):
    loop.LoopConfig(config.schedule, still, stop_agreement=0.0)
