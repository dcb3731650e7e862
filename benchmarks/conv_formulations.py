r"""Each conv formulation timed per layer shape and per pass: forward, input gradient, kernel gradient.

  python benchmarks/conv_formulations.py                         # the convs of A(2,4), width 64, batch 128
  python benchmarks/conv_formulations.py --arch=1,2 --width=16 --batch=32

For every distinct conv shape of the model (28x28x1 inputs) it prints milliseconds per formulation ('xla',
'im2col', 'shifted_matmul') for the forward pass, the input gradient alone and the kernel gradient alone (each
compiled on its own, median of --repeats calls), the best whole forward+backward of one formulation, and the
same with `split_conv` (a custom VJP): the forward and each gradient in the formulation fastest for it. The last line
sums the training-direction columns over the model's convs (weighted by how often each shape occurs).
"""

import argparse
import collections
import functools
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jal
from jal import layers


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def split_conv(x: jax.Array, kernel: jax.Array, strides: int, forward: str, input_grad: str,
               kernel_grad: str) -> jax.Array:
  """The convolution in formulation `forward`, whose gradients with respect to `x` and to `kernel` each come from
  the transpose of their own formulation: issue 15's custom-VJP lever. Measured slower in total than the best
  single formulation per shape (README, Performance), so it lives in this benchmark, not in jal.layers."""
  return layers._conv(forward, x, kernel, strides)


def _split_conv_fwd(x, kernel, strides, forward, input_grad, kernel_grad):
  return layers._conv(forward, x, kernel, strides), (x, kernel)


def _split_conv_bwd(strides, forward, input_grad, kernel_grad, residuals, g):
  x, kernel = residuals
  dx = jax.vjp(lambda x: layers._conv(input_grad, x, kernel, strides), x)[1](g)[0]
  dk = jax.vjp(lambda k: layers._conv(kernel_grad, x, k, strides), kernel)[1](g)[0]
  return dx, dk


split_conv.defvjp(_split_conv_fwd, _split_conv_bwd)


def conv_shapes(arch, width, batch):
  """[(x_shape, features, kernel_size, strides)] of every conv of the model, in call order."""
  model = jal.build_model(jal.Architecture(*arch), 10, jal.ModelConfig(width=width, conv_impl='xla'))
  shapes = []

  def record(next_fun, args, kwargs, context):
    if context.method_name == '__call__' and isinstance(context.module, layers.Conv):
      m = context.module
      shapes.append((tuple(args[0].shape), m.features, m.kernel_size, m.strides))
    return next_fun(*args, **kwargs)

  images = jax.ShapeDtypeStruct((batch, 28, 28, 1), jnp.float32)
  with nn.intercept_methods(record):
    jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x, train=True), images)
  return shapes


def time_ms(fn, args, repeats):
  compiled = jax.jit(fn).lower(*args).compile()
  return 1e3 * layers._median_seconds(lambda: compiled(*args), repeats=repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--arch', default='2,4')
  parser.add_argument('--width', type=int, default=64)
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--repeats', type=int, default=10)
  args = parser.parse_args()
  arch = tuple(int(v) for v in args.arch.split(','))
  counts = collections.Counter(conv_shapes(arch, args.width, args.batch))
  print(f'# conv formulations, {time.strftime("%Y-%m-%d")}, JAX {jax.__version__} ({jax.default_backend()}), '
        f'A({arch[0]},{arch[1]}) width {args.width} batch {args.batch}; ms, median of {args.repeats}')
  header = ['shape', 'n']
  for part in ('fwd', 'dx', 'dk'):
    header += [f'{part} {impl}' for impl in layers.FORMULATIONS]
  header += ['best fwd+bwd (one formulation)', 'split (fwd/dx/dk)', 'split fwd+bwd']
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  rng = np.random.default_rng(0)
  totals = collections.Counter()
  for (x_shape, features, k, s), n in counts.items():
    x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((k, k, x_shape[-1], features)) * 0.1, jnp.float32)
    g = jnp.asarray(rng.standard_normal(layers._conv('xla', x, kernel, s).shape), jnp.float32)
    ms = {}
    for impl in layers.FORMULATIONS:
      conv = functools.partial(layers._conv, impl, strides=s)
      ms['fwd', impl] = time_ms(conv, (x, kernel), args.repeats)
      ms['dx', impl] = time_ms(lambda x, w, g, conv=conv: jax.vjp(lambda x: conv(x, w), x)[1](g)[0],
                               (x, kernel, g), args.repeats)
      ms['dk', impl] = time_ms(lambda x, w, g, conv=conv: jax.vjp(lambda w: conv(x, w), w)[1](g)[0],
                               (x, kernel, g), args.repeats)
      ms['both', impl] = time_ms(jax.grad(lambda x, w, conv=conv: jnp.sum(conv(x, w) ** 2), argnums=(0, 1)),
                                 (x, kernel), args.repeats)
    best = {part: min(layers.FORMULATIONS, key=lambda i, part=part: ms[part, i]) for part in ('fwd', 'dx', 'dk')}
    passes = (s, best['fwd'], best['dx'], best['dk'])
    split = time_ms(jax.grad(lambda x, w, passes=passes: jnp.sum(split_conv(x, w, *passes) ** 2), argnums=(0, 1)),
                    (x, kernel), args.repeats)
    one = min(layers.FORMULATIONS, key=lambda i: ms['both', i])
    totals['one'] += n * ms['both', one]
    totals['split'] += n * split
    totals['xla'] += n * ms['both', 'xla']
    row = [f'{x_shape[1]}x{x_shape[2]}x{x_shape[3]}->{features} k{k} s{s}', str(n)]
    row += [f'{ms[part, impl]:.1f}' for part in ('fwd', 'dx', 'dk') for impl in layers.FORMULATIONS]
    row += [f"{ms['both', one]:.1f} ({one})", '/'.join(best[p] for p in ('fwd', 'dx', 'dk')), f'{split:.1f}']
    print('| ' + ' | '.join(row) + ' |', flush=True)
  print(f"\nall convs, forward+backward: XLA's conv {totals['xla']:.0f} ms, best single formulation per shape "
        f"{totals['one']:.0f} ms, split per pass {totals['split']:.0f} ms")


if __name__ == '__main__':
  main()
