"""Reports of comparisons: result rows -> AUBC (mean ± SE), paired differences, AUC-GAIN, tables and figures.

Rows are JSON lines, one per (policy, strategy, seed, round), as `jal.experiment` writes them. `summarize`
computes AUBC, paired differences and AUC-GAIN against the passive learner (random queries, same policy and
seeds); the figures are those of active-iNAS §5 (learning curves per query function, the architecture trajectory,
AUC-GAIN) and AutoAL's strategy weights. Reports read rows; they run nothing.
"""

from __future__ import annotations

import collections
import csv
import functools
import json
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging

from jal import metrics, plots


def read_rows(path: str) -> list[dict]:
  """The rows of a JSON-lines file ([] if it does not exist).

  A last line cut short by a kill mid-write is skipped with a warning (its run's rows come back from the run's
  checkpoint); an unreadable line elsewhere is an error naming the file and the line.
  """
  if not os.path.exists(path):
    return []
  with open(path, encoding='utf-8') as f:
    lines = f.read().split('\n')
  rows = []
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError as error:
      if all(not rest.strip() for rest in lines[number:]):
        logging.warning('%s: line %d is cut short (an interrupted write); ignoring it.', path, number)
        continue
      raise ValueError(f'{path}, line {number}, is not JSON ({error.msg}). Delete that line (the run it belongs '
                       'to is rebuilt from its checkpoint) and run again.') from error
  return rows


def round_line(row: dict, elapsed: float | None = None) -> str:
  """One line per round for people: the architecture, the search's candidate errors (on V', out of fold for the
  safe search, with its decision and largest t), accuracy, the labels' least and most frequent class counts, the
  agreement with the previous round's model (and the stop, when the rule ended the session) and the phase
  times."""
  candidates = ', '.join(f"{k.split('/')[-1]} {v:.3f}" for k, v in row.items()
                         if k.startswith('nas/step') and isinstance(v, float))
  if candidates and 'nas/decision' in row:
    ts = [v for k, v in row.items() if k.startswith('nas/oof/') and k.endswith('/t')]
    candidates = (f'out-of-fold errors: {candidates}; {row["nas/decision"]}'
                  + (f' (largest t {max(ts):.2f})' if ts else ''))
  elif candidates:
    candidates = f'validation errors: {candidates}'
  return (f"{row['policy']} {row['strategy']} seed {row['seed']} round {row['round']}: {row['num_labeled']} "
          f"labels, {row['arch']} ({row['arch/params']} params), test accuracy {row['test/accuracy']:.4f}"
          + (f" | per class {min(row['labels/per_class'])}-{max(row['labels/per_class'])}"
             if row.get('labels/per_class') else '')
          + (f" | agreement {row['stop/agreement']:.3f}" if 'stop/agreement' in row else '')
          + (' (stopped: stable)' if row.get('stop/stopped') else '')
          + (f' | {candidates}' if candidates else '')
          + f" | nas {row['time/nas']:.1f}s train {row['time/train']:.1f}s"
          + (f" search {row['time/search']:.1f}s" if 'time/search' in row else '')
          + f" score {row['time/score']:.1f}s select {row['time/select']:.2f}s"
          + (f' | {elapsed:.0f}s elapsed' if elapsed is not None else ''))


def curves(rows: Sequence[dict]) -> dict[tuple[str, str], dict[int, dict[str, list]]]:
  """(policy, strategy) -> seed -> per-round lists ('num_labeled', 'test/accuracy', 'arch/params', ...)."""
  out: dict = {}
  for r in sorted(rows, key=lambda r: r['round']):
    run = out.setdefault((r['policy'], r['strategy']), {}).setdefault(r['seed'], {})
    for key in ('num_labeled', 'test/accuracy', 'arch/params', 'arch/depth', 'arch'):
      run.setdefault(key, []).append(r[key])
  return out


def baselines(baseline_policy: str | Sequence[str] | None) -> tuple[str, ...]:
  """The baseline policies of a grid: one name, a comma list ('fixed:A(1,2),fixed:A(2,4)') or a sequence."""
  if not baseline_policy:
    return ()
  if isinstance(baseline_policy, str):  # A comma list; commas inside 'A(i,j)' are not separators.
    return tuple(p.strip() for p in re.split(r',(?![^(]*\))', baseline_policy) if p.strip())
  return tuple(baseline_policy)


def summarize(rows: Sequence[dict], baseline_policy: str | Sequence[str] | None = None) -> list[dict]:
  """One entry per method: AUBC per seed and mean ± SE, final accuracy, AUC-GAIN and AUBC minus random (same
  policy, paired seeds), and 'aubc_minus': AUBC minus each baseline policy's with the same strategy (paired)."""
  by_method = curves(rows)
  entries = []
  for (policy, strategy), runs in sorted(by_method.items()):
    seeds = sorted(runs)
    aubc = {s: metrics.aubc(runs[s]['num_labeled'], runs[s]['test/accuracy']) for s in seeds}
    entry = {'policy': policy, 'strategy': strategy, 'seeds': seeds, 'aubc': [aubc[s] for s in seeds],
             'aubc_mean_se': metrics.mean_se(list(aubc.values())),
             'final_accuracy_mean_se': metrics.mean_se([runs[s]['test/accuracy'][-1] for s in seeds])}
    passive = by_method.get((policy, 'random'), {})
    common = [s for s in seeds if s in passive]
    if strategy != 'random' and common:
      entry['aubc_minus_random'] = metrics.paired_difference(
          [aubc[s] for s in common],
          [metrics.aubc(passive[s]['num_labeled'], passive[s]['test/accuracy']) for s in common])
      entry['auc_gain'] = metrics.Paired(*metrics.mean_se([  # Paired with the passive learner by construction.
          metrics.auc_gain(runs[s]['num_labeled'], runs[s]['test/accuracy'], passive[s]['test/accuracy'])
          for s in common]), len(common))
    entry['aubc_minus'] = {}
    for baseline in baselines(baseline_policy):
      base = by_method.get((baseline, strategy), {})
      common = [s for s in seeds if s in base]
      if policy != baseline and common:
        entry['aubc_minus'][baseline] = metrics.paired_difference(
            [aubc[s] for s in common],
            [metrics.aubc(base[s]['num_labeled'], base[s]['test/accuracy']) for s in common])
    entries.append(entry)
  return entries


# Under every table that marks paired differences.
DIFFERENCE_NOTE = ('\\* a paired difference whose |mean / SE| clears the two-sided 5% t critical value for n − 1 '
                   'degrees of freedom (4.30 at 3 seeds, 2.78 at 5); unmarked differences are not distinguishable.\n')


