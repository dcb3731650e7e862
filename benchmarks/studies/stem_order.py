r"""Would the stem train faster on the CPU with its ReLU after the max-pool instead of before it?

  python benchmarks/studies/stem_order.py > docs/results/stem_order.md

The stem (conv3x3 - BatchNorm - ReLU - max-pool 3x3/2, `jal.models.ResNet`) runs at full resolution and is most of
the smallest rows' step (`train_throughput.py`'s profile line: BatchNorm and pooling). A max commutes with ReLU,
so relu(pool(x)) is the same function as pool(relu(x)), bit for bit, values and gradients, with ReLU on a quarter
of the elements. This times one jitted forward + backward of the stem alone (jal's conv and pool formulations, a
training-mode BatchNorm, batch 128, 28x28x1, width 64) in both orders, under XLA's default CPU fusions and under
`cpu_fusions='ynnpack'`'s training options, and checks that both orders give the same bits.
"""

import argparse
import os
import time
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jal import cpu_fusions, layers


class Stem(nn.Module):
  """jal's stem, with the ReLU before the pool ('relu, pool': the model's order) or after it ('pool, relu')."""

  order: str
  width: int

  @nn.compact
  def __call__(self, x):
    x = layers.Conv(self.width, 3, 1, name='conv')(x)
    x = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5, name='bn')(x)
    x = layers.max_pool(nn.relu(x), 3, 2) if self.order == 'relu, pool' else nn.relu(layers.max_pool(x, 3, 2))
    return jnp.mean(jnp.square(x))


def _time(order, width, batch, options, steps):
  """(loss and gradients, seconds per forward + backward) of one order."""
  model = Stem(order, width)
  images = jax.random.normal(jax.random.key(0), (batch, 28, 28, 1))
  variables = model.init(jax.random.key(1), images)

  def loss(params):
    out, _ = model.apply({**variables, 'params': params}, images, mutable=['batch_stats'])
    return out

  step = jax.jit(jax.value_and_grad(loss), compiler_options=options)
  result = jax.block_until_ready(step(variables['params']))
  start = time.perf_counter()
  for _ in range(steps):
    jax.block_until_ready(step(variables['params']))
  return result, (time.perf_counter() - start) / steps


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--width', type=int, default=64)
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--steps', type=int, default=20)
  args = parser.parse_args()
  print(f'# The stem\'s ReLU before or after its pool, {time.strftime("%Y-%m-%d")}: JAX {jax.__version__} '
        f'({jax.default_backend()}), {os.cpu_count()} CPUs, batch {args.batch}, 28x28x1, width {args.width}; '
        f'ms per forward + backward, the mean of {args.steps} calls after compiling')
  print()
  print('| fusions | relu, pool (jal) ms | pool, relu ms | pool, relu / relu, pool | same bits |')
  print('|---|---|---|---|---|')
  for fusions in ('default', 'ynnpack'):
    options = cpu_fusions.compiler_options(types.SimpleNamespace(cpu_fusions=fusions), 'train')
    ours, ours_s = _time('relu, pool', args.width, args.batch, options, args.steps)
    other, other_s = _time('pool, relu', args.width, args.batch, options, args.steps)
    same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(other)))
    print(f'| {fusions} | {ours_s * 1e3:.1f} | {other_s * 1e3:.1f} | {other_s / ours_s:.2f} | {same} |', flush=True)


if __name__ == '__main__':
  main()
