"""Tests for jal.pretrained and the pretrained start: variables saved and loaded (Orbax, msgpack), fitted to a
model (a head for other classes stays fresh), a frozen backbone that does not move, and the loop starting every
round from the pretrained variables."""

import jax
import numpy as np
import pytest

from jal import data, loop, pretrained
from jal.models import ModelConfig, build_model, init_variables
from jal.search_space import Architecture
from jal.train import TrainConfig, train

SETTINGS = TrainConfig(epochs=2, examples_per_epoch=64, batch_size=32, learning_rate=0.05)
MODEL = ModelConfig(width=4)


def _leaves_equal(a, b):
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


@pytest.fixture(scope='module')
def backbone(fashion_mnist):
  """A tiny A(1,1) trained on 200 Fashion-MNIST images: the 'pretrained' network."""
  model = build_model(Architecture(1, 1), 10, MODEL)
  pool = fashion_mnist.pool
  result = train(model, SETTINGS, pool.images[:200], pool.labels[:200], jax.random.key(7))
  return model, jax.device_get(result.state_for_seed(0).variables)


@pytest.mark.parametrize('name', ['variables.msgpack', 'orbax_dir'])
def test_variables_round_trip_through_orbax_and_msgpack(tmp_path, backbone, name):
  _, variables = backbone
  path = str(tmp_path / name)
  pretrained.save_variables(path, variables)
  loaded = pretrained.load_variables(path)
  assert set(loaded) == {'params', 'batch_stats'} and _leaves_equal(loaded, variables)


def test_a_head_for_other_classes_stays_fresh_and_another_architecture_is_refused(backbone):
  _, variables = backbone
  three_classes = build_model(Architecture(1, 1), 3, MODEL)
  fresh = init_variables(three_classes, jax.random.key(0), (28, 28, 1))
  fitted, taken, left = pretrained.fit_to(variables, fresh)
  assert left == 2  # The head's kernel and bias: 10 classes there, 3 here.
  assert np.array_equal(fitted['params']['head']['dense']['kernel'], fresh['params']['head']['dense']['kernel'])
  assert np.array_equal(fitted['params']['stem_conv']['kernel'], variables['params']['stem_conv']['kernel'])
  assert taken == len(jax.tree_util.tree_leaves(fresh)) - 2
  wider = build_model(Architecture(1, 1), 10, ModelConfig(width=8))
  with pytest.raises(ValueError, match='fit none of this model.*--config.model.width'):
    pretrained.fit_to(variables, init_variables(wider, jax.random.key(0), (28, 28, 1)))


def test_bad_paths_get_a_message_that_says_what_to_pass(tmp_path):
  with pytest.raises(ValueError, match='nothing there.*Orbax checkpoint directory or a .msgpack file'):
    pretrained.load_variables(str(tmp_path / 'missing.msgpack'))
  junk = tmp_path / 'junk.msgpack'
  junk.write_bytes(b'not msgpack at all')
  with pytest.raises(ValueError, match='not readable as an Orbax checkpoint or Flax msgpack'):
    pretrained.load_variables(str(junk))
  other = tmp_path / 'other.msgpack'
  pretrained.save_variables(str(tmp_path / 'ok.msgpack'), {'params': {'w': np.zeros(2)}})
  other.write_bytes((tmp_path / 'ok.msgpack').read_bytes())
  assert set(pretrained.load_variables(str(other))) == {'params'}


def test_a_frozen_backbone_does_not_move_and_its_head_learns(fashion_mnist, backbone):
  model, variables = backbone
  pool = fashion_mnist.pool
  frozen = TrainConfig(epochs=2, examples_per_epoch=64, batch_size=32, learning_rate=0.05, freeze='backbone')
  result = train(model, frozen, pool.images[200:300], pool.labels[200:300], jax.random.key(1), init=variables)
  after = jax.device_get(result.state_for_seed(0).variables)
  backbone_before = {k: v for k, v in variables['params'].items() if k != 'head'}
  backbone_after = {k: v for k, v in after['params'].items() if k != 'head'}
  assert _leaves_equal(backbone_after, backbone_before)  # Weight decay included: not one bit moved.
  assert _leaves_equal(after['batch_stats'], variables['batch_stats'])  # BatchNorm on its running statistics.
  assert not _leaves_equal(after['params']['head'], variables['params']['head'])
  unfrozen = train(model, SETTINGS, pool.images[200:300], pool.labels[200:300], jax.random.key(1), init=variables)
  moved = jax.device_get(unfrozen.state_for_seed(0).params)
  assert not _leaves_equal({k: v for k, v in moved.items() if k != 'head'}, backbone_before)
  with pytest.raises(ValueError, match='freeze must be one of'):
    TrainConfig(freeze='head')


def test_every_round_starts_from_the_pretrained_variables_not_the_last_rounds(fashion_mnist, backbone, tmp_path,
                                                                             monkeypatch):
  model, variables = backbone
  path = str(tmp_path / 'backbone.msgpack')
  pretrained.save_variables(path, variables)
  starts = []
  real_train = loop.train

  def recording_train(*args, init=None, **kwargs):
    starts.append(init)
    return real_train(*args, init=init, **kwargs)

  monkeypatch.setattr(loop, 'train', recording_train)
  splits = data.Splits(data.Dataset(fashion_mnist.pool.images[300:600], fashion_mnist.pool.labels[300:600], 10),
                       None, fashion_mnist.test.subset(np.arange(200)), fashion_mnist.mean, fashion_mnist.std)
  config = loop.LoopConfig(loop.BudgetSchedule(20, 20, 40), SETTINGS, MODEL, init=pretrained.load_variables(path))
  state = loop.run(splits, config, 'margin', loop.fixed(Architecture(1, 1)), seed=0)
  assert len(starts) == 2 and all(_leaves_equal(start, variables) for start in starts)
  assert [r['train/pretrained'] for r in state.history] == [1.0, 1.0]
  # The round-0 model before any step computes the pretrained network's logits.
  images = splits.test.images[:16]
  np.testing.assert_array_equal(model.apply(starts[0], images).logits, model.apply(variables, images).logits)
  with pytest.raises(ValueError, match='either from pretrained variables'):
    loop.LoopConfig(loop.BudgetSchedule(20, 20, 40), SETTINGS, MODEL, warm_start=True, init=variables)