def format_pm(value, digits=4, signed=False) -> str:
  """'mean ± se' for a (mean, se) pair, with ' \\*' when it is a `metrics.Paired` that is distinguishable; '—' for
  None."""
  if value is None:
    return '—'
  sign = '+' if signed else ''
  marker = ' \\*' if isinstance(value, metrics.Paired) and value.distinguishable else ''
  return f'{value[0]:{sign}.{digits}f} ± {value[1]:.{digits}f}{marker}'


def markdown_table(entries: Sequence[dict], baseline_policy: str | Sequence[str] | None = None) -> str:
  """The AUBC table, best first: mean ± SE over seeds, paired differences ± their SE."""
  header = ['policy', 'strategy', 'seeds', 'AUBC', 'final accuracy', 'AUBC − random', 'AUC-GAIN vs random']
  header += [f'AUBC − {b}' for b in baselines(baseline_policy)]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for e in sorted(entries, key=lambda e: -e['aubc_mean_se'][0]):
    cells = [e['policy'], e['strategy'], str(len(e['seeds'])), format_pm(e['aubc_mean_se']),
             format_pm(e['final_accuracy_mean_se']), format_pm(e.get('aubc_minus_random'), signed=True),
             format_pm(e.get('auc_gain'), 3, signed=True)]
    cells += [format_pm(e['aubc_minus'].get(b), signed=True) for b in baselines(baseline_policy)]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


_PHASES = ('time/nas', 'time/train', 'time/search', 'time/score', 'time/select')


def round_seconds(row: dict) -> float:
  """The wall time of a round: architecture search, training, strategy search (AutoAL), scoring, selection."""
  return sum(row.get(k, 0.0) for k in _PHASES)


def time_table(rows: Sequence[dict]) -> str:
  """Seconds spent per method in each phase, summed over rounds and seeds."""
  totals: dict = {}
  for r in rows:
    t = totals.setdefault((r['policy'], r['strategy']), np.zeros(len(_PHASES)))
    t += [r.get(k, 0.0) for k in _PHASES]
  lines = ['| policy | strategy | nas s | train s | search s | score s | select s |',
           '|---|---|---|---|---|---|---|']
  lines += [f'| {p} | {s} | ' + ' | '.join(f'{v:.1f}' for v in t) + ' |' for (p, s), t in sorted(totals.items())]
  return '\n'.join(lines) + '\n'


def round_differences_table(rows: Sequence[dict], baseline_policy: str | Sequence[str] | None) -> str:
  """Test accuracy of each policy minus each baseline's, per query strategy and labelled-set size, on paired
  seeds (mean ± SE): where along the curve a difference in AUBC comes from ('' without baselines)."""
  by_method = curves(rows)
  sizes = sorted({n for runs in by_method.values() for run in runs.values() for n in run['num_labeled']})
  lines, chosen = [], baselines(baseline_policy)
  for j, baseline in enumerate(chosen):
    for (policy, strategy), runs in sorted(by_method.items()):
      base = by_method.get((baseline, strategy), {})
      common = [s for s in sorted(runs) if s in base]
      if policy in chosen[:j + 1] or not common:  # Each pair of baselines once.
        continue
      cells = []
      for n in sizes:
        pairs = [(run['test/accuracy'][run['num_labeled'].index(n)], other['test/accuracy'][
            other['num_labeled'].index(n)]) for run, other in ((runs[s], base[s]) for s in common)
                 if n in run['num_labeled'] and n in other['num_labeled']]
        cells.append(format_pm(metrics.paired_difference(*zip(*pairs)), 3, signed=True) if len(pairs) > 1 else '—')
      lines.append(f'| {strategy} | {policy} − {baseline} | {len(common)} | ' + ' | '.join(cells) + ' |')
  if not lines:
    return ''
  header = '| strategy | difference | seeds | ' + ' | '.join(f'{n} labels' for n in sizes) + ' |'
  return '\n'.join([header, '|' + '---|' * (3 + len(sizes))] + lines) + '\n'


def best_strategy_table(rows: Sequence[dict]) -> str:
  """Per policy with several strategies: AUBC of its best strategy (highest mean) minus each other's, paired."""
  by_method = curves(rows)
  aubc = lambda run: metrics.aubc(run['num_labeled'], run['test/accuracy'])  # noqa: E731
  lines = []
  for policy in sorted({p for p, _ in by_method}):
    strategies = {s: runs for (p, s), runs in by_method.items() if p == policy and s != 'random'}
    if len(strategies) < 2:
      continue
    best = max(strategies, key=lambda s: np.mean([aubc(r) for r in strategies[s].values()]))
    for strategy, runs in sorted(strategies.items()):
      common = [k for k in sorted(runs) if k in strategies[best]]
      if strategy != best and common:
        diff = metrics.paired_difference([aubc(strategies[best][k]) for k in common], [aubc(runs[k]) for k in common])
        lines.append(f'| {policy} | {best} − {strategy} | {len(common)} | {format_pm(diff, signed=True)} |')
  if not lines:
    return ''
  return '\n'.join(['| policy | best strategy − other | seeds | AUBC difference |', '|---|---|---|---|'] + lines) + '\n'


def architecture_table(rows: Sequence[dict]) -> str:
  """For policies whose architecture changes (iNAS): mean parameters and depth per labelled-set size, and each
  seed's last architecture (the paper's Figure 6a as numbers)."""
  by_method = curves(rows)
  lines = []
  for (policy, strategy), runs in sorted(by_method.items()):
    if len({a for run in runs.values() for a in run['arch']}) < 2:
      continue
    sizes = runs[min(runs)]['num_labeled']
    cells = []
    for i in range(len(sizes)):
      params = [run['arch/params'][i] for run in runs.values() if len(run['arch/params']) > i]
      depth = [run['arch/depth'][i] for run in runs.values() if len(run['arch/depth']) > i]
      cells.append(f'{np.mean(params) / 1e3:.0f}k / {np.mean(depth):.1f}')
    last = ', '.join(runs[k]['arch'][-1] for k in sorted(runs))
    lines.append(f'| {policy} | {strategy} | ' + ' | '.join(cells) + f' | {last} |')
  if not lines:
    return ''
  sizes = sorted({n for runs in by_method.values() for run in runs.values() for n in run['num_labeled']})
  header = '| policy | strategy | ' + ' | '.join(f'{n} labels' for n in sizes) + ' | last architecture per seed |'
  return '\n'.join([header, '|' + '---|' * (3 + len(sizes))] + lines) + '\n'


STOP_THRESHOLDS = (0.8, 0.9, 0.95, 0.99)  # Cohen's kappa of successive models that counts as stable.


