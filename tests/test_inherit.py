"""Tests for jal.inherit: deeper children compute their parent's function exactly; other children inherit every
leaf whose place and shape exist in the parent."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jal import inherit
from jal.models import ModelConfig, build_model, init_variables
from jal.search_space import Architecture

SHAPE = (12, 12, 1)
CONFIG = ModelConfig(width=4)


def _trained_like(arch, seed):
  """Variables of `arch` with every leaf moved off its initial value (as training would), batch statistics
  included, so that a copy that misses a leaf shows."""
  model = build_model(arch, 5, CONFIG)
  rng = np.random.default_rng(100 + seed)  # On the host: jax.random per leaf compiles for seconds on the CPU.
  moved = jax.tree_util.tree_map(lambda x: np.asarray(x) + 0.1 * rng.standard_normal(x.shape, np.float32),
                                 init_variables(model, jax.random.key(seed), SHAPE))
  moved['batch_stats'] = jax.tree_util.tree_map_with_path(
      lambda path, x: np.abs(x) + 0.5 if path[-1].key == 'var' else x, moved['batch_stats'])
  return model, moved


def _apply(model, train):
  """The model's jitted forward in eval or train mode (batch statistics), returning its ModelOutput."""
  if train:
    return jax.jit(lambda v, x: model.apply(v, x, train=True, dropout=False, mutable=['batch_stats'])[0])
  return jax.jit(lambda v, x: model.apply(v, x, train=False, dropout=False))


@pytest.mark.parametrize('parent', [Architecture(1, 1), Architecture(1, 2), Architecture(2, 2)])
def test_deeper_child_computes_the_parents_logits_exactly(parent):
  parent_model, parent_vars = _trained_like(parent, seed=parent.blocks * 10 + parent.stacks)
  child_arch = parent.deeper()
  child_model = build_model(child_arch, 5, CONFIG)
  fresh = init_variables(child_model, jax.random.key(7), SHAPE)
  child_vars, report = inherit.inherit(parent_vars, parent, fresh, child_arch)
  assert report.function_preserving
  assert report.identity_blocks == tuple(sorted(f'stack{s}_block{parent.blocks}' for s in range(parent.stacks)))
  images = jax.random.normal(jax.random.key(3), (6, *SHAPE))
  for train in (False, True):  # Eval mode (running statistics) and train mode (batch statistics).
    want, got = _apply(parent_model, train)(parent_vars, images), _apply(child_model, train)(child_vars, images)
    np.testing.assert_allclose(got.logits, want.logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.embedding, want.embedding, rtol=1e-5, atol=1e-5)
  # Without the identity start the new blocks would change the function: the test can fail.
  plain = jax.tree_util.tree_map(lambda x: x, child_vars)
  for block in report.identity_blocks:
    plain['params'][block]['BatchNorm_1']['scale'] = jnp.ones_like(plain['params'][block]['BatchNorm_1']['scale'])
  moved = _apply(child_model, False)(plain, images).logits
  assert not np.allclose(moved, _apply(parent_model, False)(parent_vars, images).logits, atol=1e-3)


@pytest.mark.parametrize('parent,child', [
    (Architecture(1, 1), Architecture(1, 1).wider()),   # A(1,2): a new stack, a wider head.
    (Architecture(2, 2), Architecture(2, 2).wider()),   # A(2,3): same blocks per stack.
    (Architecture(2, 1), Architecture(2, 1).wider()),   # A(2,2).
    (Architecture(3, 2), Architecture(2, 2)),           # Shallower: a block per stack dropped.
    (Architecture(2, 3), Architecture(2, 2)),           # Narrower: the last stack dropped.
])
def test_other_children_inherit_every_leaf_whose_place_and_shape_exist(parent, child):
  _, parent_vars = _trained_like(parent, seed=1)
  fresh = init_variables(build_model(child, 5, CONFIG), jax.random.key(9), SHAPE)
  child_vars, report = inherit.inherit(parent_vars, parent, fresh, child)
  parent_flat = traverse_util.flatten_dict(parent_vars)
  fresh_flat = traverse_util.flatten_dict(fresh)
  inherited = 0
  for path, value in traverse_util.flatten_dict(child_vars).items():
    source = parent_flat.get(path)
    if source is not None and source.shape == value.shape:
      np.testing.assert_array_equal(value, source)
      inherited += 1
    elif path[1] in report.identity_blocks:
      continue
    else:
      np.testing.assert_array_equal(value, fresh_flat[path])
  assert inherited == report.inherited > 0
  assert ('params', 'stem_conv', 'kernel') in parent_flat  # The stem always survives.
  np.testing.assert_array_equal(child_vars['params']['stem_conv']['kernel'],
                                parent_vars['params']['stem_conv']['kernel'])
  assert not report.function_preserving
  if child.stacks > parent.stacks:  # The head's input width doubled: it starts fresh.
    np.testing.assert_array_equal(child_vars['params']['head']['dense']['kernel'],
                                  fresh['params']['head']['dense']['kernel'])

