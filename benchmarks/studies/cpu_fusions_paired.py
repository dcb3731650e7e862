r"""Does `cpu_fusions='ynnpack'` (faster on the CPU, rounds differently) move accuracy? A paired check over seeds.

  python benchmarks/studies/cpu_fusions_paired.py --workdir=docs/results/cpu_fusions_paired \
      > docs/results/cpu_fusions_paired/report.md

`jal-train`'s CPU config (A(1,2), width 16, 640 SGD steps, Fashion-MNIST) on `--labels` random labels of each data
seed, `--seeds` training seeds each, once with XLA's default CPU fusions and once with 'ynnpack'. The two runs of
a pair share the labelled set, the initialisation and the batches: they differ in rounding only, which training
then amplifies, so the pairs show how far rounding alone moves test accuracy. Each setting's run is a
`jal.experiment.run_training` record in <workdir>/<setting>/results.jsonl (an existing record is reused: rerun
to rebuild the table from the committed rows).
"""

import argparse
import json
import os

import numpy as np

from jal import experiment, metrics
from jal.configs import train as train_config

SETTINGS = ('default', 'ynnpack')


def _record(workdir: str, setting: str, data_seed: int, labels: int, seeds: int) -> dict:
  """This setting's `run_training` record for the data seed, from results.jsonl or trained now."""
  path = os.path.join(workdir, setting, 'results.jsonl')
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      for line in f:
        row = json.loads(line)
        if (row['config']['seed'], row['num_labeled'], row['num_seeds']) == (data_seed, labels, seeds):
          return row
  config = train_config.get_config()
  config.seed, config.num_seeds, config.data.num_labeled = data_seed, seeds, labels
  config.model.cpu_fusions = setting
  return experiment.run_training(config, os.path.join(workdir, setting))


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--data_seeds', default='0', help='Comma-separated data seeds (labelled sets).')
  parser.add_argument('--seeds', type=int, default=5, help='Training seeds per labelled set.')
  parser.add_argument('--labels', type=int, default=1000)
  args = parser.parse_args(argv)
  rows, a, b, seconds = [], [], [], {s: [] for s in SETTINGS}
  for data_seed in (int(s) for s in args.data_seeds.split(',')):
    records = {s: _record(args.workdir, s, data_seed, args.labels, args.seeds) for s in SETTINGS}
    for s in SETTINGS:
      seconds[s].append(records[s]['train/seconds'])
    for i, (x, y) in enumerate(zip(records['ynnpack']['test/accuracy'], records['default']['test/accuracy'])):
      rows.append(f'| {data_seed} | {i} | {y:.4f} | {x:.4f} | {x - y:+.4f} |')
      a.append(x)
      b.append(y)
  paired = metrics.paired_difference(a, b)
  verdict = ('a difference' if paired.distinguishable else 'not distinguishable') + (
      f' (|t| = {abs(paired.t):.2f} against {metrics.t_critical(paired.n - 1):.2f} at {paired.n} pairs)')
  lines = [
      "# cpu_fusions='ynnpack' against the default: test accuracy, paired\n",
      f'`jal-train`\'s CPU config, {args.labels} random labels per data seed, {args.seeds} training seeds each '
      '(same labels, initialisation and batches within a pair).\n',
      '| data seed | training seed | default | ynnpack | ynnpack − default |', '|---|---|---|---|---|', *rows, '',
      f'Mean: default {np.mean(b):.4f}, ynnpack {np.mean(a):.4f}; paired difference {paired.mean:+.4f} ± '
      f'{paired.se:.4f}: {verdict}.',
      f"Training seconds (all seeds of a run, this machine, possibly shared): default "
      f"{np.mean(seconds['default']):.0f}, ynnpack {np.mean(seconds['ynnpack']):.0f}.",
  ]
  report = '\n'.join(lines) + '\n'
  print(report)
  return report


if __name__ == '__main__':
  main()