def stop_rule_table(rows: Sequence[dict], thresholds: Sequence[float] = STOP_THRESHOLDS,
                    patience: Sequence[int] = (1, 2)) -> str:
  """Where the stabilising-predictions rule (`--config.stop.stabilise=K`, `--config.stop.agreement=κ`) would have
  ended each complete run: per (κ, K), the share of runs it stops, the mean labels at the stop and the test
  accuracy given up (the run's final accuracy minus the accuracy where it stopped; 0 for a run it never stops),
  mean ± SE over runs. '' when no row records the agreement."""
  runs: dict = {}
  for r in sorted(rows, key=lambda r: r['round']):
    runs.setdefault((r['policy'], r['strategy'], r['seed']), []).append(r)
  runs = {k: v for k, v in runs.items() if any('stop/agreement' in r for r in v)}
  if not runs:
    return ''
  lines = ['| κ | K rounds | runs stopped | labels at the stop | accuracy given up |', '|---|---|---|---|---|']
  for kappa in thresholds:
    for k in patience:
      stops, labels, lost = 0, [], []
      for history in runs.values():
        stop = next((i for i in range(len(history)) if i + 1 >= k and all(
            history[j].get('stop/agreement', -1.0) >= kappa for j in range(i + 1 - k, i + 1))), None)
        final = history[-1]['test/accuracy']
        if stop is None or stop == len(history) - 1:
          labels.append(history[-1]['num_labeled'])
          lost.append(0.0)
          continue
        stops += 1
        labels.append(history[stop]['num_labeled'])
        lost.append(final - history[stop]['test/accuracy'])
      lines.append(f'| {kappa:.2f} | {k} | {stops} of {len(runs)} | {np.mean(labels):.0f} | '
                   f'{format_pm(metrics.mean_se(lost))} |')
  return '\n'.join(lines) + '\n'


def class_balance_table(rows: Sequence[dict]) -> str:
  """The labels' class balance at each complete run's last round, per (policy, strategy): the least and the most
  frequent class's label count, mean ± SE over seeds. '' when no row records `labels/per_class`."""
  last: dict = {}
  for r in rows:
    key = (r['policy'], r['strategy'], r['seed'])
    if r.get('labels/per_class') and r['round'] >= last.get(key, {'round': -1})['round']:
      last[key] = r
  if not last:
    return ''
  groups: dict = {}
  for (policy, strategy, _), r in sorted(last.items()):
    groups.setdefault((policy, strategy), []).append(r)
  lines = ['| policy | strategy | seeds | labels | least frequent class | most frequent class |',
           '|---|---|---|---|---|---|']
  for (policy, strategy), group in groups.items():
    labels = sorted({r['num_labeled'] for r in group})
    least = metrics.mean_se([min(r['labels/per_class']) for r in group])
    most = metrics.mean_se([max(r['labels/per_class']) for r in group])
    lines.append(f"| {policy} | {strategy} | {len(group)} | {'/'.join(str(n) for n in labels)} | "
                 f'{least[0]:.1f} ± {least[1]:.1f} | {most[0]:.1f} ± {most[1]:.1f} |')
  return '\n'.join(lines) + '\n'


def paired_table(rows: Sequence[dict], method: str) -> str:
  """AUBC of `method` minus every other strategy's, per policy, on paired seeds (mean ± SE of differences)."""
  by_method = curves(rows)
  lines = ['| policy | vs strategy | seeds | AUBC difference |', '|---|---|---|---|']
  for (policy, strategy), runs in sorted(by_method.items()):
    mine = by_method.get((policy, method), {})
    common = [s for s in sorted(runs) if s in mine]
    if strategy == method or not common:
      continue
    aubc = lambda run: metrics.aubc(run['num_labeled'], run['test/accuracy'])  # noqa: E731
    diff = metrics.paired_difference([aubc(mine[s]) for s in common], [aubc(runs[s]) for s in common])
    lines.append(f'| {policy} | {method} − {strategy} | {len(common)} | {format_pm(diff, signed=True)} |')
  return '\n'.join(lines) + '\n'


def overhead_table(rows: Sequence[dict], method: str = 'autoal', reference: str = 'entropy') -> str:
  """Per policy: the share of `method`'s round time spent on its search and on its query (scoring plus
  selection), and its mean round time over `reference`'s (rounds that query, all seeds)."""
  lines = [f'| policy | search / round | query / round | round time: {method} / {reference} |', '|---|---|---|---|']
  for policy in sorted({r['policy'] for r in rows}):
    mine = [r for r in rows if r['policy'] == policy and r['strategy'] == method and r['query/size']]
    ref = [r for r in rows if r['policy'] == policy and r['strategy'] == reference and r['query/size']]
    if not mine:
      continue
    total = sum(map(round_seconds, mine))
    search = sum(r.get('time/search', 0.0) for r in mine) / total
    query_share = sum(r['time/score'] + r['time/select'] for r in mine) / total
    ratio = (f'{np.mean([round_seconds(r) for r in mine]) / np.mean([round_seconds(r) for r in ref]):.2f}×'
             if ref else '—')
    lines.append(f'| {policy} | {search:.1%} | {query_share:.1%} | {ratio} |')
  return '\n'.join(lines) + '\n'


def strategy_weights(rows: Sequence[dict], method: str = 'autoal') -> dict[str, list]:
  """candidate -> per seed (num_labeled, mean SearchNet weight over the unlabelled pool) at every query."""
  out: dict = {}
  for r in sorted(rows, key=lambda r: (r['seed'], r['round'])):
    if r['strategy'] != method:
      continue
    for key, value in r.items():
      if key.startswith('autoal/weight/'):
        runs = out.setdefault(key[len('autoal/weight/'):], {}).setdefault((r['policy'], r['seed']), ([], []))
        runs[0].append(r['num_labeled'])
        runs[1].append(value)
  return {name: list(runs.values()) for name, runs in out.items()}


def weight_table(rows: Sequence[dict], method: str = 'autoal') -> str:
  """Per query (labelled-set size): each candidate's mean SearchNet weight over seeds, and how far the weights
  moved since the previous query (total variation ½Σ|Δw|, mean ± SE over seeds): do they move between rounds?"""
  weights = strategy_weights(rows, method)
  if not weights:
    return ''
  names = sorted(weights)
  runs = [{n: dict(zip(*weights[n][i])) for n in names} for i in range(len(weights[names[0]]))]  # One per seed.
  sizes = sorted({size for run in runs for size in run[names[0]]})
  lines = ['| labels | ' + ' | '.join(names) + ' | change since the previous query |', '|' + '---|' * (len(names) + 2)]
  for i, size in enumerate(sizes):
    present = [run for run in runs if size in run[names[0]]]
    means = [np.mean([run[n][size] for run in present]) for n in names]
    change = '—'
    if i > 0:
      moves = [0.5 * sum(abs(run[n][size] - run[n][sizes[i - 1]]) for n in names)
               for run in present if sizes[i - 1] in run[names[0]]]
      change = format_pm(metrics.mean_se(moves), 3) if len(moves) > 1 else '—'
    lines.append(f'| {size} | ' + ' | '.join(f'{m:.3f}' for m in means) + f' | {change} |')
  return '\n'.join(lines) + '\n'


