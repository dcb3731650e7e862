r"""Max-pool 3x3/2 formulations for training on the CPU: the pool alone and whole training steps, same bits?

  python benchmarks/pool_formulations.py > docs/results/pool_formulations.md

The stem's max-pool was 17-24% of the smaller models' training step (`train_throughput.py`'s profile lines).
jal trains with 'separable' (a max over three strided column views, then over three strided row views; its
gradient is a chain of selects and strided pads). 'parity' computes the same maxima, in the same order, from even
and odd rows and columns taken by a reshape (a window 3 / stride 2 window is {2o, 2o+1, 2o+2} = even[o], odd[o],
even[o+1]), so its gradient routes ties the same way; 'xla' is `reduce_window` (select-and-scatter gradient).
Each formulation runs in the same process, alternating, under `cpu_fusions='ynnpack'`'s training options;
reported: medians of per-repeat milliseconds, and whether values and gradients equal 'separable''s bit for bit.
"""

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jal import layers

TRAIN_OPTIONS = {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_REDUCE'}


def parity_max_pool(x: jax.Array) -> jax.Array:
  """'SAME' 3x3 max-pool with stride 2 of [N, H, W, C], as `layers._max_pool(x, 3, 2, 'separable')`."""
  n, h, w, c = x.shape
  (top, bottom), (left, right) = jax.lax.padtype_to_pads((h, w), (3, 3), (2, 2), 'SAME')
  out_h, out_w = -(-h // 2), -(-w // 2)
  # Pad to 2 * (out + 1) along each axis so that a reshape splits even and odd positions.
  x = jnp.pad(x, ((0, 0), (top, 2 * (out_h + 1) - h - top), (left, 2 * (out_w + 1) - w - left), (0, 0)),
              constant_values=-jnp.inf)
  cols = x.reshape(n, 2 * (out_h + 1), out_w + 1, 2, c)
  even, odd = cols[:, :, :, 0], cols[:, :, :, 1]
  columns = jnp.maximum(jnp.maximum(even[:, :, :out_w], odd[:, :, :out_w]), even[:, :, 1:])
  rows = columns.reshape(n, out_h + 1, 2, out_w, c)
  even, odd = rows[:, :, 0], rows[:, :, 1]
  return jnp.maximum(jnp.maximum(even[:, :out_h], odd[:, :out_h]), even[:, 1:])


_ORIGINAL = layers._max_pool
POOLS = {
    'separable': lambda x: _ORIGINAL(x, 3, 2, 'separable'),
    'parity': parity_max_pool,
    'xla': lambda x: _ORIGINAL(x, 3, 2, 'xla'),
}


def _pool_step(pool):
  def loss(x, g):
    return jnp.sum(pool(x) * g)
  return jax.jit(jax.value_and_grad(loss), compiler_options=TRAIN_OPTIONS)


def _model_step(arch, width, batch, pool_name):
  """A compiled SGD step of A(arch) whose stem pools with `pool_name`, its state and batch."""
  import importlib

  import jal
  train_lib = importlib.import_module('jal.train')
  def patched(x, window, strides, impl):
    if impl == 'separable' and (window, strides) == (3, 2):
      return POOLS[pool_name](x)
    return _ORIGINAL(x, window, strides, impl)

  layers._max_pool = patched
  try:
    model = jal.build_model(jal.Architecture(*arch), 10, jal.ModelConfig(width=width, cpu_fusions='ynnpack'))
    config = jal.TrainConfig(augment=jal.AugmentConfig(flip=False, shift=0))
    tx = train_lib.make_optimizer(config, 1000)
    state = train_lib.create_train_state(model, tx, jax.random.key(0), (28, 28, 1))
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(batch, 28, 28, 1)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
    step = jax.jit(lambda s, x, y, k: train_lib.train_step(s, x, y, k, model=model, tx=tx,
                                                          augment_config=config.augment),
                   compiler_options=TRAIN_OPTIONS)
    compiled = step.lower(state, images, labels, jax.random.key(1)).compile()
  finally:
    layers._max_pool = _ORIGINAL
  return compiled, state, images, labels


def _time(fn, steps):
  jax.block_until_ready(fn())
  start = time.perf_counter()
  for _ in range(steps):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps * 1000


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--width', type=int, default=64)
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--archs', default='1,1;1,2;2,2')
  args = parser.parse_args()
  print(f'# Max-pool formulations for training, {time.strftime("%Y-%m-%d")}: JAX {jax.__version__}, '
        f'{os.cpu_count()} CPUs, batch {args.batch}, width {args.width}, YNNPACK reductions; medians of '
        f'{args.repeats} alternating repeats\n')
  rng = np.random.default_rng(0)
  x = jnp.asarray(np.maximum(rng.normal(size=(args.batch, 28, 28, args.width)), 0), jnp.float32)  # After a ReLU.
  g = jnp.asarray(rng.normal(size=(args.batch, 14, 14, args.width)), jnp.float32)
  steps = {name: _pool_step(pool) for name, pool in POOLS.items()}
  reference = steps['separable'](x, g)
  same = {name: all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(
      jax.tree_util.tree_leaves(step(x, g)), jax.tree_util.tree_leaves(reference))) for name, step in steps.items()}
  times = {name: [] for name in POOLS}
  for _ in range(args.repeats):
    for name, step in steps.items():
      times[name].append(_time(lambda step=step: step(x, g), args.steps * 3))
  print('| pool alone, forward + backward | ms | same bits as separable |')
  print('|---|---|---|')
  for name in POOLS:
    print(f'| {name} | {statistics.median(times[name]):.2f} | {same[name]} |')

  print('\n| arch | pool | train img/s | / separable | same loss and parameters as separable |')
  print('|---|---|---|---|---|')
  for arch in [tuple(int(v) for v in a.split(',')) for a in args.archs.split(';')]:
    setups = {name: _model_step(arch, args.width, args.batch, name) for name in POOLS}
    results = {}
    for name, (compiled, state, images, labels) in setups.items():
      results[name] = jax.tree_util.tree_leaves(compiled(state, images, labels, jax.random.key(1)))
    rates = {name: [] for name in POOLS}
    for _ in range(args.repeats):
      for name, (compiled, state, images, labels) in setups.items():
        ms = _time(lambda c=compiled, s=state, i=images, y=labels: c(s, i, y, jax.random.key(1)), args.steps)
        rates[name].append(args.batch / ms * 1000)
    base = statistics.median(rates['separable'])
    for name in POOLS:
      equal = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(results[name], results['separable']))
      rate = statistics.median(rates[name])
      print(f'| A{arch} | {name} | {rate:.0f} | {rate / base:.2f} | {equal} |')


if __name__ == '__main__':
  main()
