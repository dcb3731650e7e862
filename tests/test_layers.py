"""Every convolution formulation computes the same function: values and gradients."""

import chex
import jax
import jax.numpy as jnp
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