def query_share_table(rows: Sequence[dict], method: str = 'autoal') -> str:
  """Per query: the share of the picks in each candidate's own top b ('autoal/chosen_by/<k>') and outside the
  leading candidate's ('autoal/outside_leader'), mean over seeds: is the query more than one candidate's?"""
  rows = [r for r in rows if r['strategy'] == method and 'autoal/outside_leader' in r]
  if not rows:
    return ''
  prefix = 'autoal/chosen_by/'
  names = sorted({k[len(prefix):] for r in rows for k in r if k.startswith(prefix)})
  lines = ['| labels | ' + ' | '.join(f'in {n}\'s top b' for n in names) + ' | outside the leader\'s top b |',
           '|' + '---|' * (len(names) + 2)]
  for size in sorted({r['num_labeled'] for r in rows}):
    present = [r for r in rows if r['num_labeled'] == size]
    cells = [np.mean([r.get(prefix + n, np.nan) for r in present]) for n in names]
    cells.append(np.mean([r['autoal/outside_leader'] for r in present]))
    lines.append(f'| {size} | ' + ' | '.join(f'{c:.3f}' for c in cells) + ' |')
  return '\n'.join(lines) + '\n'


def config_changes(reference: dict, variant: dict, prefix: str = '', absent: dict | None = None) -> list[str]:
  """'field: reference → variant' for every leaf that differs between two config dicts ('—' where absent; a
  field absent on one side counts as `absent[field]` when given: a field added later, at its neutral value)."""
  changes, absent = [], absent or {}
  for key in sorted(set(reference) | set(variant)):
    name = f'{prefix}{key}'
    a, b = reference.get(key, absent.get(name, '—')), variant.get(key, absent.get(name, '—'))
    if isinstance(a, dict) and isinstance(b, dict):
      changes += config_changes(a, b, f'{name}.', absent)
    elif a != b:
      changes.append(f'{name}: {a} → {b}')
  return changes


def _paired_aubc(runs: dict, seeds: Sequence[int], other: dict) -> str:
  """AUBC of `runs` minus `other`'s on the seeds both hold, 'mean ± SE' ('—' with fewer than two)."""
  common = [s for s in seeds if s in other]
  if len(common) < 2:
    return '—'
  aubc = lambda run: metrics.aubc(run['num_labeled'], run['test/accuracy'])  # noqa: E731
  return format_pm(metrics.paired_difference([aubc(runs[s]) for s in common], [aubc(other[s]) for s in common]),
                   signed=True)


def _weight_summary(rows: Sequence[dict]) -> list[str]:
  """[mean over seeds and queries of the largest candidate weight, mean total-variation change between
  consecutive queries], as cells ('—' without weights)."""
  by_seed = collections.defaultdict(list)
  for r in sorted(rows, key=lambda r: r['round']):
    weights = [v for k, v in sorted(r.items()) if k.startswith('autoal/weight/')]
    if weights:
      by_seed[r['seed']].append(np.asarray(weights))
  if not by_seed:
    return ['—', '—']
  leading = [float(np.mean([w.max() for w in ws])) for ws in by_seed.values()]
  moves = [float(np.mean([0.5 * np.abs(b - a).sum() for a, b in zip(ws, ws[1:])])) for ws in by_seed.values()
           if len(ws) > 1]
  return [format_pm(metrics.mean_se(leading), 3), format_pm(metrics.mean_se(moves), 3) if moves else '—']


def ablation_table(reference: Sequence[dict], variants: dict[str, Sequence[dict]], method: str = 'autoal',
                   changes: dict[str, Sequence[str]] | None = None) -> str:
  """`method` in each variant grid against the reference grid's `method`, on paired seeds: AUBC, its difference
  from the reference, from random and from the reference's best other strategy after the fact (the oracle), final
  accuracy and the candidate weights. Each variant is `method` with one setting changed (`changes` says which);
  only complete runs count.
  """
  aubc = lambda run: metrics.aubc(run['num_labeled'], run['test/accuracy'])  # noqa: E731
  ref = curves(reference)
  policies = sorted({p for p, s in ref if s == method})
  lines = [f'| policy | {method} | settings changed | seeds | AUBC | − {method} as is | − random | − oracle-best '
           'candidate | final accuracy | leading weight | weight change per query |', '|' + '---|' * 11]
  for policy in policies:
    mine = ref[(policy, method)]
    others = {s: runs for (p, s), runs in ref.items() if p == policy and s not in (method, 'random')}
    best = max(others, key=lambda s: np.mean([aubc(r) for r in others[s].values()])) if others else None
    rows_for = {'as is': (mine, [], reference)}
    for name, rows in variants.items():
      runs = curves(rows).get((policy, method))
      if runs:
        rows_for[name] = (runs, list((changes or {}).get(name, [])), rows)
    for name, (runs, changed, source) in rows_for.items():
      complete = {s: r for s, r in runs.items() if s in mine and len(r['num_labeled']) == len(mine[s]['num_labeled'])}
      seeds = sorted(complete)
      if not seeds:
        continue
      diff = functools.partial(_paired_aubc, complete, seeds)
      cells = [policy, name, '; '.join(changed) or '—', str(len(seeds)),
               format_pm(metrics.mean_se([aubc(complete[s]) for s in seeds])),
               '—' if name == 'as is' else diff(mine), diff(ref.get((policy, 'random'), {})),
               f'{diff(others[best])} ({best})' if best else '—',
               format_pm(metrics.mean_se([complete[s]['test/accuracy'][-1] for s in seeds]))]
      cells += _weight_summary([r for r in source if r['policy'] == policy and r['strategy'] == method
                                and r['seed'] in seeds])
      lines.append('| ' + ' | '.join(cells) + ' |')
  table = '\n'.join(lines) + '\n'
  return table + ('\n' + DIFFERENCE_NOTE if '\\*' in table else '')


def paired_seeds(rows: Sequence[dict]) -> tuple[list[dict], list[tuple[str, str, int]]]:
  """The rows of the seeds every (policy, strategy) holds, and the (policy, strategy, seed) runs left out.

  Rows as they are where every method holds the same seeds, or where no seed is common to all of them.
  """
  seeds = collections.defaultdict(set)
  for r in rows:
    seeds[(r['policy'], r['strategy'])].add(r['seed'])
  common = set.intersection(*seeds.values()) if seeds else set()
  if not common or all(s == common for s in seeds.values()):
    return list(rows), []
  left_out = sorted((p, s, seed) for (p, s), held in seeds.items() for seed in held - common)
  return [r for r in rows if r['seed'] in common], left_out


