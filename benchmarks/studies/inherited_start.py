"""What a short inherited schedule does to a candidate's validation error (V' only; never the test split).

  python benchmarks/studies/inherited_start.py > docs/results/inherited_start.md

At the compare_nas CPU protocol (`jal/configs/compare_nas.py`): a parent A(1,2) trains from scratch on S'
(80 of 100 random pool items) as an iNAS candidate does; then 100 new items are labelled (random), 20 of them join
V' (which keeps the parent's 20) and 80 join S'. Each child of the next round (the same A(1,2), the deeper A(2,2),
the wider A(1,3)) is scored on V' after: no step (the inherited function alone, A(1,2) only), the inherited
schedule (`inas.inherited_fraction` of the round's, compressed) at the round's learning rate and at 0.1x and
0.01x of it, and the from-scratch candidate schedule. Per seed and the mean ± SE over seeds. Why: the inherited
searches' V' errors sat far above the from-scratch searches' in the comparison grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import numpy as np

from jal import experiment, inas, inherit, metrics
from jal.configs import compare_nas
from jal.models import init_variables
from jal.models import model_fn as make_model_fn
from jal.predict import evaluate
from jal.search_space import Architecture
from jal.train import train


def _config():
  return compare_nas.get_config('')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--lr-scales', default='1,0.1,0.01')
  args = parser.parse_args()
  config = _config()
  splits = experiment.load_data(config)  # The pool only is read below.
  train_config = experiment.train_config(config.train)
  inas_config = experiment.inas_config(config.inas)
  pool = splits.pool
  model_fn = make_model_fn(pool.num_classes, experiment.model_config(config.model))
  scales = [float(s) for s in args.lr_scales.split(',')]

  def mask(indices):
    out = np.zeros(len(pool), bool)
    out[indices] = True
    return out

  def error(model, variables, indices):
    return 1.0 - float(evaluate(model, variables, pool.images[indices], pool.labels[indices])['accuracy'])

  parent_arch = Architecture(1, 2)
  children = (parent_arch, parent_arch.deeper(), parent_arch.wider())
  scratch_config, scratch_fraction = inas.candidate_schedule(train_config, inas_config)
  columns = ['no step'] + [f'inherited, lr x{s:g}' for s in scales] + ['from scratch']
  results: dict[tuple[str, str], list[float]] = {}
  for seed in range(args.seeds):
    order = np.random.default_rng(seed).permutation(len(pool))
    first, new = order[:100], order[100:200]
    validation0, train0 = first[:20], first[20:]
    validation1, train1 = np.concatenate([validation0, new[:20]]), np.concatenate([train0, new[20:]])
    held_out = (pool.images[validation1], pool.labels[validation1])
    key = jax.random.key(seed)
    parent = model_fn(parent_arch)
    kept = train(parent, scratch_config, pool.images, pool.labels, key, mask(train0),
                 validation=(pool.images[validation0], pool.labels[validation0]),
                 schedule_fraction=scratch_fraction).state_for_seed(0).variables
    results.setdefault((str(parent_arch), 'no step'), []).append(error(parent, kept, validation1))
    for arch in children:
      model = model_fn(arch)
      start = inherit.inherit(kept, parent_arch, init_variables(model, jax.random.fold_in(key, 1), pool.image_shape),
                              arch)[0]
      for scale in scales:
        config_, fraction = inas.candidate_schedule(
            dataclasses.replace(train_config, learning_rate=train_config.learning_rate * scale), inas_config,
            inherited=True)
        result = train(model, config_, pool.images, pool.labels, jax.random.fold_in(key, 2), mask(train1),
                       validation=held_out, schedule_fraction=fraction, init=start)
        results.setdefault((str(arch), f'inherited, lr x{scale:g}'), []).append(
            1.0 - float(result.best_val_accuracy()[0]))
      result = train(model, scratch_config, pool.images, pool.labels, jax.random.fold_in(key, 3), mask(train1),
                     validation=held_out, schedule_fraction=scratch_fraction)
      results.setdefault((str(arch), 'from scratch'), []).append(1.0 - float(result.best_val_accuracy()[0]))

  print(f'# Inherited candidates\' V\' error, {time.strftime("%Y-%m-%d")}: compare_nas protocol, parent '
        f'{parent_arch}, |V\'| = 40, |S\'| = 160, inherited schedule {config_.epochs} epochs of '
        f'{train_config.examples_per_epoch} examples (compressed), from scratch {scratch_config.epochs}; best V\' '
        f'error over epochs (iNAS\'s score), per seed and mean ± SE over {args.seeds} seeds\n')
  print('| candidate | ' + ' | '.join(columns) + ' |')
  print('|---|' + '---|' * len(columns))
  for arch in children:
    cells = []
    for column in columns:
      values = results.get((str(arch), column))
      if values is None:
        cells.append('—')
        continue
      mean, se = metrics.mean_se(values)
      cells.append(f'{mean:.3f} ± {se:.3f} ({", ".join(f"{v:.3f}" for v in values)})')
    print(f'| {arch} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
  main()
