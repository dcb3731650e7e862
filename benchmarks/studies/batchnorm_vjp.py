r"""Would a BatchNorm with a hand-written backward pass train the A(i, j) family faster on the CPU?

  python -m benchmarks.studies.batchnorm_vjp > docs/results/batchnorm_vjp.md
  python -m benchmarks.studies.batchnorm_vjp --archs=1,1 --steps=5      # quicker

BatchNorm is 17% of the worst training row's step (`train_throughput.py`'s profile line). Flax's BatchNorm leaves its
backward pass to autodiff: the mean, the variance (E[x^2] - E[x]^2) and the normalisation each differentiate into
their own reductions and elementwise passes. The closed form needs two reductions over the batch, sum(dy) and
sum(dy * x_hat), and one elementwise pass: dx = scale / sigma * (dy - mean(dy) - x_hat * mean(dy * x_hat)), which
XLA fuses with the ReLU's mask that feeds it. Each row runs the same jitted SGD step (no augmentation) as
`train_throughput.py`, Flax's BatchNorm and the custom VJP in turn in one process, and reports img/s, the ratio,
and how far the custom gradient is from autodiff's (relative, over all parameters, one step's gradient from the
same state).
"""

import argparse
import functools
import importlib
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _bn_train(x, scale, bias, eps):
  """Training-mode BatchNorm over [N, H, W, C] with batch statistics: (y, mean, var)."""
  return _bn_forward(x, scale, bias, eps)[0]


def _bn_forward(x, scale, bias, eps):
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axes)
  var = jnp.maximum(jnp.mean(jnp.square(x), axes) - jnp.square(mean), 0.0)  # Flax's fast variance.
  inv = jax.lax.rsqrt(var + eps)
  x_hat = (x - mean) * inv
  y = x_hat * scale + bias
  return (y, mean, var), (x_hat, inv, scale)


def _bn_backward(eps, residuals, cotangents):
  del eps
  x_hat, inv, scale = residuals
  dy = cotangents[0]  # The statistics' own cotangents are zero: they only feed the running averages.
  axes = tuple(range(dy.ndim - 1))
  dbias = jnp.sum(dy, axes)
  dscale = jnp.sum(dy * x_hat, axes)
  n = dy.size // dy.shape[-1]
  dx = (scale * inv) * (dy - dbias / n - x_hat * (dscale / n))
  return dx, dscale, dbias


_bn_train.defvjp(_bn_forward, _bn_backward)


class BatchNorm(nn.Module):
  """nn.BatchNorm's parameters and statistics (same class name: same variable names), the closed-form backward."""

  use_running_average: bool = False
  momentum: float = 0.9
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x):
    features = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (features,))
    bias = self.param('bias', nn.initializers.zeros, (features,))
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros((features,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones((features,), jnp.float32))
    if self.use_running_average:
      return (x - ra_mean.value) * jax.lax.rsqrt(ra_var.value + self.epsilon) * scale + bias
    y, mean, var = _bn_train(x, scale, bias, self.epsilon)
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * jax.lax.stop_gradient(mean)
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * jax.lax.stop_gradient(var)
    return y


def _time_step(arch, width, batch, steps, custom):
  from benchmarks import train_throughput as tt  # Run as a module from the repository root.
  flax_bn = nn.BatchNorm
  if custom:
    nn.BatchNorm = BatchNorm  # `jal.models` builds its norm from `nn.BatchNorm` at call time; same names.
  try:
    model, state, step, images, labels, _ = tt._train_setup(arch, width, batch, 'auto')
    compiled = jax.jit(step).lower(state, images, labels, jax.random.key(1)).compile()
    train_lib = importlib.import_module('jal.train')
    grads = jax.jit(jax.grad(lambda p: train_lib.cross_entropy(model.apply(
        {**state.variables, 'params': p}, images, train=True, mutable=['batch_stats'])[0].logits, labels)))(
            state.params)
    return tt.time_steps(compiled, state, images, labels, steps)[0], grads
  finally:
    nn.BatchNorm = flax_bn


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--archs', default='1,1;1,2;2,2')
  parser.add_argument('--width', type=int, default=64)
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--steps', type=int, default=20)
  args = parser.parse_args()
  from benchmarks import train_throughput as tt
  print(f'# BatchNorm backward: autodiff (Flax) against the closed form, {time.strftime("%Y-%m-%d")}, '
        f'{tt._cpu_model()}, {os.cpu_count()} CPUs, JAX {jax.__version__}, width {args.width}, batch {args.batch}, '
        "conv 'auto'; img/s")
  print()
  print('| arch | Flax BatchNorm | custom VJP | custom / Flax | gradient difference (relative) |')
  print('|---|---|---|---|---|')
  for arch in [tuple(int(v) for v in a.split(',')) for a in args.archs.split(';')]:
    flax_ips, flax_grads = _time_step(arch, args.width, args.batch, args.steps, custom=False)
    custom_ips, custom_grads = _time_step(arch, args.width, args.batch, args.steps, custom=True)
    a = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(flax_grads)])
    b = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(custom_grads)])
    print(f'| A({arch[0]},{arch[1]}) | {flax_ips:.0f} | {custom_ips:.0f} | {custom_ips / flax_ips:.2f} | '
          f'{np.linalg.norm(a - b) / np.linalg.norm(a):.1e} |', flush=True)


if __name__ == '__main__':
  main()