def write_outputs(rows: Sequence[dict], workdir: str, title: str,
                  baseline_policy: str | Sequence[str] | None = None) -> dict:
  """rounds.csv, summary.json, summary.md and the figures; returns the summary with the markdown tables.

  With no finished round yet (a grid just started), only an empty summary is written. AUBCs and curves use the
  complete runs only (as many rounds as the longest run), and of those only the seeds every method has finished,
  so that every row is over the same paired seeds while a grid runs seed by seed; the runs left out are named
  under the table, and their rounds still count where each round stands alone (the iNAS study's tables).
  """
  all_rows = rows
  lengths = collections.Counter((r['policy'], r['strategy'], r['seed']) for r in rows)
  full = max(lengths.values(), default=0)
  rows = [r for r in rows if lengths[(r['policy'], r['strategy'], r['seed'])] == full]
  unfinished = sorted(k for k, n in lengths.items() if n < full)
  rows, unpaired = paired_seeds(rows)
  entries = summarize(rows, baseline_policy)
  if not rows:
    with open(os.path.join(workdir, 'summary.json'), 'w') as f:
      json.dump({'methods': []}, f)
    return {'methods': [], 'table': 'No finished round yet.\n', 'times': ''}
  with open(os.path.join(workdir, 'rounds.csv'), 'w', newline='') as f:  # Scalars only: curves stay in the JSONL.
    scalar_rows = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in all_rows]
    writer = csv.DictWriter(f, fieldnames=sorted({k for r in scalar_rows for k in r}))
    writer.writeheader()
    writer.writerows(scalar_rows)
  table, times = markdown_table(entries, baseline_policy), time_table(rows)
  differences = round_differences_table(rows, baseline_policy)
  if differences:
    table += '\nTest accuracy minus the baseline\'s per round (paired seeds):\n\n' + differences
  strategy_differences, architectures = best_strategy_table(rows), architecture_table(rows)
  if strategy_differences and not strategy_weights(rows):  # (AutoAL grids get their own paired table.)
    table += '\nEach policy\'s best strategy against its others (paired seeds):\n\n' + strategy_differences
  if architectures:
    table += '\nArchitectures chosen, mean parameters / depth over seeds:\n\n' + architectures
  if unfinished:
    table += ('\nUnfinished runs, left out of the table and figures: ' + ', '.join(
        f'{p} {s} seed {seed} ({lengths[(p, s, seed)]} of {full} rounds)' for p, s, seed in unfinished) + '.\n')
  if unpaired:
    table += ('\nFinished runs of seeds that other methods have not finished, left out so that every row is paired: '
              + ', '.join(f'{p} {s} seed {seed}' for p, s, seed in unpaired) + '.\n')
  study = validation_study_tables(all_rows)
  if study:  # Policy 'inas_study': how iNAS's scoring behaves.
    table += '\n' + study
  inheritance = inheritance_study_table(all_rows)
  if inheritance:  # Policy 'inheritance_study': how short an inherited schedule keeps the choice.
    table += '\nInherited candidates against the from-scratch choice:\n\n' + inheritance
  balance = class_balance_table(rows)
  if balance:
    table += '\nThe labels per class at each run\'s last round:\n\n' + balance
  stopping = stop_rule_table(rows)
  if stopping:
    table += ('\nWhere the stopping rule (agreement of successive models, Cohen\'s κ, K rounds in a row) would have '
              'ended each run:\n\n' + stopping)
  costs = search_cost_table(rows)
  if costs:
    table += '\nWhat each search spent on candidates per round (mean over rounds and seeds):\n\n' + costs
    points = compute_points(rows, entries)
    if points:  # Every search's AUBC against what it cost.
      table += '\nAUBC against compute per run:\n\n' + compute_table(points, baseline_policy)
      plots.aubc_vs_compute({k: (p['steps'], *p['aubc']) for k, p in points.items()},
                            os.path.join(workdir, 'aubc_vs_compute.png'), title=title)
  weights = strategy_weights(rows)
  if weights:  # AutoAL: its paired differences, overhead, and the weight of every candidate per round.
    table += '\n' + paired_table(rows, 'autoal')
    table += '\nAutoAL\'s mean SearchNet weight per candidate at each query:\n\n' + weight_table(rows)
    shares = query_share_table(rows)
    if shares:
      table += '\nWhose picks AutoAL\'s query holds, at each query (mean over seeds):\n\n' + shares
    times += '\n' + overhead_table(rows)
    plots.learning_curves(weights, os.path.join(workdir, 'strategy_weights.png'),
                          title='AutoAL: mean SearchNet weight per candidate', ylabel='weight')
    runs = {key for runs in weights.values() for key in range(len(runs))}
    seeds = sorted({r['seed'] for r in rows if r['strategy'] == 'autoal'})
    if len(seeds) == len(runs):  # One policy: a panel per seed, not only the seeds' mean.
      plots.learning_curve_panels(
          {f'seed {seed}': {name: [runs[i]] for name, runs in weights.items()} for i, seed in enumerate(seeds)},
          os.path.join(workdir, 'strategy_weights_per_seed.png'), title='AutoAL: SearchNet weight per candidate',
          ylabel='weight')
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump({'methods': entries}, f, indent=1)
  if '\\*' in table:
    table += '\n' + DIFFERENCE_NOTE
  with open(os.path.join(workdir, 'summary.md'), 'w') as f:
    f.write(table + '\n' + times)
  by_method = curves(rows)
  policies = sorted({p for p, _ in by_method})
  strategies = sorted({s for _, s in by_method})
  panels = {}
  for strategy in strategies:
    panels[strategy] = {
        (p if len(policies) > 1 else strategy): [(r['num_labeled'], r['test/accuracy'])
                                                 for r in by_method[(p, strategy)].values()]
        for p in policies if (p, strategy) in by_method}
  if len(policies) == 1:
    plots.learning_curves({s: v for panel in panels.values() for s, v in panel.items()},
                          os.path.join(workdir, 'learning_curve.png'), title=title)
  else:
    plots.learning_curve_panels(panels, os.path.join(workdir, 'learning_curves.png'), title=title)
  inas_runs = {s: list(by_method[('inas', s)].values()) for s in strategies if ('inas', s) in by_method}
  if inas_runs:
    plots.architecture_trajectory(inas_runs, os.path.join(workdir, 'architectures.png'))
  gains = {}
  for p in policies:
    for s in strategies:
      if s != 'random' and (p, s) in by_method and (p, 'random') in by_method:
        active, passive = by_method[(p, s)], by_method[(p, 'random')]
        gains[f'{p} {s}'] = [
            (active[seed]['num_labeled'][1:], [
                metrics.auc_gain(active[seed]['num_labeled'][:k + 1], active[seed]['test/accuracy'][:k + 1],
                                 passive[seed]['test/accuracy'][:k + 1])
                for k in range(1, len(active[seed]['num_labeled']))])
            for seed in active if seed in passive]
  if gains:
    plots.learning_curves(gains, os.path.join(workdir, 'auc_gain.png'), title='AUC-GAIN against random',
                          ylabel='AUC-GAIN up to n labels')
  return {'methods': entries, 'table': table, 'times': times}


