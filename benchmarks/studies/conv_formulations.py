r"""Each conv formulation timed per layer shape and per pass: forward, input gradient, kernel gradient.

  python benchmarks/studies/conv_formulations.py                         # the convs of A(2,4), width 64, batch 128
  python benchmarks/studies/conv_formulations.py --arch=1,2 --width=16 --batch=32
  python benchmarks/studies/conv_formulations.py --arch=2,2 --cpu-fusions=ynnpack --repeats=7   # beside PyTorch's convs

For every distinct conv shape of the model (28x28x1 inputs) it prints milliseconds per formulation ('xla',
'im2col', 'shifted_matmul') for the forward pass, the input gradient alone and the kernel gradient alone (each
compiled on its own, median of --repeats calls), the best whole forward+backward of one formulation, and the
same with `split_conv` (a custom VJP): the forward and each gradient in the formulation fastest for it, and, for
3x3 stride-1 convs, Winograd's F(2x2, 3x3) (`winograd_conv`: 16 batched products of transformed tiles instead of
36 multiplies per 2x2 output, 2.25x fewer, backward by autodiff). With PyTorch installed (`pip install
torch==2.13.0`) it adds PyTorch's forward+backward of the same conv (NCHW, its default). Everything compiles with
the training step's compile options of `--cpu-fusions` (`jal.cpu_fusions`). The last line sums the
training-direction columns over the model's convs (weighted by how often each shape occurs).
"""

import argparse
import collections
import functools
import os
import time
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jal
from jal import cpu_fusions, layers


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

_WINOGRAD_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))  # Input transform B^T.
_WINOGRAD_G = ((1, 0, 0), (.5, .5, .5), (.5, -.5, .5), (0, 0, 1))  # Kernel transform G.
_WINOGRAD_AT = ((1, 1, 1, 0), (0, 1, -1, -1))  # Output transform A^T.


def _combine(views, matrix):
  """[sum_j matrix[i][j] * views[j] for each row i], skipping zeros (the transforms' entries are 0, +-1, +-1/2)."""
  rows = []
  for coefficients in matrix:
    terms = [v if c == 1 else -v if c == -1 else c * v for c, v in zip(coefficients, views) if c != 0]
    rows.append(functools.reduce(jnp.add, terms))
  return rows


