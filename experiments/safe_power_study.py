r"""How often the safe search's evidence sees a real difference between architectures, and which per-item score sees
it best: chosen on training data only (the pool and 2,000 held-out training images; never the test split).

  python experiments/safe_power_study.py --image_size=28 --seeds=3 > docs/results/safe_power_study_28x28.md

Per seed and |L| (drawn at random from the Fashion-MNIST pool): the current architecture and its neighbours are
scored out of fold on L as `jal.nas.safe_policy` scores them (3 folds, the candidate schedule), and each is also
trained on all of L with the round schedule and scored on the held-out images (the truth the search cannot see).
For each neighbour: its held-out advantage over the current one, and the out-of-fold paired t of three per-item
scores: correctness (what the safe search compares), the probability of the true class (a smooth accuracy) and
the log-loss.

  python experiments/safe_power_study.py --image_size=28 --seeds=3 --labels=300,600 --current="A(1,1),A(1,2)" \
      --settings=3:0.5,2:0.25,2:0.125 > docs/results/safe_cost_study_28x28.md

With several `--settings` (folds:candidate_fraction), each neighbour is scored out of fold under each (the held-out
truth is trained once), and the table gives the t of the safe search's score per setting, with what each setting
costs in SGD steps per candidate (as a share of a round's training): how cheap the scoring can get before its
evidence stops seeing real differences, or starts seeing false ones.
"""

import argparse
import dataclasses

import jax
import numpy as np

from jal import experiment, inas, metrics, nas
from jal.loop import PolicyInputs
from jal.models import model_fn as default_model_fn
from jal.predict import evaluate
from jal.search_space import parse_architecture
from jal.train import train


def _t(differences: np.ndarray) -> float:
  se = differences.std(ddof=1) / np.sqrt(len(differences))
  return float(differences.mean() / se) if se > 0 else 0.0


def measure(splits, config, current, num_labeled: int, seed: int,
            settings: tuple[tuple[int, float], ...] = ((3, 0.5),)) -> list[dict]:
  """One row per neighbour of `current`: held-out advantage and out-of-fold t's on a random L of `num_labeled`, per
  (folds, candidate_fraction) setting (the first setting's t's under plain keys, every setting's as 't_<k>:<f>')."""
  base_search = inas.for_input(experiment.inas_config(config.inas), splits.pool)
  train_config = experiment.train_config(config.train)
  model_fn = default_model_fn(splits.pool.num_classes, experiment.model_config(config.model))
  rng = np.random.default_rng(seed)
  labeled = np.zeros(len(splits.pool.labels), bool)
  labeled[rng.choice(len(labeled), num_labeled, replace=False)] = True
  labels = np.where(labeled, splits.pool.labels, -1).astype(np.int32)
  inputs = PolicyInputs(splits.pool, labeled, labels, current, None, None, 0, train_config, model_fn)
  key = jax.random.key(seed)
  candidates = (current,) + tuple(a for a in base_search.space.mutations(current) if a != current)
  scores, held_out = {}, {}  # scores[(folds, fraction)][arch]: OutOfFold.
  for folds, fraction in settings:
    masks = nas.fold_masks(labeled, folds, jax.random.fold_in(key, 1))
    search = dataclasses.replace(base_search, candidate_fraction=fraction)
    scores[folds, fraction] = {arch: nas.out_of_fold(arch, inputs, search, masks, jax.random.fold_in(key, 2))
                               for arch in candidates}
  for arch in candidates:
    model = model_fn(arch)
    result = train(model, train_config, splits.pool.images, np.maximum(labels, 0), jax.random.fold_in(key, 3)[None],
                   labeled)
    held_out[arch] = evaluate(model, result.state_for_seed(0).variables, splits.validation.images,
                              splits.validation.labels)['accuracy']
  rows = []
  for arch in candidates[1:]:
    row = {'labels': num_labeled, 'seed': seed, 'current': str(current), 'candidate': str(arch),
           'held_out': float(held_out[arch] - held_out[current])}
    for i, (folds, fraction) in enumerate(settings):
      mine, base = scores[folds, fraction][arch], scores[folds, fraction][current]
      ts = {'t_correct': _t(mine.correct.astype(float) - base.correct.astype(float)),
            't_probability': _t(np.exp(-mine.losses) - np.exp(-base.losses)),
            't_loss': _t(base.losses - mine.losses)}
      row[f't_{folds}:{fraction:g}'] = ts['t_probability']
      row[f'steps_{folds}:{fraction:g}'] = mine.steps / train_config.total_steps
      if i == 0:
        row.update(ts)
    rows.append(row)
  return rows