def schedule_curves(rows: Sequence[dict], path: str) -> None:
  """Train (on L) and validation accuracy against SGD steps per round: one panel per architecture, one line per
  |L|, mean ± SE over seeds (`jal.experiment.schedule_study`)."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  archs = sorted({r['arch'] for r in rows})
  figure, axes = plt.subplots(1, len(archs), figsize=(5.5 * len(archs), 4), dpi=110, squeeze=False)
  for ax, arch in zip(axes[0], archs):
    for num_labeled in sorted({r['num_labeled'] for r in rows if r['arch'] == arch}):
      mine = [r for r in rows if r['arch'] == arch and r['num_labeled'] == num_labeled]
      steps = sorted({r['steps'] for r in mine})
      color = None  # One colour per |L|: dashed on L, solid on the validation split.
      for key, style in (('train/accuracy', '--'), ('val/accuracy', '-')):
        stats = [metrics.mean_se([r[key] for r in mine if r['steps'] == s]) for s in steps]
        mean, se = np.array([m for m, _ in stats]), np.array([e for _, e in stats])
        line, = ax.plot(steps, mean, style, marker='o', markersize=3, color=color,
                        label=f'|L|={num_labeled} {key.split("/")[0]}')
        color = line.get_color()
        ax.fill_between(steps, mean - se, mean + se, alpha=0.15, color=color)
    ax.set_title(f'{arch}: train (dashed, on L) and validation (solid)')
    ax.set_xlabel('SGD steps per round')
    ax.set_ylabel('accuracy')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)


def schedule_table(rows: Sequence[dict]) -> str:
  """Mean ± SE of train (on L) and validation accuracy per (arch, |L|, steps)."""
  lines = ['| arch | labels | epochs | steps | train accuracy (on L) | validation accuracy | seeds |',
           '|---|---|---|---|---|---|---|']
  keys = sorted({(r['arch'], r['num_labeled'], r['epochs'], r['steps']) for r in rows})
  for arch, num_labeled, epochs, steps in keys:
    mine = [r for r in rows if (r['arch'], r['num_labeled'], r['epochs']) == (arch, num_labeled, epochs)]
    lines.append(f'| {arch} | {num_labeled} | {epochs} | {steps} | '
                 f'{format_pm(metrics.mean_se([r["train/accuracy"] for r in mine]))} | '
                 f'{format_pm(metrics.mean_se([r["val/accuracy"] for r in mine]))} | {len(mine)} |')
  return '\n'.join(lines) + '\n'


# --- iNAS's own scoring under the microscope (policy 'inas_study'). ---


def _choose(errors: dict[str, float], current: str) -> str:
  """iNAS's rule (`jal.inas.tie_break_key`) on names 'A(i,j)': the lowest error, then the current architecture,
  then fewer blocks in all (i*j orders depths alike), then fewer stacks."""
  def shape(name):
    blocks, stacks = (int(x) for x in name[name.index('(') + 1:-1].split(','))
    return blocks * stacks, stacks

  return min(errors, key=lambda arch: (errors[arch], arch != current, *shape(arch)))


def study_records(rows: Sequence[dict]) -> list[dict]:
  """Per round of an 'inas_study' run: the candidates' errors [candidate][seed] on V' (best, final) and on the
  held-out split, the architecture the round started from, and |V'|."""
  out = []
  by_run: dict = {}
  for r in rows:
    if any(k.startswith('study/') for k in r):
      by_run.setdefault((r['policy'], r['strategy'], r['seed']), []).append(r)
  for (policy, strategy, seed), run in sorted(by_run.items()):
    previous = 'A(1,1)'
    for r in sorted(run, key=lambda r: r['round']):
      errors: dict = {}
      for key, value in r.items():
        parts = key.split('/')
        if key.startswith('study/') and len(parts) == 4:
          errors.setdefault(parts[3], {}).setdefault(parts[1], {})[int(parts[2])] = value
      sizes = [v for k, v in r.items() if k.startswith('study/') and k.endswith('/num_validation')]
      out.append({'policy': policy, 'strategy': strategy, 'seed': seed, 'round': r['round'],
                  'num_labeled': r['num_labeled'], 'current': previous, 'errors': errors,
                  'num_validation': sizes[0] if sizes else None, 'test/error': 1.0 - r['test/accuracy']})
      previous = r['arch']
  return out


def _inheritance_study(rows: Sequence[dict]) -> dict[str, dict]:
  """Per inherited fraction (as recorded): per-run lists of agreement with the from-scratch choice, a uniform
  pick's agreement, the regret of its choice and a uniform pick's expected regret (from-scratch validation
  errors), over the rounds with a previous model; and its SGD steps over the from-scratch candidates'."""
  fractions = sorted({k.split('/')[1] for r in rows for k in r if k.startswith('inherit_study/') and
                      k.endswith('/chosen') and k != 'inherit_study/scratch/chosen'}, key=float)
  out = {}
  for fraction in fractions:
    key = f'inherit_study/{fraction}'
    mine = [r for r in rows if f'{key}/chosen' in r]
    stats = {name: collections.defaultdict(list) for name in ('agree', 'chance', 'regret', 'uniform')}
    for r in mine:
      run = (r['policy'], r['strategy'], r['seed'])
      scratch = {k[len('nas/step0/'):]: v for k, v in r.items() if k.startswith('nas/step0/')}
      best = scratch[r['inherit_study/scratch/chosen']]
      stats['agree'][run].append(r[f'{key}/chosen'] == r['inherit_study/scratch/chosen'])
      stats['chance'][run].append(1 / len(scratch))
      stats['regret'][run].append(scratch[r[f'{key}/chosen']] - best)
      stats['uniform'][run].append(float(np.mean(list(scratch.values()))) - best)
    out[fraction] = {name: {run: float(np.mean(v)) for run, v in by_run.items()} for name, by_run in stats.items()}
    out[fraction]['rounds'] = len(mine)
    out[fraction]['steps'] = (np.sum([r[f'{key}/steps'] for r in mine])
                              / max(1, np.sum([r['nas/candidate_steps'] for r in mine])))
  return out


