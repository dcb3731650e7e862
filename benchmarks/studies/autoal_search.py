r"""AutoAL's search, measured on the labelled set alone: how far SearchNet's weights move per learning rate and
number of cycles, and whose marks carry a signal at search time (FitNet's or the task model's).

  python benchmarks/studies/autoal_search.py --labels=300 --seed=0 > docs/results/autoal_search/seed0.md

One labelled set of Fashion-MNIST's 10,000-image pool (the CPU configs' pool), the task model A(1,2) at width 16
trained on it with the CPU protocol (640 SGD steps), the real query's size b = 100. The test split is never read.

1. Learning rate x cycles: from fresh networks, one round's `jal.autoal.search` with the seven official
   candidates; then SearchNet's weights over the unlabelled pool: each candidate's mean weight, and the mean total
   variation from the uniform start 1/K (0: not moved). Seconds of the search.
2. Marks at search time: over the simulated unlabelled half, each candidate marks q of every batch from FitNet
   (trained on the other half; jal's choice) or from the task model (trained on all of L, that half included; the
   official code's choice). The signal SearchNet learns from is how the candidates differ in FitNet's loss ℓ on
   the items they mark: reported as the std over candidates of the mean ℓ of their marks, next to the mean ℓ of
   marked and of all items.
"""

import argparse
import dataclasses
import time

import jax
import numpy as np

import jal
from jal import autoal, experiment


def _weights_summary(weights, names):
  k = weights.shape[1]
  variation = 0.5 * np.abs(weights - 1.0 / k).sum(1).mean()
  means = ', '.join(f'{n} {w:.3f}' for n, w in zip(names, weights.mean(0)))
  return variation, means


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--labels', type=int, default=300)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--lrs', default='0.005,0.05,0.5')
  parser.add_argument('--cycles', default='50,200')
  parser.add_argument('--temperature', default='calibrated', help="'calibrated', 'std' or a number.")
  parser.add_argument('--no-marks', dest='marks', action='store_false', help='Skip part 2.')
  args = parser.parse_args()

  config = experiment.base_config()
  splits = experiment.load_data(config)
  pool = splits.pool
  rng = np.random.default_rng(args.seed)
  labeled = np.zeros(len(pool), bool)
  labeled[rng.choice(len(pool), args.labels, replace=False)] = True
  model = jal.build_model(jal.Architecture(1, 2), pool.num_classes, experiment.model_config(config.model))
  result = jal.train(model, experiment.train_config(config.train), pool.images, pool.labels,
                     jax.random.key(args.seed)[None], labeled)
  task_variables = result.state_for_seed(0).variables
  budget = 100
  fraction = budget / int((~labeled).sum())
  temperature = args.temperature if args.temperature in ('calibrated', 'std') else float(args.temperature)
  base = autoal.AutoALConfig(temperature=temperature)
  print(f'# AutoAL search on {args.labels} labels (seed {args.seed}), b = {budget}, t = {fraction:.4f}, '
        f'temperature {args.temperature}\n')

  print('## SearchNet: learning rate x cycles\n')
  print('| search lr | cycles | weight change (TV from uniform) | mean weight per candidate | search s |')
  print('|---|---|---|---|---|')
  for lr in (float(x) for x in args.lrs.split(',')):
    for cycles in (int(x) for x in args.cycles.split(',')):
      settings = dataclasses.replace(base, search_lr=lr, cycles=cycles)
      networks = autoal.make_networks(settings, pool.num_classes)
      state = autoal.init_networks(networks, jax.random.key(args.seed), pool.image_shape)
      start = time.perf_counter()
      state, metrics = autoal.search(networks, state, pool.images, pool.labels, labeled, fraction,
                                     jax.random.key(args.seed + 1), budget)
      jax.block_until_ready(state)
      seconds = time.perf_counter() - start
      weights = autoal.strategy_weights(networks, state, pool.images[~labeled])
      finite = np.all(np.isfinite(weights))
      variation, means = _weights_summary(weights, base.candidates) if finite else (float('nan'), 'not finite')
      print(f'| {lr} | {cycles} | {variation:.4f} | {means} | {seconds:.1f} |')

  if not args.marks:
    return
  print('\n## Marks at search time: FitNet (jal) or the task model (official code)\n')
  networks = autoal.make_networks(base, pool.num_classes)
  state = autoal.init_networks(networks, jax.random.key(args.seed), pool.image_shape)
  state, _ = autoal.search(networks, state, pool.images, pool.labels, labeled, fraction,
                           jax.random.key(args.seed + 1), budget)  # FitNet pre-trained as in a round.
  split_rng = jax.random.split(jax.random.key(args.seed + 1), 5)[0]  # The split `search` made: FitNet never saw
  halves = np.asarray(jax.random.permutation(split_rng, np.flatnonzero(labeled)))  # this half.
  search_half = halves[len(halves) // 2:]
  size, count = base.batch_shape(len(search_half), budget, fraction)
  print(f'B = {size}, q = {count} marks per candidate per batch\n')
  print('| marks from | std over candidates of mean ℓ of marks | mean ℓ of marked items | mean ℓ of all items |')
  print('|---|---|---|---|')
  for name, marker, variables in (('FitNet', networks.fitnet, state.fit.variables),
                                  ('task model', model, task_variables)):
    per_candidate, marked_losses, all_losses = [], [], []
    for start in range(0, len(search_half) - size + 1, size):
      rows = search_half[start:start + size]
      inputs = autoal.candidate_inputs(base, marker, variables, pool.images[rows], np.ones(size, bool),
                                       np.zeros(size, bool), jax.random.key(start))
      scores = autoal.candidate_scores(inputs, base.candidates, count, jax.random.key(start + 1), base.normalise)
      marks = autoal.top_sets(scores, np.ones(size, bool), count)  # Each candidate's own top q.
      losses = np.asarray(autoal._per_sample_loss(networks, state.fit, pool.images[rows],
                                                  pool.labels[rows].astype(np.int32)))
      per_candidate.append([losses[marks[:, k] > 0].mean() for k in range(marks.shape[1])])
      marked_losses.append(losses[marks.max(1) > 0].mean())
      all_losses.append(losses.mean())
    spread = np.std(np.asarray(per_candidate), axis=1).mean()
    print(f'| {name} | {spread:.3f} | {np.mean(marked_losses):.3f} | {np.mean(all_losses):.3f} |')


if __name__ == '__main__':
  main()