def _setting_table(rows: list[dict], settings, evidence: float = 2.0) -> list[str]:
  """Per setting: SGD steps per candidate (rounds of training), and how its moves at t > `evidence` meet the truth."""
  lines = ['| folds : candidate fraction | steps per candidate (rounds) | comparisons | held-out better: moved | '
           'held-out not better: moved (false moves) | t when held-out better (median) |', '|---|---|---|---|---|---|']
  for folds, fraction in settings:
    name = f'{folds}:{fraction:g}'
    better = [r for r in rows if r['held_out'] > 0]
    worse = [r for r in rows if r['held_out'] <= 0]
    def moved(group, name=name):
      return sum(r[f't_{name}'] > evidence for r in group)
    median = float(np.median([r[f't_{name}'] for r in better])) if better else float('nan')
    lines.append(f'| {folds} : {fraction:g} | {np.mean([r[f"steps_{name}"] for r in rows]):.2f} | {len(rows)} | '
                 f'{moved(better)} of {len(better)} | {moved(worse)} of {len(worse)} | {median:+.1f} |')
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--image_size', type=int, default=28)
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--labels', default='200,400,600')
  parser.add_argument('--current', default='A(1,1),A(1,2)')
  parser.add_argument('--settings', default='3:0.5',
                      help="','-separated folds:candidate_fraction pairs to score under (3:0.5: the grids' setting)")
  parser.add_argument('--smoke', action='store_true', help='tiny sizes, for tests')
  args = parser.parse_args()
  settings = tuple((int(k), float(f)) for k, f in (s.split(':') for s in args.settings.split(',')))
  config = experiment.base_config()
  config.data.validation_size = 2000
  config.data.image_size = 0 if args.image_size == 28 else args.image_size
  config.inas.schedule, config.inas.candidate_fraction = 'compressed', 0.5
  if args.smoke:
    config = experiment.smoke(config)
    config.data.validation_size = 60
  splits = experiment.load_data(config)
  rows = []
  for seed in range(args.seeds):
    for num_labeled in (int(n) for n in args.labels.split(',')):
      for current in args.current.replace(' ', '').split('),'):
        rows += measure(splits, config, parse_architecture(current.rstrip(')') + ')'), num_labeled, seed, settings)
  print(f'# The safe search\'s evidence against held-out truth: Fashion-MNIST at {args.image_size}x{args.image_size}, '
        f'{args.seeds} seeds, random L\n')
  print('| labels | current -> candidate | held-out advantage (paired over seeds) | t: correctness | t: p(true class) '
        '| t: log-loss |')
  print('|---|---|---|---|---|---|')
  groups = {}
  for row in rows:
    groups.setdefault((row['labels'], row['current'], row['candidate']), []).append(row)
  for (num_labeled, current, arch), group in sorted(groups.items()):
    advantage = metrics.Paired(*metrics.mean_se([r['held_out'] for r in group]), len(group))
    cells = [' / '.join(f'{r[k]:+.1f}' for r in group) for k in ('t_correct', 't_probability', 't_loss')]
    print(f'| {num_labeled} | {current} -> {arch} | {advantage.mean:+.4f} ± {advantage.se:.4f} | ' + ' | '.join(cells)
          + ' |')
  print('\n(t per seed, under the first setting; the safe search moves at t > 2.0 on its score, by default the '
        'probability of the true class.)')
  if len(settings) > 1:
    print('\nPer setting, the t of the probability of the true class:\n')
    print('\n'.join(_setting_table(rows, settings)))
  print(f'\nRows: {rows}')


if __name__ == '__main__':
  main()