def inheritance_study_table(rows: Sequence[dict]) -> str:
  """From 'inheritance_study' rows: per inherited premature schedule, how often its choice equals the
  from-scratch choice, against a uniform pick among the candidates; the regret of its choice (the from-scratch
  validation error of the architecture it picked less that of the from-scratch choice), against a uniform pick's
  expected regret; and its SGD steps against the from-scratch candidates'. Mean ± SE over seeds of per-seed means,
  rounds with a previous model. Ends with the fraction `inherited_fraction_rule` picks."""
  study = _inheritance_study(rows)
  if not study:
    return ''

  def summary(by_run):
    values = list(by_run.values())
    return format_pm(metrics.mean_se(values), 3) if len(values) > 1 else f'{values[0]:.3f}'

  lines = ['| inherited schedule (fraction of the round\'s) | rounds | agrees with the from-scratch choice | '
           'a uniform pick agrees | regret of its choice (validation error) | a uniform pick\'s regret | '
           'candidate steps, inherited / from scratch |', '|---|---|---|---|---|---|---|']
  for fraction, f in study.items():
    lines.append(f"| {fraction} | {f['rounds']} | {summary(f['agree'])} | {summary(f['chance'])} | "
                 f"{summary(f['regret'])} | {summary(f['uniform'])} | {f['steps']:.3f} |")
  return '\n'.join(lines) + '\n\n' + inherited_fraction_rule(rows)[1] + '\n'


def inherited_fraction_rule(rows: Sequence[dict]) -> tuple[float | None, str]:
  """The inherited schedule the study supports, and a sentence saying why. When the lowest-regret fraction's regret
  is distinguishably below a uniform pick's (a paired t test over seeds, `metrics.Paired.distinguishable`), the
  shortest fraction whose regret is not distinguishably above it; when it is not, no schedule carries the
  from-scratch choice and the shortest fraction measured (the cheapest) is taken. Validation errors only: the test
  split plays no part."""
  study = _inheritance_study(rows)
  if not study:
    return None, ''
  runs = sorted(set.intersection(*(set(f['regret']) for f in study.values())))
  regret = {fraction: [f['regret'][run] for run in runs] for fraction, f in study.items()}
  best = min(regret, key=lambda fraction: np.mean(regret[fraction]))
  kept = []
  for fraction in study:
    worse = metrics.paired_difference(regret[fraction], regret[best])
    if not (worse.mean > 0 and worse.distinguishable):
      kept.append(fraction)
  chosen = min(kept, key=float)
  gain, se, n = metrics.paired_difference([study[best]['uniform'][run] for run in runs], regret[best])
  if gain > 0 and metrics.Paired(gain, se, n).distinguishable:
    sentence = (f'Rule (validation errors only): the shortest schedule whose regret is not distinguishably above the '
                f'lowest ({best}: {np.mean(regret[best]):.3f}, {gain:.3f} ± {se:.3f} below a uniform pick\'s) over '
                f'{len(runs)} seeds: **{chosen}**.')
  else:
    chosen = min(study, key=float)
    sentence = (f'Rule (validation errors only): no schedule\'s regret is distinguishably below a uniform pick\'s '
                f'(the lowest, {best}, is {gain:+.3f} ± {se:.3f} below it over {len(runs)} seed(s)), so none '
                f'stands in for the from-scratch choice and cost decides: the shortest, **{chosen}**.')
  return float(chosen), sentence


def search_cost_table(rows: Sequence[dict]) -> str:
  """Per policy (with a search): candidates, their SGD steps and seconds per round (means over rounds and seeds), and a
  run's (search + training) seconds over its training seconds (1.0 = no search; mean ± SE over seeds), over all rounds
  and over the rounds after the first (round 0 has no previous model, so an inheriting search trains its candidates
  from scratch there), the same ratio in the process's CPU seconds over the runs that record them (a pause or a shared
  machine does not inflate those), and the chosen candidate's V' error in the rounds after the first (mean over rounds
  per run, mean ± SE over runs): how the candidates scored where inheritance applies; and that error minus the round
  model's test error: a choice among more candidates on the same small V' looks better on V' than it is (the winner's
  curse), which lowers this gap. The gap is positive at these sizes (V' is drawn from L, which the queries filled with
  hard items; candidates train on S' for half the schedule), and every from-scratch policy shares those causes, so
  between two of them it differs by the selection and by what it chose."""
  lines = []
  for policy in sorted({r['policy'] for r in rows if 'nas/candidates' in r}):
    mine = [r for r in rows if r['policy'] == policy and 'nas/candidates' in r]
    steps = [r['nas/candidate_steps'] for r in mine if 'nas/candidate_steps' in r]
    overheads = []
    for first, suffix in ((0, ''), (1, ''), (0, '_cpu')):
      runs = collections.defaultdict(lambda: [0.0, 0.0])
      for r in mine:
        if r['round'] >= first:
          runs[(r['strategy'], r['seed'])][0] += r.get(f'time/nas{suffix}', np.nan) + r.get(f'time/train{suffix}',
                                                                                                np.nan)
          runs[(r['strategy'], r['seed'])][1] += r.get(f'time/train{suffix}', np.nan)
      ratios = [total / train for total, train in runs.values() if np.isfinite(total)]  # CPU: runs that record it.
      ratio = metrics.mean_se(ratios) if ratios else None
      overheads.append(f'{ratio[0]:.2f}× ± {ratio[1]:.2f}' if ratio else '—')
    chosen_errors, optimism = collections.defaultdict(list), collections.defaultdict(list)
    for r in mine:
      scored = sorted((k for k in r if k.startswith('nas/step') and k.endswith(f"/{r.get('nas/chosen')}")),
                      key=lambda k: int(k.split('/')[1][len('step'):]))  # The last step that scored it.
      if r['round'] >= 1 and scored:
        chosen_errors[(r['strategy'], r['seed'])].append(r[scored[-1]])
        if 'test/accuracy' in r:
          optimism[(r['strategy'], r['seed'])].append(r[scored[-1]] - (1.0 - r['test/accuracy']))
    for per_run, sign in ((chosen_errors, ''), (optimism, '+')):
      error = metrics.mean_se([np.mean(v) for v in per_run.values()]) if per_run else None
      overheads.append(f'{error[0]:{sign}.3f} ± {error[1]:.3f}' if error else '—')
    lines.append(f"| {policy} | {np.mean([r['nas/candidates'] for r in mine]):.1f} | "
                 f"{np.mean(steps) if steps else float('nan'):.0f} | "
                 f"{np.mean([r['time/candidates'] for r in mine]):.1f} | {' | '.join(overheads)} |")
  if not lines:
    return ''
  return '\n'.join(['| policy | candidates / round | candidate SGD steps / round | candidate seconds / round | '
                     '(search + training) / training, per run | the same, rounds after the first | '
                     'the same in CPU seconds, per run | '
                     "chosen candidate's V' error, rounds after the first | the same − the round's test error |",
                     '|---|---|---|---|---|---|---|---|---|'] + lines) + '\n'


