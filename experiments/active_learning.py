r"""Compares query strategies with a fixed architecture over paired seeds (Algorithm 2 of active-iNAS).

  python experiments/active_learning.py --workdir=workdir/al
  python experiments/active_learning.py --workdir=workdir/al --config.strategies=entropy,coreset

Writes to the workdir: rounds.jsonl and rounds.csv (one row per round, strategy and seed), summary.json and
summary.md (AUBC mean ± SE, paired differences and AUC-GAIN against random), learning_curve.png. A (strategy,
seed) run already complete in rounds.jsonl is not run again.
"""

import csv
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ml_collections  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

import jal  # noqa: E402
from jal import loop, metrics, plots, query  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), 'configs/active_learning.py'), lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for results.', required=True)


def _schedule(config) -> loop.BudgetSchedule:
  b = config.budget
  return loop.BudgetSchedule(b.initial, b.per_round, b.total, b.grown_per_round or None, b.grow_after or None)


def _read_rows(path):
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def summarize(rows: list[dict], strategies: list[str], seeds: list[int]) -> dict:
  """AUBC per strategy and seed, mean ± SE, paired differences and AUC-GAIN against random."""
  curves = {}
  for s in strategies:
    for seed in seeds:
      run = sorted((r for r in rows if r['strategy'] == s and r['seed'] == seed), key=lambda r: r['round'])
      if run:
        curves.setdefault(s, {})[seed] = ([r['num_labeled'] for r in run], [r['test/accuracy'] for r in run])
  summary = {}
  for s, by_seed in curves.items():
    paired_seeds = sorted(by_seed)
    aubcs = [metrics.aubc(*by_seed[seed]) for seed in paired_seeds]
    entry = {'seeds': paired_seeds, 'aubc': aubcs, 'aubc_mean_se': metrics.mean_se(aubcs),
             'final_accuracy_mean_se': metrics.mean_se([by_seed[seed][1][-1] for seed in paired_seeds])}
    passive = curves.get('random', {})
    common = [seed for seed in paired_seeds if seed in passive]
    if s != 'random' and common:
      entry['aubc_minus_random'] = metrics.paired_difference(
          [metrics.aubc(*by_seed[seed]) for seed in common], [metrics.aubc(*passive[seed]) for seed in common])
      entry['auc_gain_vs_random'] = metrics.mean_se(
          [metrics.auc_gain(by_seed[seed][0], by_seed[seed][1], passive[seed][1]) for seed in common])
    summary[s] = entry
  return {'strategies': summary, 'curves': {s: list(c.values()) for s, c in curves.items()}}


def _markdown(summary: dict, rows: list[dict]) -> str:
  lines = ['| strategy | AUBC (mean ± SE) | AUBC − random (paired) | AUC-GAIN vs random | final accuracy | seeds |',
           '|---|---|---|---|---|---|']
  for s, e in sorted(summary['strategies'].items(), key=lambda kv: -kv[1]['aubc_mean_se'][0]):
    diff = e.get('aubc_minus_random')
    gain = e.get('auc_gain_vs_random')
    lines.append(
        f"| {s} | {e['aubc_mean_se'][0]:.4f} ± {e['aubc_mean_se'][1]:.4f} | "
        + (f'{diff[0]:+.4f} ± {diff[1]:.4f}' if diff else '—') + ' | '
        + (f'{gain[0]:+.3f} ± {gain[1]:.3f}' if gain else '—') + ' | '
        + f"{e['final_accuracy_mean_se'][0]:.4f} ± {e['final_accuracy_mean_se'][1]:.4f} | {len(e['seeds'])} |")
  seconds = {}
  for r in rows:
    seconds.setdefault(r['strategy'], [0.0, 0.0, 0.0])
    for i, k in enumerate(('time/train', 'time/score', 'time/select')):
      seconds[r['strategy']][i] += r[k]
  lines += ['', '| strategy | train s | score s | select s |', '|---|---|---|---|']
  lines += [f'| {s} | {t[0]:.1f} | {t[1]:.1f} | {t[2]:.1f} |' for s, t in sorted(seconds.items())]
  return '\n'.join(lines) + '\n'


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs every (strategy, seed) not yet complete, then writes the tables and the figure."""
  strategies = [s.strip() for s in config.strategies.split(',') if s.strip()]
  seeds = [int(s) for s in str(config.seeds).split(',') if s.strip()]
  for s in strategies:
    query.get_query(s)  # Fail on a typo before any training.
  schedule = _schedule(config)
  splits = jal.load_splits(config.data.name, config.data.data_dir or None, 0, config.data.pool_size or None,
                           config.data.test_size or None, config.data.split_seed)
  arch = jal.parse_architecture(config.model.arch)
  os.makedirs(workdir, exist_ok=True)
  rows_path = os.path.join(workdir, 'rounds.jsonl')
  rows = _read_rows(rows_path)
  num_rounds = len(schedule.label_counts())
  for strategy in strategies:
    needs_mc = 'mc' in query.get_query(strategy).needs
    loop_config = loop.LoopConfig(
        schedule, jal.TrainConfig.from_dict(config.train.to_dict()), config.model.width,
        config.model.mc_dropout_rate if needs_mc else config.model.dropout_rate, config.model.mc_passes,
        config.model.conv_bias, config.model.conv_impl)
    for seed in seeds:
      done = [r for r in rows if r['strategy'] == strategy and r['seed'] == seed]
      if len(done) == num_rounds:
        logging.info('%s seed %d: already complete in %s, skipped.', strategy, seed, rows_path)
        continue
      rows = [r for r in rows if not (r['strategy'] == strategy and r['seed'] == seed)]
      start = time.perf_counter()

      def report(state, strategy=strategy, seed=seed, start=start, rows=rows):
        record = dict(state.history[-1], seed=seed)
        with open(rows_path, 'a') as f:
          f.write(json.dumps(record) + '\n')
        rows.append(record)
        logging.info('%s seed %d round %d: %d labels, test accuracy %.4f (train %.1fs, score %.1fs, select '
                     '%.2fs, %.0fs elapsed)', strategy, seed, record['round'], record['num_labeled'],
                     record['test/accuracy'], record['time/train'], record['time/score'],
                     record['time/select'], time.perf_counter() - start)

      loop.run(splits, loop_config, strategy, loop.fixed(arch), seed=seed, on_round=report)
  with open(rows_path, 'w') as f:  # Drop rows of incomplete runs that were re-run.
    f.writelines(json.dumps(r) + '\n' for r in rows)
  with open(os.path.join(workdir, 'rounds.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
    writer.writeheader()
    writer.writerows(rows)
  summary = summarize(rows, strategies, seeds)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  table = _markdown(summary, [r for r in rows if r['strategy'] in strategies])
  with open(os.path.join(workdir, 'summary.md'), 'w') as f:
    f.write(table)
  plots.learning_curves(summary['curves'], os.path.join(workdir, 'learning_curve.png'),
                        title=f'{config.data.name}, {arch} width {config.model.width}')
  summary['table'] = table
  return summary


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  summary = run(_CONFIG.value, _WORKDIR.value)
  print(summary['table'])


if __name__ == '__main__':
  app.run(main)
