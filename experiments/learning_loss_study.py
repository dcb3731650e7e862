r"""Does the loss-prediction module predict the loss? The check behind the learning_loss rows
(docs/results/learning_loss_grid), whose AUBC is far below margin's.

  python experiments/learning_loss_study.py --seeds=3 > docs/results/learning_loss_study.md

Per seed and |L| (random labels from the learning_loss grid's pool), A(1,2) at width 16 trains with the module at
the grid's protocol (640 SGD steps, λ = 1, the module's gradient detached after 60% of training). On 2,000 held-out
training images (never queried, never the test split) it reports how well each score ranks the true per-item
cross-entropy (Spearman ρ): the module's predicted loss, and the model's own margin (1 − (p1 − p2)) as a control;
on the labelled items themselves, what the module was trained on; and of the top 100 items each score would query,
the share the model gets wrong and the largest share of one true class (a query piling onto one class).
"""

import argparse

import jax
import numpy as np
from scipy import stats

from jal import experiment
from jal.models import build_model
from jal.predict import predict
from jal.search_space import Architecture
from jal.train import train


def per_item(model, variables, images, labels):
  """(true cross-entropy [N], predicted loss [N], margin uncertainty [N], correct [N])."""
  out = predict(model, variables, images, to_host=True)
  probs = np.asarray(out.probs, np.float64)
  true = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
  top2 = np.sort(probs, axis=1)[:, -2:]
  return true, np.asarray(out.predicted_loss), 1.0 - (top2[:, 1] - top2[:, 0]), probs.argmax(1) == labels


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--labels', default='100,300,600')
  parser.add_argument('--top', type=int, default=100)
  args = parser.parse_args()
  config = experiment.base_config()
  config.model.cpu_fusions = 'default'  # As the grid ran.
  config.model.loss_prediction = True
  config.data.validation_size = 2000
  splits = experiment.load_data(config)
  model = build_model(Architecture(1, 2), splits.pool.num_classes, experiment.model_config(config.model))
  settings = experiment.train_config(config.train)
  held = splits.validation
  print('| labels | seed | ρ(predicted loss, loss) held out | ρ(margin, loss) held out | ρ(predicted loss, loss) on L '
        '| top-100 wrong: predicted loss | top-100 wrong: margin | top-100 largest class: predicted loss '
        '| top-100 largest class: margin |')
  print('|---|---|---|---|---|---|---|---|---|')
  table = {}
  for n in (int(x) for x in args.labels.split(',')):
    for seed in range(args.seeds):
      mask = np.zeros(len(splits.pool), bool)
      mask[np.random.default_rng(seed).choice(len(splits.pool), n, replace=False)] = True
      result = train(model, settings, splits.pool.images, splits.pool.labels, jax.random.key(seed), mask)
      variables = result.state_for_seed(0).variables
      true, predicted, margin, correct = per_item(model, variables, held.images, held.labels)
      l_true, l_predicted, _, _ = per_item(model, variables, splits.pool.images[mask], splits.pool.labels[mask])
      row = [stats.spearmanr(predicted, true)[0], stats.spearmanr(margin, true)[0],
             stats.spearmanr(l_predicted, l_true)[0]]
      for score in (predicted, margin):
        row.append(1.0 - correct[np.argsort(-score)[:args.top]].mean())
      for score in (predicted, margin):
        row.append(np.bincount(held.labels[np.argsort(-score)[:args.top]], minlength=10).max() / args.top)
      table.setdefault(n, []).append(row)
      print(f'| {n} | {seed} | ' + ' | '.join(f'{v:.3f}' for v in row) + ' |', flush=True)
  for n, rows in table.items():
    rows = np.asarray(rows)
    se = rows.std(0, ddof=1) / np.sqrt(len(rows)) if len(rows) > 1 else np.zeros(rows.shape[1])
    print(f'| {n} | mean ± SE | ' + ' | '.join(f'{m:.3f} ± {s:.3f}' for m, s in zip(rows.mean(0), se)) + ' |')
  print(f'\nHeld-out error of a model, for scale: a random top-{args.top} is wrong at about the model\'s error rate.')


if __name__ == '__main__':
  main()