def compute_points(rows: Sequence[dict], entries: Sequence[dict]) -> dict[str, dict]:
  """Per method of a search grid: SGD steps and seconds per run (candidates + round models, summed over rounds),
  per seed ('runs': seed -> (steps, seconds, AUBC)) and their means; only rows that record 'train/steps' (the
  round model's steps) count."""
  points = {}
  for entry in entries:
    runs = {}
    for r in rows:
      if (r['policy'], r['strategy']) == (entry['policy'], entry['strategy']) and 'train/steps' in r:
        steps, seconds = runs.get(r['seed'], (0, 0.0))
        runs[r['seed']] = (steps + r['train/steps'] + r.get('nas/candidate_steps', 0),
                           seconds + r['time/train'] + r['time/nas'])
    if runs:
      aubc = dict(zip(entry['seeds'], entry['aubc']))
      points[f"{entry['policy']} {entry['strategy']}"] = {
          'steps': float(np.mean([v[0] for v in runs.values()])),
          'seconds': float(np.mean([v[1] for v in runs.values()])), 'aubc': entry['aubc_mean_se'],
          'runs': {s: (*v, aubc[s]) for s, v in runs.items() if s in aubc}, 'entry': entry}
  return points


def _paired_ratio(runs: Mapping[int, tuple], base: Mapping[int, tuple], index: int) -> tuple[float, float] | None:
  """Mean ± SE over the seeds both hold of runs[s][index] / base[s][index] (None without a common seed)."""
  common = [s for s in runs if s in base]
  return metrics.mean_se([runs[s][index] / base[s][index] for s in common]) if common else None


def compute_table(points: Mapping[str, dict], baseline_policy: str | Sequence[str] | None = None) -> str:
  """AUBC against compute per method: SGD steps and seconds per run, each as a paired per-seed ratio to the first
  baseline policy's run (same strategy), the paired AUBC difference to each baseline, and for a '+inherit' or
  '+lineage' policy the paired AUBC difference to the same search from scratch (issue 13's goal reads off these
  columns)."""
  bases = baselines(baseline_policy)
  ratio_to = bases[0] if bases else None
  header = '| method | AUBC | SGD steps / run | seconds / run |'
  if ratio_to:
    header += f' steps / {ratio_to} | seconds / {ratio_to} |'
  header += ''.join(f' AUBC − {b} |' for b in bases) + ' AUBC − from scratch |'
  lines = [header, '|' + '---|' * header[1:].count('|')]
  for name, point in sorted(points.items(), key=lambda item: item[1]['steps']):
    entry = point['entry']
    cells = [name, format_pm(point['aubc']), f"{point['steps']:,.0f}", f"{point['seconds']:,.0f}"]
    if ratio_to:
      base = points.get(f"{ratio_to} {entry['strategy']}")
      for index in (0, 1):
        ratio = _paired_ratio(point['runs'], base['runs'], index) if base and base is not point else None
        cells.append(f'{ratio[0]:.2f}× ± {ratio[1]:.2f}' if ratio else '—')
    cells += [format_pm(entry['aubc_minus'][b], signed=True) if b in entry['aubc_minus'] else '—' for b in bases]
    base_policy, *options = entry['policy'].split('+')
    inherited = bool({'inherit', 'lineage'} & set(options))
    from_scratch = '+'.join([base_policy] + [o for o in options if o not in ('inherit', 'lineage')])
    scratch = points.get(f"{from_scratch} {entry['strategy']}")
    common = [s for s in point['runs'] if scratch and s in scratch['runs']]
    cells.append(format_pm(metrics.paired_difference([point['runs'][s][2] for s in common],
                                                     [scratch['runs'][s][2] for s in common]), signed=True)
                 if inherited and common else '—')
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def validation_study_tables(rows: Sequence[dict]) -> str:
  """Two tables from 'inas_study' rows: how far V' errors sit from held-out errors (selection bias), and how each
  scoring rule chooses: stability under a change of seed only, and agreement with the choice the held-out split
  (averaged over seeds) would make."""
  records = study_records(rows)
  if not records:
    return ''
  lines = ["| strategy | labels | size of V' | V' error (best) | V' error (final) | held-out error | "
           "V' final − held-out (paired) | round model test error |", '|---|---|---|---|---|---|---|---|']
  for strategy in sorted({r['strategy'] for r in records}):
    for n in sorted({r['num_labeled'] for r in records if r['strategy'] == strategy}):
      mine = [r for r in records if r['strategy'] == strategy and r['num_labeled'] == n]
      cells = {key: [np.mean(list(by_seed.values())) for r in mine for by_seed in r['errors'][key].values()]
               for key in ('val_best', 'val_final', 'holdout')}
      gap = [f - h for f, h in zip(cells['val_final'], cells['holdout'])]
      summary = [format_pm(metrics.mean_se(cells[key])) for key in ('val_best', 'val_final', 'holdout')]
      lines.append(f'| {strategy} | {n} | {mine[0]["num_validation"]} | ' + ' | '.join(summary) +
                   f' | {format_pm(metrics.mean_se(gap), signed=True)} | '
                   f'{format_pm(metrics.mean_se([r["test/error"] for r in mine]))} |')
  bias = '\n'.join(lines) + '\n'

  rules = {'best, 1 seed': ('val_best', 1), 'final, 1 seed': ('val_final', 1),
           'best, mean of 3 seeds': ('val_best', 3), 'final, mean of 3 seeds': ('val_final', 3),
           'held-out, 1 seed': ('holdout', 1)}
  lines = ['| scoring rule | rounds | choice changes with the seed | agrees with the held-out choice (3 seeds) |',
           '|---|---|---|---|']
  for rule, (key, count) in rules.items():
    changes, agreements = [], []
    for r in records:
      archs = sorted(r['errors'][key])
      seeds = sorted(r['errors'][key][archs[0]])
      truth = _choose({a: float(np.mean(list(r['errors']['holdout'][a].values()))) for a in archs}, r['current'])
      if count == 1:
        choices = [_choose({a: r['errors'][key][a][s] for a in archs}, r['current']) for s in seeds]
        pairs = [(x, y) for i, x in enumerate(choices) for y in choices[i + 1:]]
        changes.append(np.mean([x != y for x, y in pairs]) if pairs else 0.0)
        agreements.append(np.mean([c == truth for c in choices]))
      else:
        choice = _choose({a: float(np.mean(list(r['errors'][key][a].values()))) for a in archs}, r['current'])
        agreements.append(float(choice == truth))
    stability = format_pm(metrics.mean_se(changes), 3) if changes else '— (one choice per round)'
    lines.append(f'| {rule} | {len(records)} | {stability} | {format_pm(metrics.mean_se(agreements), 3)} |')
  return bias + '\n' + '\n'.join(lines) + '\n'
