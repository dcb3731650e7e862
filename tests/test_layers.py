"""Every convolution formulation computes the same function: values and gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jal.layers import Conv, choose_conv_impl, im2col_conv, max_pool, shifted_matmul_conv


def _xla(x, kernel, strides):
  return lax.conv_general_dilated(x, kernel, (strides, strides), 'SAME',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@pytest.mark.parametrize('formulation', [im2col_conv, shifted_matmul_conv], ids=['im2col', 'shifted'])
@pytest.mark.parametrize('size, c_in, c_out, kernel_size, strides', [
    (8, 1, 4, 3, 1), (7, 3, 5, 3, 1), (8, 4, 6, 3, 2), (7, 4, 6, 3, 2), (2, 8, 8, 3, 1), (1, 4, 4, 3, 1),
    (5, 4, 6, 1, 2), (4, 4, 4, 1, 1)])
def test_formulations_agree_with_xla(formulation, size, c_in, c_out, kernel_size, strides):
  x = jax.random.normal(jax.random.key(0), (3, size, size, c_in))
  kernel = jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, c_in, c_out))
  chex.assert_trees_all_close(formulation(x, kernel, strides), _xla(x, kernel, strides),
                              atol=1e-4, rtol=1e-4)

  def loss(f):
    return lambda x, k: jnp.sum(jnp.sin(f(x, k, strides)))

  grads = jax.grad(loss(formulation), argnums=(0, 1))(x, kernel)
  expected = jax.grad(loss(_xla), argnums=(0, 1))(x, kernel)
  chex.assert_trees_all_close(grads, expected, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize('impl', ['xla', 'im2col', 'shifted_matmul'])
def test_conv_module_impls_share_parameters(impl):
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
  reference = Conv(5, 3, 2, impl='xla')
  variables = reference.init(jax.random.key(1), x)
  chex.assert_trees_all_close(Conv(5, 3, 2, impl=impl).apply(variables, x), reference.apply(variables, x),
                              atol=1e-4)


def test_choose_conv_impl():
  assert choose_conv_impl('auto', 'gpu', 2, 2, 512, 3, 1) == 'xla'
  assert choose_conv_impl('auto', 'cpu', 28, 28, 1, 3, 1) == 'shifted_matmul'
  assert choose_conv_impl('auto', 'cpu', 2, 2, 512, 3, 1) == 'im2col'
  assert choose_conv_impl('auto', 'cpu', 14, 14, 64, 3, 2) == 'im2col'
  assert choose_conv_impl('auto', 'cpu', 14, 14, 64, 3, 1) == 'xla'
  assert choose_conv_impl('auto', 'cpu', 14, 14, 64, 1, 2) == 'im2col'
  assert choose_conv_impl('im2col', 'gpu', 14, 14, 64, 3, 1) == 'im2col'
  with pytest.raises(ValueError, match='Unknown conv_impl'):
    choose_conv_impl('winograd', 'cpu', 1, 1, 1, 3, 1)


@pytest.mark.parametrize('size, window, strides', [(8, 3, 2), (7, 3, 2), (5, 2, 1), (1, 3, 2)])
def test_max_pool_separable_equals_xla_values_and_gradients(size, window, strides):
  x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
  chex.assert_trees_all_close(max_pool(x, window, strides, 'separable'), max_pool(x, window, strides, 'xla'))

  def loss(impl):
    return lambda x: jnp.sum(jnp.sin(max_pool(x, window, strides, impl)))

  chex.assert_trees_all_close(jax.grad(loss('separable'))(x), jax.grad(loss('xla'))(x), atol=1e-6)


def test_auto_pooling_is_separable_only_where_a_gradient_is_taken_on_the_cpu():
  from jal.layers import choose_pool_impl
  assert choose_pool_impl('auto', 'cpu', training=True) == 'separable'
  assert choose_pool_impl('auto', 'cpu', training=False) == 'xla'   # Forward alone: reduce_window is faster.
  assert choose_pool_impl('auto', 'gpu', training=True) == 'xla'
  assert choose_pool_impl('separable', 'cpu', training=False) == 'separable'


def test_tuned_convs_take_the_fastest_measured_formulation_per_shape_and_direction_and_cache_it(tmp_path):
  """With an injected timer (no test depends on this machine's speed): the fastest formulation is chosen per
  shape and direction, written to the cache file, and read back by the next process without timing."""
  from jal import layers
  from jal.models import ModelConfig, build_model, init_variables
  from jal.search_space import Architecture
  speed = {'train': {'xla': 3.0, 'im2col': 1.0, 'shifted_matmul': 2.0},
           'infer': {'xla': 1.0, 'im2col': 3.0, 'shifted_matmul': 2.0}}
  phase = ['train']  # Which table the fake timer reads: training first, then inference.
  cache = str(tmp_path / 'tuning.json')
  tuner = layers.ConvTuner(cache, timer=lambda impl, run: speed[phase[0]][impl])
  layers.set_conv_tuner(tuner)
  try:
    model = build_model(Architecture(1, 1), 3, ModelConfig(width=4, conv_impl='tuned'))
    reference = build_model(Architecture(1, 1), 3, ModelConfig(width=4, conv_impl='xla'))
    variables = init_variables(reference, jax.random.key(0), (8, 8, 1))
    images = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
    assert tuner.measured == 0  # Initialising times nothing.
    trained = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats'])[0].logits)(variables,
                                                                                                    images)
    train_keys = set(tuner.choices())
    assert train_keys and all('|train|' in k for k in train_keys)
    assert {v['choice'] for v in tuner.choices().values()} == {'im2col'}
    phase[0] = 'infer'
    logits = jax.jit(lambda v, x: model.apply(v, x, train=False).logits)(variables, images)
    infer_keys = set(tuner.choices()) - train_keys
    assert infer_keys and {tuner.choices()[k]['choice'] for k in infer_keys} == {'xla'}
    np.testing.assert_allclose(logits, reference.apply(variables, images, train=False).logits, atol=1e-5)
    np.testing.assert_allclose(
        trained, reference.apply(variables, images, train=True, mutable=['batch_stats'])[0].logits, atol=1e-5)

    def no_timing(impl, run):
      raise AssertionError('a cached shape was timed again')

    again = layers.ConvTuner(cache, timer=no_timing)  # A new process: the file answers.
    layers.set_conv_tuner(again)
    jax.jit(lambda v, x: model.apply(v, x, train=False).logits)(variables, images + 1)
    assert again.measured == 0 and set(again.choices()) == train_keys | infer_keys
  finally:
    layers.set_conv_tuner(None)


def test_the_real_timer_measures_every_cpu_formulation_of_a_shape(tmp_path):
  """The measurement itself, on a tiny shape (what it chooses is not asserted: that is the machine's business)."""
  from jal import layers
  tuner = layers.ConvTuner(str(tmp_path / 'tuning.json'))
  choice = tuner.choose((2, 6, 6, 3), 4, 3, 1, training=True)
  (entry,) = tuner.choices().values()
  assert choice == entry['choice'] and set(entry['seconds']) == set(layers.FORMULATIONS)
  assert all(s > 0 for s in entry['seconds'].values())


def test_a_cached_choice_this_version_does_not_know_is_timed_again(tmp_path):
  import json

  from jal import layers
  cache = tmp_path / 'tuning.json'
  key = layers.ConvTuner.key('cpu', jax.devices()[0].device_kind, (2, 6, 6, 3), 4, 3, 1, True)
  cache.write_text(json.dumps({key: {'choice': 'split:xla/im2col/xla', 'seconds': {}}}))
  tuner = layers.ConvTuner(str(cache), timer=lambda impl, run: {'xla': 2.0, 'im2col': 1.0}.get(impl, 3.0))
  assert tuner.choose((2, 6, 6, 3), 4, 3, 1, training=True) == 'im2col' and tuner.measured == 1
