"""Tests for Learning Loss on the task model: the module's output, its ranking loss trained with the model and
detached from the backbone on schedule, and the `learning_loss` strategy through the loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import data, loop, query
from jal.loss_prediction import margin_ranking_loss
from jal.models import ModelConfig, build_model, init_variables
from jal.search_space import Architecture
from jal.train import TrainConfig, train

PLAIN = ModelConfig(width=4)
PREDICTING = ModelConfig(width=4, loss_prediction=True)


def test_the_ranking_loss_is_zero_when_the_order_holds_by_the_margin_and_positive_otherwise():
  target = jnp.array([3.0, 2.0, 1.0, 0.0])
  assert float(margin_ranking_loss(target * 2, target)) == 0.0  # Pairs (0, 3) and (1, 2): gaps 6 and 2 >= 1.
  assert float(margin_ranking_loss(-target, target)) > 1.0


def test_a_loss_predicting_model_carries_the_module_and_only_it():
  images = jnp.zeros((3, 28, 28, 1))
  plain = build_model(Architecture(1, 2), 10, PLAIN)
  predicting = build_model(Architecture(1, 2), 10, PREDICTING)
  assert plain.apply(init_variables(plain, jax.random.key(0), (28, 28, 1)), images).predicted_loss is None
  variables = init_variables(predicting, jax.random.key(0), (28, 28, 1))
  assert 'loss_module' in variables['params'] and 'loss_module' not in init_variables(
      plain, jax.random.key(0), (28, 28, 1))['params']
  assert predicting.apply(variables, images).predicted_loss.shape == (3,)


def test_the_module_learns_with_the_model_and_its_gradient_stops_at_the_backbone_on_schedule(fashion_mnist):
  pool = fashion_mnist.pool
  model = build_model(Architecture(1, 1), 10, PREDICTING)
  settings = TrainConfig(epochs=3, examples_per_epoch=64, batch_size=32)
  detached = train(model, TrainConfig(epochs=3, examples_per_epoch=64, batch_size=32, loss_prediction_detach=0.0),
                   pool.images[:128], pool.labels[:128], jax.random.key(0))
  unweighted = train(model, TrainConfig(epochs=3, examples_per_epoch=64, batch_size=32, loss_prediction_weight=0.0),
                     pool.images[:128], pool.labels[:128], jax.random.key(0))
  joint = train(model, settings, pool.images[:128], pool.labels[:128], jax.random.key(0))

  def backbone(result):
    return {k: v for k, v in jax.device_get(result.state_for_seed(0).params).items() if k != 'loss_module'}

  # Detached from the first step, the ranking loss moves the module only: the backbone trains as without it.
  for a, b in zip(jax.tree_util.tree_leaves(backbone(detached)), jax.tree_util.tree_leaves(backbone(unweighted))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  moved = [not np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(
      jax.tree_util.tree_leaves(backbone(joint)), jax.tree_util.tree_leaves(backbone(unweighted)))]
  assert any(moved)  # Joint training: the module's loss shapes the backbone too.
  # With λ = 0 the module never moves from its initialisation (no gradient, no weight decay on dense kernels);
  # detached, it learned.
  module = lambda result: jax.device_get(result.state_for_seed(0).params['loss_module'])  # noqa: E731
  kernels = lambda result: [v['kernel'] for v in module(result).values()]  # noqa: E731
  assert not any(np.allclose(a, b) for a, b in zip(kernels(detached), kernels(unweighted)))


def test_learning_loss_queries_the_highest_predicted_loss_and_needs_the_module():
  predicted = jnp.array([0.1, 2.0, 0.5, 3.0, 1.0])
  unlabeled = jnp.array([True, True, True, False, True])
  inputs = query.QueryInputs(unlabeled, ~unlabeled, predicted_loss=predicted)
  assert sorted(query.select('learning_loss', inputs, 2, jax.random.key(0)).tolist()) == [1, 4]
  with pytest.raises(ValueError, match='loss-prediction module the model does not have.*loss_prediction=True'):
    query.select('learning_loss', query.QueryInputs(unlabeled, ~unlabeled), 2, jax.random.key(0))


def test_a_learning_loss_session(fashion_mnist):
  splits = data.Splits(data.Dataset(fashion_mnist.pool.images[:300], fashion_mnist.pool.labels[:300], 10),
                       None, fashion_mnist.test.subset(np.arange(100)), fashion_mnist.mean, fashion_mnist.std)
  config = loop.LoopConfig(loop.BudgetSchedule(20, 20, 40), TrainConfig(epochs=2, examples_per_epoch=64,
                                                                        batch_size=32), PREDICTING)
  state = loop.run(splits, config, 'learning_loss', loop.fixed(Architecture(1, 1)), seed=0)
  assert [r['num_labeled'] for r in state.history] == [20, 40] and state.history[0]['query/size'] == 20
