r"""Whole-model inference under other conv-formulation rules, and max-pooling by direction.

  python benchmarks/studies/inference_rules.py                              # A(1,1), A(1,2), A(2,2), A(2,4)
  python benchmarks/studies/inference_rules.py --archs=1,2 --rules=auto,xla

Per-layer timing (the `tuned` formulation) does not predict a whole compiled forward pass: this times the eval
forward of each architecture (width 64, batch 1024, 28x28x1) under each rule, a variant of
`jal.layers.choose_conv_impl` applied to every conv of the model:
  auto          jal's fixed rules
  xla           XLA's conv everywhere
  strided_xla   auto, but XLA's conv for strided convs on maps larger than 4x4
  stem_xla      auto, but XLA's conv for the one-channel stem
Then it times max-pooling (3x3, stride 2) with XLA's reduce_window and separably: forward at batch 1024 and
forward + backward at batch 128, on 28x28x64 maps.
"""

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np

import jal
from jal import layers

_AUTO = layers.choose_conv_impl


def _rule(name):
  def choose(impl, backend, height, width, in_channels, kernel_size, strides):
    base = _AUTO('auto', backend, height, width, in_channels, kernel_size, strides)
    if name == 'xla' or (name == 'strided_xla' and strides > 1 and max(height, width) > 4) or (
        name == 'stem_xla' and in_channels <= 4):
      return 'xla'
    return base
  return choose


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--archs', default='1,1;1,2;2,2;2,4')
  parser.add_argument('--rules', default='auto,xla,strided_xla,stem_xla')
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.normal(size=(1024, 28, 28, 1)), jnp.float32)
  print('| arch | ' + ' | '.join(f'{rule} img/s' for rule in args.rules.split(',')) + ' |')
  print('|---|' + '---|' * len(args.rules.split(',')))
  for arch in [tuple(int(v) for v in a.split(',')) for a in args.archs.split(';')]:
    row = [f'A({arch[0]},{arch[1]})']
    for rule in args.rules.split(','):
      if rule == 'xla' and arch[1] > 3:  # XLA's conv on 2x2 maps: minutes per call on the CPU.
        row.append('-')
        continue
      layers.choose_conv_impl = _rule(rule)
      model = jal.build_model(jal.Architecture(*arch), 10, jal.ModelConfig(width=64))
      variables = model.init(jax.random.key(0), images[:2])
      forward = jax.jit(lambda v, x, model=model: model.apply(v, x).logits).lower(variables, images).compile()
      seconds = layers._median_seconds(functools.partial(forward, variables, images), repeats=args.repeats)
      row.append(f'{1024 / seconds:.0f}')
    layers.choose_conv_impl = _AUTO
    print('| ' + ' | '.join(row) + ' |', flush=True)

  print('\n| max-pool | XLA reduce_window ms | separable ms |\n|---|---|---|')
  for batch, training in ((1024, False), (128, True)):
    x = jnp.maximum(jnp.asarray(rng.normal(size=(batch, 28, 28, 64)), jnp.float32), 0.0)
    ms = []
    for impl in ('xla', 'separable'):
      pool = lambda x, impl=impl: layers.max_pool(x, 3, 2, impl=impl)  # noqa: E731
      fn = jax.jit(jax.grad(lambda x, pool=pool: jnp.sum(pool(x) ** 2)) if training else pool).lower(x).compile()
      ms.append(1e3 * layers._median_seconds(functools.partial(fn, x), repeats=args.repeats))
    print(f"| {'forward + backward' if training else 'forward'}, batch {batch} | {ms[0]:.0f} | {ms[1]:.0f} |")


if __name__ == '__main__':
  main()
