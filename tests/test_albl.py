"""Tests for jal.albl: EXP3's distribution and update, the reward on items the model had not trained on, the
query (the drawn arm's own query plus uniform items), and a session through the loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import albl, data, loop, query
from jal.models import ModelConfig, build_model, init_variables
from jal.search_space import Architecture
from jal.train import TrainConfig

CONFIG = albl.ALBLConfig(candidates=('entropy', 'kmeans'), mc_passes=3, random_share=0.25)


def test_exp3_keeps_its_floor_and_credits_only_the_rewarded_arm():
  log_weights = jnp.zeros(3)
  probs = albl.arm_probabilities(log_weights, 0.3)
  np.testing.assert_allclose(probs, [1 / 3] * 3, rtol=1e-6)
  for _ in range(50):  # Arm 0 always rewarded: its probability rises towards 1 - γ + γ/K, never past it.
    probs = albl.arm_probabilities(log_weights, 0.3)
    log_weights = albl.credit(log_weights, 0, float(probs[0]), 1.0, 0.3)
  probs = np.asarray(albl.arm_probabilities(log_weights, 0.3))
  assert probs[0] > 0.75 and probs[1] == probs[2] and probs[1] >= 0.1 - 1e-6
  np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-6)
  # A reward of 0 leaves the weights alone; the importance weight 1/p makes a rarely drawn arm's reward count more.
  np.testing.assert_array_equal(albl.credit(jnp.zeros(3), 1, 0.5, 0.0, 0.3), jnp.zeros(3))
  assert float(albl.credit(jnp.zeros(3), 1, 0.1, 0.5, 0.3)[1]) > float(albl.credit(jnp.zeros(3), 1, 0.5, 0.5, 0.3)[1])


def test_the_default_exploration_is_auer_et_als_for_the_horizon():
  seven = albl.ALBLConfig(horizon=5)  # Seven arms, five queries: Auer et al.'s γ is uniform play.
  assert seven.gamma == 1.0
  gamma = albl.ALBLConfig(candidates=('entropy', 'kmeans', 'bald'), horizon=5).gamma
  np.testing.assert_allclose(gamma, np.sqrt(3 * np.log(3) / ((np.e - 1) * 5)))
  assert albl.ALBLConfig(candidates=('entropy',), exploration=0.2).gamma == 0.2


def test_the_reward_reads_only_predictions_whose_label_has_arrived():
  pending = np.array([-1, 2, 0, 1, -1])
  labels = np.array([3, 2, 1, -1, -1])  # Item 3 predicted but not yet labelled: left out.
  assert albl.pending_reward(pending, labels) == 0.5
  assert albl.pending_reward(np.full(5, -1), labels) is None


def test_config_is_checked():
  with pytest.raises(ValueError, match='random'):
    albl.ALBLConfig(candidates=('entropy', 'random'))
  with pytest.raises(ValueError, match='repeat'):
    albl.ALBLConfig(candidates=('entropy', 'entropy'))
  with pytest.raises(ValueError, match='random_share'):
    albl.ALBLConfig(candidates=('entropy',), random_share=1.0)
  with pytest.raises(ValueError, match='Unknown query strategy'):
    albl.ALBLConfig(candidates=('entropi',))


def _context(fashion_mnist, state=None, num_items=200, labeled=20, budget=20):
  pool = data.Dataset(fashion_mnist.pool.images[:num_items], fashion_mnist.pool.labels[:num_items], 10)
  model = build_model(Architecture(1, 1), 10, ModelConfig(width=4, dropout_rate=0.5))
  variables = init_variables(model, jax.random.key(0), pool.image_shape)
  mask = np.zeros(num_items, bool)
  mask[:labeled] = True
  labels = np.where(mask, pool.labels, -1).astype(np.int32)
  return query.QueryContext(pool, mask, labels, model, variables, budget, state)


def test_the_query_is_the_drawn_arms_own_query_plus_uniform_items_whose_predictions_it_keeps(fashion_mnist):
  context = _context(fashion_mnist)
  querier = albl.ALBL(CONFIG)
  picks, metrics, state = querier.query(context, jax.random.key(3))
  assert len(picks) == 20 and len(set(picks.tolist())) == 20 and not context.labeled_mask[picks].any()
  arm = [k for k, name in enumerate(CONFIG.candidates) if metrics[f'albl/chosen/{name}'] == 1.0]
  assert len(arm) == 1 and int(state.arms[0]) == arm[0] and int(state.arms[1]) == -1
  assert metrics['albl/random_items'] == 5 and 'albl/reward' not in metrics
  # The first 15 picks are the arm's own query of 15, computed as the strategy alone would.
  inputs = query.pool_inputs(query.QueryStrategy('x', None, frozenset({'probs', 'embeddings'}), ''), context.model,
                             context.variables, context.pool.images, context.unlabeled_mask, context.labeled_mask,
                             jax.random.key(0))
  _, score_rng, select_rng, _ = jax.random.split(jax.random.key(3), 4)
  own = query.select(CONFIG.candidates[arm[0]], inputs, 15, select_rng)
  np.testing.assert_array_equal(np.sort(picks[:15]), np.sort(own))
  # The 5 uniform items carry the model's predictions, the rest of the pool none.
  pending = np.asarray(state.pending)
  assert set(np.flatnonzero(pending >= 0)) == set(picks[15:].tolist())
  np.testing.assert_array_equal(pending[picks[15:]], np.asarray(inputs.probs)[picks[15:]].argmax(-1))

  # Next round: those labels have arrived; the reward is the accuracy of those predictions, credited to no arm
  # yet (the model that made them trained before any ALBL batch); the round after credits the first arm.
  mask = context.labeled_mask.copy()
  mask[picks] = True
  labels = np.where(mask, context.pool.labels, -1).astype(np.int32)
  second = query.QueryContext(context.pool, mask, labels, context.model, context.variables, 20, state)
  _, metrics2, state2 = querier.query(second, jax.random.key(4))
  expected = np.mean(pending[picks[15:]] == context.pool.labels[picks[15:]])
  assert metrics2['albl/reward'] == pytest.approx(expected)
  np.testing.assert_array_equal(state2.log_weights, state.log_weights)
  assert int(state2.arms[1]) == arm[0]


def test_albl_session_through_the_loop(fashion_mnist):
  splits = data.Splits(
      data.Dataset(fashion_mnist.pool.images[:300], fashion_mnist.pool.labels[:300], 10),
      None, fashion_mnist.test, fashion_mnist.mean, fashion_mnist.std)
  config = loop.LoopConfig(loop.BudgetSchedule(20, 20, 80),
                           TrainConfig(epochs=2, examples_per_epoch=64, batch_size=32),
                           ModelConfig(width=4, dropout_rate=0.5), mc_passes=3)
  querier = albl.ALBL(albl.ALBLConfig(candidates=('entropy', 'kmeans'), exploration=0.5, mc_passes=3))
  state = loop.run(splits, config, querier, loop.fixed(Architecture(1, 1)), seed=0)
  rows = state.history
  assert [r['num_labeled'] for r in rows] == [20, 40, 60, 80]
  assert all(r['strategy'] == 'albl' for r in rows)
  assert all(sum(r[f'albl/chosen/{n}'] for n in ('entropy', 'kmeans')) == 1.0 for r in rows[:3])
  assert 'albl/reward' not in rows[0] and all(0.0 <= r['albl/reward'] <= 1.0 for r in rows[1:3])
  # Round 2 credits round 0's arm: its probability at round 2 is above the uniform 1/2.
  arm0 = next(n for n in ('entropy', 'kmeans') if rows[0][f'albl/chosen/{n}'] == 1.0)
  assert rows[2][f'albl/p/{arm0}'] > 0.5 or rows[2]['albl/reward'] == 0.0
  assert isinstance(state.query_state, albl.BanditState)


def test_the_autoal_configs_run_albl_over_autoals_candidates():
  from jal import experiment
  from jal.configs import autoal as autoal_config
  for arg in ('', 'three', 'smoke'):
    config = autoal_config.get_config(arg)
    querier = experiment.make_querier('albl', config)
    assert isinstance(querier, albl.ALBL)
    assert querier.config.candidates == tuple(config.autoal.candidates)
  assert 'albl' in autoal_config.get_config('three').strategies
  with pytest.raises(ValueError, match='albl'):
    experiment.make_querier('albl', experiment.base_config())
