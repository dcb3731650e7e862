r"""How many XLA compilations an active-learning run costs, and which functions: active-iNAS against a fixed
architecture on a tiny problem (8x8 images, width 4), where compiling is nearly all of the time.

  python benchmarks/studies/compile_count.py [--rounds=5]

Counts JAX's backend-compile events (jax.monitoring) and, from `jax_log_compiles`, seconds per jitted function.
Compilations should grow with the architectures a run sees, not with its rounds (tests/test_nas.py checks that
a round whose architecture was a round model before compiles nothing).
"""

import argparse
import collections
import logging
import re
import time

import jax
import numpy as np

from jal import data, inas, loop
from jal.models import ModelConfig
from jal.search_space import SearchSpace
from jal.train import TrainConfig


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--rounds', type=int, default=5)
  args = parser.parse_args()
  seconds, counts = collections.Counter(), collections.Counter()

  class Compiles(logging.Handler):
    def emit(self, record):
      found = re.match(r'Finished XLA compilation of (\S+) in ([0-9.]+) sec', record.getMessage())
      if found:
        seconds[found.group(1)] += float(found.group(2))
        counts[found.group(1)] += 1

  logging.getLogger('jax').addHandler(Compiles())
  logging.getLogger('jax').setLevel(logging.WARNING)
  jax.config.update('jax_log_compiles', True)
  rng = np.random.default_rng(0)
  images = rng.normal(size=(120, 8, 8, 1)).astype(np.float32)
  labels = (images[:, 2:6, 2:6, 0].mean(axis=(1, 2)) > 0).astype(np.int32)
  splits = data.make_splits(data.from_arrays(images[:90], labels[:90]), data.from_arrays(images[90:], labels[90:]))
  config = loop.LoopConfig(loop.BudgetSchedule(20, 10, 20 + 10 * (args.rounds - 1)),
                           TrainConfig(epochs=4, examples_per_epoch=32, batch_size=16), ModelConfig(width=4))
  for name, policy in (('active-iNAS (3 x 3 space)', inas.inas_policy(inas.INASConfig(space=SearchSpace(3, 3)))),
                       ('fixed A(1,1)', loop.fixed(SearchSpace().root))):
    seconds.clear()
    counts.clear()
    start = time.perf_counter()
    state = loop.run(splits, config, 'entropy', policy, seed=0)
    archs = sorted({k.split('/')[-1] for r in state.history for k in r if k.startswith('nas/step0/')}
                   | {r['arch'] for r in state.history})
    print(f'\n## {name}: {time.perf_counter() - start:.1f} s, {len(archs)} architectures seen '
          f'({", ".join(archs)})\n')
    print('| round | architecture | compile events | compile s |\n|---|---|---|---|')
    for r in state.history:
      seconds_compiling = r.get('time/compile', float('nan'))
      print(f"| {r['round']} | {r['arch']} | {r.get('compile/events', '—')} | {seconds_compiling:.1f} |")
    print(f'\n{sum(counts.values())} compilations, {sum(seconds.values()):.1f} s; the costliest:\n')
    print('| function | compilations | seconds |\n|---|---|---|')
    for function, total in seconds.most_common(6):
      print(f'| {function} | {counts[function]} | {total:.1f} |')


if __name__ == '__main__':
  main()
