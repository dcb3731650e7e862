r"""What one active-iNAS round costs, from scratch and with inherited candidates, against training alone.

  python benchmarks/studies/inas_round_cost.py [--labels=200] [--fractions=0.0625,0.125]

The CPU protocol of `experiments/configs/compare_nas.py` on Fashion-MNIST's 10,000-image pool: the previous
round's model A(1,2) trained on |L| - 100 labels, then one iNAS round at |L| labels from A(1,2) (candidates
A(1,2), A(2,2), A(1,3) on the compressed half schedule from scratch, or inherited from the previous model for a
fraction of the round's schedule), then the round model of the chosen architecture (640 SGD steps). Every
variant runs twice and the second run is reported, so compilation is left out (it is reported by the loop's
rows as time/compile). Prints, per variant: candidate SGD steps and seconds, the round model's seconds, and the
round over training alone. The test split is never read.
"""

import argparse
import dataclasses
import os
import platform
import time

import jax
import numpy as np

from jal import experiment, inas, loop, models
from jal.search_space import Architecture
from jal.train import train


def _round(inputs, config, rng, train_config, model_fn, pool, labels):
  """(candidate steps, candidate seconds, chosen arch, round-model seconds) of one round, the second of two runs."""
  for _ in range(2):
    start = time.perf_counter()
    arch, record = inas.inas_policy(config)(inputs, rng)
    search_seconds = time.perf_counter() - start
    start = time.perf_counter()
    train(model_fn(arch), train_config, pool.images, np.maximum(labels, 0), rng, inputs.labeled_mask)
    train_seconds = time.perf_counter() - start
  return record['nas/candidate_steps'], search_seconds, arch, train_seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--labels', type=int, default=200)
  parser.add_argument('--fractions', default='0.0625,0.125')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()

  config = experiment.base_config()
  splits = experiment.load_data(config)
  pool = splits.pool
  train_config = experiment.train_config(config.train)
  model_fn = models.model_fn(pool.num_classes, experiment.model_config(config.model))
  rng = np.random.default_rng(args.seed)
  order = rng.permutation(len(pool))
  previous_mask = np.zeros(len(pool), bool)
  previous_mask[order[:args.labels - 100]] = True
  labeled_mask = previous_mask.copy()
  labeled_mask[order[args.labels - 100:args.labels]] = True
  labels = np.where(labeled_mask, pool.labels, -1).astype(np.int32)
  key = jax.random.key(args.seed)
  previous_arch = Architecture(1, 2)
  previous = train(model_fn(previous_arch), train_config, pool.images, np.maximum(labels, 0), key, previous_mask)
  inputs = loop.PolicyInputs(pool, labeled_mask, labels, previous_arch, previous.state_for_seed(0), previous_mask,
                             1, train_config, model_fn)
  search = experiment.inas_config(config.inas)
  search = dataclasses.replace(search, schedule='compressed', candidate_fraction=0.5)

  print(f'# One active-iNAS round at |L| = {args.labels}, {platform.processor() or platform.machine()}, '
        f'{os.cpu_count()} cores, jax {jax.__version__} {jax.default_backend()}, '
        f'{time.strftime("%Y-%m-%d")}\n')
  print('| candidates | inherited schedule | candidate SGD steps | search s | chosen | round model s | '
        'round / training alone |')
  print('|---|---|---|---|---|---|---|')
  variants = [('from scratch', search)] + [
      (f'inherited, {float(f):g}', dataclasses.replace(search, inherit='round_model', inherited_fraction=float(f)))
      for f in args.fractions.split(',')]
  for name, variant in variants:
    steps, search_seconds, arch, train_seconds = _round(inputs, variant, key, train_config, model_fn, pool, labels)
    fraction = '—' if variant.inherit == 'none' else f'{variant.inherited_fraction:g}'
    print(f'| {name.split(",")[0]} | {fraction} | {steps} | {search_seconds:.1f} | {arch} | {train_seconds:.1f} | '
          f'{(search_seconds + train_seconds) / train_seconds:.2f}× |', flush=True)


if __name__ == '__main__':
  main()
