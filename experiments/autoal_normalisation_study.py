r"""Why AutoAL's query held no k-means pick: the shape of each candidate's score, and what the integrated score takes
at equal weights under each per-round normalisation. The measurement behind `AutoALConfig.normalise='rank'`.

  python experiments/autoal_normalisation_study.py --seeds=2 > docs/results/autoal_normalisation.md

Per seed and |L| (random labels from the grids' pool), A(1,2) at width 16 trains at the grids' protocol (640 SGD
steps); the three candidates of the 3-candidate grid (entropy, k-means, BALD) score the unlabelled pool, b = 100.
Training data only: the pool's images and L's labels, never the test split. For each normalisation it reports each
candidate's skewness over the pool, the median normalised score of its own top b, and, with every item weighing the
candidates equally (SearchNet at its uniform start), the share of the integrated query (top b of
Σ_k W_k sigmoid((s_k - ϑ_k) / τ), thresholds and τ fitted as at query time) that lies in each candidate's own top b.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jal import autoal, experiment
from jal import query as query_lib
from jal.models import build_model
from jal.search_space import Architecture
from jal.train import train


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--seeds', type=int, default=2)
  parser.add_argument('--labels', default='100,300')
  parser.add_argument('--budget', type=int, default=100)
  args = parser.parse_args()
  config = experiment.base_config()
  config.model.cpu_fusions = 'default'  # As the AutoAL grids ran.
  config.data.validation_size = 2000
  splits = experiment.load_data(config)
  pool = splits.pool
  model = build_model(Architecture(1, 2), pool.num_classes, experiment.model_config(config.model))
  settings = experiment.train_config(config.train)
  candidates = autoal.THREE_CANDIDATES
  base = autoal.AutoALConfig(candidates=candidates)
  print('| labels | seed | normalisation | ' + ' | '.join(
      f'{c}: skew | {c}: top-b median' for c in candidates) + ' | ' + ' | '.join(
      f'equal weights: in {c}\'s top b' for c in candidates) + ' |')
  print('|---|---|---|' + '---|' * (3 * len(candidates)))
  shares = {}
  for n in (int(x) for x in args.labels.split(',')):
    for seed in range(args.seeds):
      labeled = np.zeros(len(pool), bool)
      labeled[np.random.default_rng(seed).choice(len(pool), n, replace=False)] = True
      result = train(model, settings, pool.images, pool.labels, jax.random.key(seed), labeled)
      variables = result.state_for_seed(0).variables
      unlabeled = ~labeled
      inputs = autoal.candidate_inputs(base, model, variables, pool.images, unlabeled, labeled,
                                       jax.random.key(1000 + seed))
      raw = jnp.stack([query_lib.score(c, inputs, args.budget, jax.random.fold_in(jax.random.key(seed), k))
                       for k, c in enumerate(candidates)], axis=1).astype(jnp.float32)
      own = autoal.top_sets(np.asarray(raw), unlabeled, args.budget)
      weights = np.full((len(pool), len(candidates)), 1.0 / len(candidates), np.float32)
      for method in autoal.NORMALISATIONS:
        scores = np.asarray(autoal.normalise(raw, jnp.asarray(unlabeled), method))
        integrated = autoal.integrated_scores(weights, scores, unlabeled, args.budget, jax.random.key(seed), base)
        picks = np.asarray(query_lib.top_scores(jnp.asarray(integrated), jnp.asarray(unlabeled), args.budget))
        share = own[picks].mean(0)
        shares.setdefault((n, method), []).append(share)
        cells = [f'{stats.skew(scores[unlabeled, k]):+.2f} | {np.median(scores[own[:, k], k]):.2f}'
                 for k in range(len(candidates))]
        print(f'| {n} | {seed} | {method} | ' + ' | '.join(cells) + ' | '
              + ' | '.join(f'{v:.2f}' for v in share) + ' |', flush=True)
  print('\nMean share of the equal-weight query in each candidate\'s own top b (shares may sum above 1: the '
        'candidates\' top sets overlap):\n')
  print('| labels | normalisation | ' + ' | '.join(candidates) + ' |')
  print('|---|---|' + '---|' * len(candidates))
  for (n, method), rows in shares.items():
    print(f'| {n} | {method} | ' + ' | '.join(f'{v:.2f}' for v in np.mean(rows, 0)) + ' |')


if __name__ == '__main__':
  main()
