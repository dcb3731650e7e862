r"""The initial set chosen at random, by k-means or by TypiClust (`--config.initial`), compared at 100 labels.

  python experiments/cold_start_study.py --workdir=docs/results/cold_start            # runs what is missing
  python experiments/cold_start_study.py --workdir=docs/results/cold_start --seeds=0,1,2,3,4

Per method a grid under <workdir>/<method> (Fashion-MNIST, the active-learning config's CPU protocol: A(1,2) at
width 16, 640 SGD steps, the first 50 principal components of the pixels as the embedding), one round of 100
labels per seed; then <workdir>/cold_start.md: test accuracy per method and its paired difference from random.
Finished runs are kept: run it again to resume, or, once all are done, to rebuild the table from the rows alone.
"""

import argparse
import os

from jal import experiment, metrics, report
from jal.cold_start import COLD_STARTS
from jal.configs import active_learning


def config_for(method: str, seeds: tuple[int, ...]):
  """The active-learning config with the initial set by `method` and a budget of the initial set alone."""
  config = active_learning.get_config()
  config.initial = method
  config.strategies = ('margin',)  # No query is made: the budget ends at the initial set.
  config.seeds = seeds
  config.budget.initial = config.budget.total = 100
  return config


def accuracies(workdir: str) -> dict[int, float]:
  """seed -> test accuracy of the round-0 model in one method's grid."""
  path = os.path.join(workdir, 'rounds.jsonl')
  rows = report.read_rows(path) if os.path.exists(path) else []
  return {r['seed']: r['test/accuracy'] for r in rows if r['round'] == 0}


def table(root: str, methods: tuple[str, ...]) -> str:
  """Markdown: per method, the mean test accuracy at 100 labels and its paired difference from random."""
  results = {m: accuracies(os.path.join(root, m)) for m in methods}
  lines = ['| initial set | seeds | test accuracy at 100 labels | − random (paired) | t |', '|---|---|---|---|---|']
  for method in methods:
    seeds = sorted(results[method])
    row = [method, str(len(seeds)), report.format_pm(metrics.mean_se([results[method][s] for s in seeds]))]
    paired = [s for s in seeds if s in results.get('random', {})]
    if method == 'random' or len(paired) < 2:
      row += ['—', '—']
    else:
      differences = [results[method][s] - results['random'][s] for s in paired]
      mean, se = metrics.mean_se(differences)
      row += [report.format_pm((mean, se)), f'{mean / se:.2f}' if se > 0 else '—']
    lines.append('| ' + ' | '.join(row) + ' |')
  return '\n'.join(lines) + '\n'


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', default='docs/results/cold_start')
  parser.add_argument('--seeds', default='0,1,2,3,4')
  parser.add_argument('--methods', default=','.join(COLD_STARTS))
  args = parser.parse_args()
  seeds = tuple(int(s) for s in args.seeds.split(','))
  methods = tuple(args.methods.split(','))
  for method in methods:  # Each grid resumes: finished runs are not trained again.
    experiment.run(config_for(method, seeds), os.path.join(args.workdir, method))
  text = (f'# The initial set at 100 labels: {", ".join(methods)}\n\n'
          f'`python experiments/cold_start_study.py --workdir={args.workdir}`, seeds {args.seeds}; Fashion-MNIST, '
          'A(1,2) at width 16, 640 SGD steps; embedding: the first 50 principal components of the pixels. A '
          'difference is called only past the t critical value for n − 1 degrees of freedom (2.78 at 5 seeds).\n\n'
          + table(args.workdir, methods))
  with open(os.path.join(args.workdir, 'cold_start.md'), 'w', encoding='utf-8') as f:
    f.write(text)
  print(text)


if __name__ == '__main__':
  main()
