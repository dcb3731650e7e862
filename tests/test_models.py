"""Tests for jal.models: parameter counts (SPEC §1), outputs, the dropout slot, pluggable blocks."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from jal import models, search_space
from jal.models import ModelConfig, build_model, count_params, init_variables
from jal.search_space import Architecture, SearchSpace


def _shapes(model, image_shape):
  return jax.eval_shape(lambda: init_variables(model, jax.random.key(0), image_shape))


@pytest.mark.parametrize('conv_bias, counts', [
    (True, {(1, 1): 76_682, (2, 4): 11_178_762}), (False, {(1, 1): 76_490, (2, 4): 11_173_962})])
def test_trainable_param_counts_match_spec(conv_bias, counts):
  for (blocks, stacks), expected in counts.items():
    variables = _shapes(build_model(Architecture(blocks, stacks), 10, ModelConfig(conv_bias=conv_bias)), (32, 32, 3))
    assert count_params(variables['params']) == expected


def test_counts_with_batchnorm_statistics_match_spec():
  expected = {(1, 1): 77_066, (2, 1): 151_434, (1, 2): 309_002, (2, 2): 679_562, (1, 3): 1_231_626,
              (2, 4): 11_188_362}
  for (blocks, stacks), count in expected.items():
    variables = _shapes(build_model(Architecture(blocks, stacks), 10), (32, 32, 3))
    assert count_params(variables) == count


@pytest.mark.parametrize('in_channels, width, conv_bias', [(3, 64, True), (1, 16, False), (1, 8, True)])
def test_search_space_count_agrees_with_model_on_4x4_grid(in_channels, width, conv_bias):
  for arch in SearchSpace(4, 4).nodes():
    variables = _shapes(build_model(arch, 7, ModelConfig(width=width, conv_bias=conv_bias)), (32, 32, in_channels))
    assert count_params(variables['params']) == arch.num_params(7, in_channels, width, conv_bias), arch


def test_outputs_shapes_and_stages():
  model = build_model(Architecture(1, 3), 5, ModelConfig(width=4))
  images = jax.random.normal(jax.random.key(0), (2, 16, 16, 1))
  variables = init_variables(model, jax.random.key(1), (16, 16, 1))
  apply = jax.jit(model.apply, static_argnames='return_stages')  # Eager, each op compiles alone: 20 s.
  output = apply(variables, images)
  chex.assert_shape(output.logits, (2, 5))
  chex.assert_shape(output.embedding, (2, 16))
  assert output.stages == ()
  stages = apply(variables, images, return_stages=True).stages
  assert [s.shape for s in stages] == [(2, 8, 8, 4), (2, 8, 8, 4), (2, 4, 4, 8), (2, 2, 2, 16)]


def test_batchnorm_train_mode_updates_batch_stats():
  model = build_model(Architecture(1, 1), 3, ModelConfig(width=4))
  variables = init_variables(model, jax.random.key(0), (8, 8, 1))
  images = jax.random.normal(jax.random.key(1), (4, 8, 8, 1)) * 3 + 1
  _, updates = model.apply(variables, images, train=True, mutable=['batch_stats'])
  before = jax.tree_util.tree_leaves(variables['batch_stats'])
  after = jax.tree_util.tree_leaves(updates['batch_stats'])
  assert any(not jnp.allclose(a, b) for a, b in zip(before, after))


def test_dropout_slot_only_when_asked():
  model = build_model(Architecture(1, 1), 3, ModelConfig(width=8, dropout_rate=0.5))
  variables = init_variables(model, jax.random.key(0), (8, 8, 1))
  images = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
  eval_a = model.apply(variables, images).logits
  eval_b = model.apply(variables, images).logits
  chex.assert_trees_all_equal(eval_a, eval_b)
  mc_a = model.apply(variables, images, dropout=True, rngs={'dropout': jax.random.key(2)})
  mc_b = model.apply(variables, images, dropout=True, rngs={'dropout': jax.random.key(3)})
  assert not jnp.allclose(mc_a.logits, mc_b.logits)
  chex.assert_trees_all_close(mc_a.embedding, model.apply(variables, images).embedding)  # BN in eval mode.


def test_head_runs_alone_on_embeddings():
  model = build_model(Architecture(1, 1), 3, ModelConfig(width=8))
  variables = init_variables(model, jax.random.key(0), (8, 8, 1))
  output = model.apply(variables, jnp.ones((2, 8, 8, 1)))
  head = models.Head(3)
  logits = head.apply({'params': variables['params']['head']}, output.embedding)
  chex.assert_trees_all_close(logits, output.logits, atol=1e-6)


def test_register_block_plugs_into_model_and_search_space():

  class PlainBlock(models.BasicBlock):
    """A basic block without the residual connection."""

    @nn.compact
    def __call__(self, x):
      y = self.norm()(self.conv(self.features, 3, self.strides)(x))
      return jax.nn.relu(self.norm()(self.conv(self.features, 3, 1)(jax.nn.relu(y))))

  def count(c_in, c_out, strides, conv_bias):
    return (9 * c_in * c_out + 9 * c_out * c_out + (2 * c_out if conv_bias else 0) + 4 * c_out)

  models.register_block('plain', PlainBlock, search_space.BlockSpec(2, count))
  try:
    arch = Architecture(2, 2, block='plain')
    variables = _shapes(build_model(arch, 4, ModelConfig(width=4)), (8, 8, 1))
    assert count_params(variables['params']) == arch.num_params(4, 1, 4)
  finally:
    del models.BLOCK_MODULES['plain'], search_space.BLOCKS['plain']


def test_build_model_rejects_bad_arguments():
  with pytest.raises(ValueError, match='num_classes'):
    build_model(Architecture(1, 1), 1)
  with pytest.raises(ValueError, match='dropout_rate'):
    build_model(Architecture(1, 1), 10, ModelConfig(dropout_rate=1.0))
  with pytest.raises(ValueError, match='conv_impl'):
    build_model(Architecture(1, 1), 10, ModelConfig(conv_impl='fft'))


def test_bfloat16_mixed_precision_computes_the_backbone_in_bfloat16_and_keeps_float32_where_it_matters(
    tiny_problem):
  # (That it learns as float32 does: tests/test_train.py::test_model_learns_fashion_mnist[bfloat16].)
  import numpy as np

  from jal.train import TrainConfig, train
  images, labels = tiny_problem
  mixed = build_model(Architecture(1, 2), 2, ModelConfig(width=8, precision='bfloat16'))
  full = build_model(Architecture(1, 2), 2, ModelConfig(width=8))
  variables = init_variables(mixed, jax.random.key(0), (8, 8, 1))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))  # Parameters in float32.
  out = mixed.apply(variables, jnp.asarray(images), train=False, return_stages=True)
  assert all(stage.dtype == jnp.bfloat16 for stage in out.stages)
  assert out.logits.dtype == out.embedding.dtype == jnp.float32
  reference = full.apply(variables, jnp.asarray(images), train=False)  # The same variables, in float32.
  np.testing.assert_allclose(out.logits, reference.logits, rtol=0.1, atol=0.1)
  assert not np.array_equal(np.asarray(out.logits), np.asarray(reference.logits))
  result = train(mixed, TrainConfig(epochs=1, examples_per_epoch=32, batch_size=16), images, labels,
                 jax.random.key(1))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(result.state.params))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(result.state.opt_state)
             if jnp.issubdtype(leaf.dtype, jnp.floating))  # Momentum in float32 (the step count is an int).
  with pytest.raises(ValueError, match="Unknown precision 'float16'"):
    ModelConfig(precision='float16')