def winograd_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """'SAME' 3x3 stride-1 convolution of [N, H, W, C_in] by Winograd's F(2x2, 3x3) (Lavin & Gray, 2016): 4x4 input
  tiles at stride 2, transformed (B^T d B), 16 batched [N*tiles, C_in] x [C_in, C_out] products with the
  transformed kernel (G g G^T), and the output transform (A^T m A) back to 2x2 outputs. Equal to
  `layers._conv('xla', ...)` to float32 rounding (values and gradients within 5e-7 relative); a benchmark
  formulation, not in jal.layers."""
  n, h, w, c_in = x.shape
  c_out = kernel.shape[-1]
  tiles_h, tiles_w = -(-h // 2), -(-w // 2)
  xp = jnp.pad(x, ((0, 0), (1, 1 + 2 * tiles_h - h), (1, 1 + 2 * tiles_w - w), (0, 0)))
  rows = _combine([xp[:, i:i + 2 * tiles_h - 1:2] for i in range(4)], _WINOGRAD_BT)
  u = [t for r in rows for t in _combine([r[:, :, j:j + 2 * tiles_w - 1:2] for j in range(4)], _WINOGRAD_BT)]
  u = jnp.stack(u).reshape(16, n * tiles_h * tiles_w, c_in)
  g = jnp.asarray(_WINOGRAD_G, jnp.float32)
  v = jnp.einsum('ai,ijco,bj->abco', g, kernel, g).reshape(16, c_in, c_out)
  m = jnp.einsum('tpc,tco->tpo', u, v).reshape(4, 4, n, tiles_h, tiles_w, c_out)
  out = [_combine([r[j] for j in range(4)], _WINOGRAD_AT) for r in _combine([m[i] for i in range(4)], _WINOGRAD_AT)]
  y = jnp.stack([jnp.stack(o, axis=3) for o in out], axis=2)  # [N, tiles_h, 2, tiles_w, 2, C_out]
  return y.reshape(n, 2 * tiles_h, 2 * tiles_w, c_out)[:, :h, :w]


def torch_ms(x_shape, features, k, s, repeats):
  """PyTorch's forward + backward (input and kernel gradients) of the conv, NCHW, ms; None without PyTorch."""
  try:
    import torch
  except ImportError:
    return None
  torch.set_num_threads(os.cpu_count() or 1)
  n, h, w, c = x_shape
  x = torch.randn(n, c, h, w, requires_grad=True)
  conv = torch.nn.Conv2d(c, features, k, s, k // 2)

  def run():
    (conv(x) ** 2).sum().backward()

  return 1e3 * layers._median_seconds(run, repeats=repeats)


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


_OPTIONS = None  # The training step's compile options (--cpu-fusions).


def time_ms(fn, args, repeats):
  compiled = jax.jit(fn).lower(*args).compile(compiler_options=_OPTIONS)
  return 1e3 * layers._median_seconds(lambda: compiled(*args), repeats=repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--arch', default='2,4')
  parser.add_argument('--width', type=int, default=64)
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--cpu-fusions', default='default', choices=cpu_fusions.CPU_FUSIONS,
                      help="compile with the training step's options of this ModelConfig.cpu_fusions")
  args = parser.parse_args()
  global _OPTIONS
  _OPTIONS = cpu_fusions.compiler_options(types.SimpleNamespace(cpu_fusions=args.cpu_fusions), 'train')
  arch = tuple(int(v) for v in args.arch.split(','))
  counts = collections.Counter(conv_shapes(arch, args.width, args.batch))
  print(f'# conv formulations, {time.strftime("%Y-%m-%d")}, JAX {jax.__version__} ({jax.default_backend()}), '
        f'A({arch[0]},{arch[1]}) width {args.width} batch {args.batch}, cpu_fusions={args.cpu_fusions}; ms, '
        f'median of {args.repeats}')
  header = ['shape', 'n']
  for part in ('fwd', 'dx', 'dk'):
    header += [f'{part} {impl}' for impl in layers.FORMULATIONS]
  header += ['best fwd+bwd (one formulation)', 'split (fwd/dx/dk)', 'split fwd+bwd', 'winograd fwd+bwd',
             'PyTorch fwd+bwd']
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
    winograd = (time_ms(jax.grad(lambda x, w: jnp.sum(winograd_conv(x, w) ** 2), argnums=(0, 1)), (x, kernel),
                        args.repeats) if (k, s) == (3, 1) else None)
    torch = torch_ms(x_shape, features, k, s, args.repeats)
    totals['one'] += n * ms['both', one]
    totals['split'] += n * split
    totals['xla'] += n * ms['both', 'xla']
    totals['winograd'] += n * (winograd if winograd is not None else ms['both', one])
    totals['torch'] += n * (torch or 0.0)
    row = [f'{x_shape[1]}x{x_shape[2]}x{x_shape[3]}->{features} k{k} s{s}', str(n)]
    row += [f'{ms[part, impl]:.1f}' for part in ('fwd', 'dx', 'dk') for impl in layers.FORMULATIONS]
    row += [f"{ms['both', one]:.1f} ({one})", '/'.join(best[p] for p in ('fwd', 'dx', 'dk')), f'{split:.1f}',
            '-' if winograd is None else f'{winograd:.1f}', '-' if torch is None else f'{torch:.1f}']
    print('| ' + ' | '.join(row) + ' |', flush=True)
  print(f"\nall convs, forward+backward: XLA's conv {totals['xla']:.0f} ms, best single formulation per shape "
        f"{totals['one']:.0f} ms, split per pass {totals['split']:.0f} ms, Winograd for the 3x3 stride-1 convs (the "
        f"best single formulation for the rest) {totals['winograd']:.0f} ms"
        + (f", PyTorch {totals['torch']:.0f} ms" if totals['torch'] else ''))


if __name__ == '__main__':
  main()
