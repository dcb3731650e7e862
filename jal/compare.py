"""Comparisons of active learners over paired seeds: runs, resumable result rows, tables and figures.

A method is (architecture policy, query strategy): 'fixed:A(1,2)' or 'inas', with any registered strategy.
`run_grid` runs every (policy, strategy, seed) not already complete in a rows file (JSON lines, one per round),
so an interrupted comparison resumes at the last finished run. `summarize` computes AUBC (mean ± SE), paired
differences and AUC-GAIN against the passive learner (random queries, same policy and seeds); the figures are
those of active-iNAS §5 (learning curves per query function, the architecture trajectory, AUC-GAIN).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable, Sequence

import numpy as np
from absl import logging

from jal import inas as inas_lib
from jal import loop, metrics, plots
from jal.data import Splits
from jal.search_space import parse_architecture


def make_policy(spec: str, inas_config: inas_lib.INASConfig) -> loop.ArchitecturePolicy:
  """'fixed:A(i,j)' -> `loop.fixed`, 'inas' -> `inas.inas_policy`; anything else is a ValueError."""
  if spec == 'inas':
    return inas_lib.inas_policy(inas_config)
  if spec.startswith('fixed:'):
    return loop.fixed(parse_architecture(spec[len('fixed:'):]))
  raise ValueError(f"Unknown architecture policy {spec!r}; use 'inas' or 'fixed:A(i,j)'.")


def read_rows(path: str) -> list[dict]:
  """The rows of a JSON-lines file ([] if it does not exist)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _write_rows(path: str, rows: Sequence[dict]) -> None:
  """Rewrites a rows file atomically (a temporary file renamed over it)."""
  with open(path + '.tmp', 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in rows)
  os.replace(path + '.tmp', path)


def run_slug(policy: str, strategy: str, seed: int) -> str:
  """A directory name for one run: 'fixed:A(1,2)', 'entropy', 0 -> 'fixed_A1-2__entropy__seed0'."""
  clean = lambda text: re.sub(r'[^A-Za-z0-9_.-]+', '_', text.replace(',', '-')).replace('(', '').strip('_')  # noqa: E731
  return f'{clean(policy)}__{clean(strategy)}__seed{seed}'


def run_grid(
    splits: Splits,
    policies: Sequence[str],
    strategies: Sequence[str],
    seeds: Sequence[int],
    loop_config_for: Callable[[str], loop.LoopConfig],
    inas_config: inas_lib.INASConfig,
    rows_path: str,
    on_round: Callable[[dict], None] | None = None,
    skip: Sequence[tuple[str, str]] = (),
    querier_for: Callable[[str], str | loop.Querier] = lambda name: name,
    checkpoint_dir: str | None = None,
    run_config: dict | None = None,
    oracle: loop.Oracle | None = None,
) -> list[dict]:
  """Runs every (policy, strategy, seed) whose rounds are not all in `rows_path`; returns all complete rows.

  Args:
    loop_config_for: strategy -> its LoopConfig (MC-dropout strategies train with dropout).
    on_round: called with each new row (progress reports).
    skip: (policy, strategy) pairs not to run (e.g. ('inas', 'random') when random only serves as the passive
      learner of the fixed architectures).
    querier_for: strategy name -> what `loop.run` takes: the name itself for registered strategies, a
      `loop.Querier` for methods with state ('autoal').
    checkpoint_dir: if set, each run is a `jal.session.Session` in its own sub-directory, checkpointed after
      every phase: an interrupted run resumes where it stopped instead of from its first round.
    run_config: what determines a run besides (policy, strategy, seed); a checkpoint written under another is
      refused.
    oracle: who labels (default: the pool's own labels); `jal.labelling.HumanOracle` for people.
  """
  from jal import session as session_lib  # Local: Orbax loads only for checkpointed grids.

  queriers = {name: querier_for(name) for name in strategies}
  for querier in queriers.values():
    loop.strategy_needs(querier)  # Fail on a typo before any training.
  made = {spec: make_policy(spec, inas_config) for spec in policies}
  rows = read_rows(rows_path)
  todo = []
  for spec in policies:
    for strategy in strategies:
      if (spec, strategy) in set(skip):
        continue
      num_rounds = len(loop_config_for(strategy).schedule.label_counts())
      for seed in seeds:
        done = [r for r in rows if (r['policy'], r['strategy'], r['seed']) == (spec, strategy, seed)]
        if len(done) != num_rounds:
          todo.append((spec, strategy, seed))
  if not todo:
    logging.info('Every run is complete in %s; nothing to do.', rows_path)
    print(f'Every run is complete in {rows_path}; nothing to do.', flush=True)
  for spec, strategy, seed in todo:
    def mine(r, spec=spec, strategy=strategy, seed=seed):
      return (r['policy'], r['strategy'], r['seed']) == (spec, strategy, seed)

    rows[:] = [r for r in rows if not mine(r)]  # A partial run's rows come back from its checkpoint, if any.
    _write_rows(rows_path, rows)

    def record(state, spec=spec, seed=seed):
      row = dict(state.history[-1], policy=spec, seed=seed)
      with open(rows_path, 'a') as f:
        f.write(json.dumps(row) + '\n')
      rows.append(row)
      if on_round is not None:
        on_round(row)

    def resume(state, spec=spec, seed=seed):
      rows.extend(dict(r, policy=spec, seed=seed) for r in state.history)
      _write_rows(rows_path, rows)

    config = loop_config_for(strategy)
    if checkpoint_dir is None:
      loop.run(splits, config, queriers[strategy], made[spec], oracle, seed=seed, on_round=record)
    else:
      run_session = session_lib.Session(os.path.join(checkpoint_dir, run_slug(spec, strategy, seed)),
                                        {**(run_config or {}), 'policy': spec, 'strategy': strategy, 'seed': seed})
      session_lib.run(run_session, splits, config, queriers[strategy], made[spec], oracle, seed=seed,
                      on_round=record, on_resume=resume)
  return rows


def curves(rows: Sequence[dict]) -> dict[tuple[str, str], dict[int, dict[str, list]]]:
  """(policy, strategy) -> seed -> per-round lists ('num_labeled', 'test/accuracy', 'arch/params', ...)."""
  out: dict = {}
  for r in sorted(rows, key=lambda r: r['round']):
    run = out.setdefault((r['policy'], r['strategy']), {}).setdefault(r['seed'], {})
    for key in ('num_labeled', 'test/accuracy', 'arch/params', 'arch/depth', 'arch'):
      run.setdefault(key, []).append(r[key])
  return out


def summarize(rows: Sequence[dict], baseline_policy: str | None = None) -> list[dict]:
  """One entry per method: AUBC per seed and mean ± SE, final accuracy, AUC-GAIN and AUBC minus random (same
  policy, paired seeds), and AUBC minus `baseline_policy` with the same strategy (paired seeds)."""
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
      entry['auc_gain'] = metrics.mean_se([
          metrics.auc_gain(runs[s]['num_labeled'], runs[s]['test/accuracy'], passive[s]['test/accuracy'])
          for s in common])
    base = by_method.get((baseline_policy, strategy), {}) if baseline_policy else {}
    common = [s for s in seeds if s in base]
    if policy != baseline_policy and common:
      entry['aubc_minus_baseline'] = metrics.paired_difference(
          [aubc[s] for s in common],
          [metrics.aubc(base[s]['num_labeled'], base[s]['test/accuracy']) for s in common])
    entries.append(entry)
  return entries


def format_pm(value, digits=4, signed=False) -> str:
  """'mean ± se' for a (mean, se) pair; '—' for None."""
  if value is None:
    return '—'
  sign = '+' if signed else ''
  return f'{value[0]:{sign}.{digits}f} ± {value[1]:.{digits}f}'


def markdown_table(entries: Sequence[dict], baseline_policy: str | None = None) -> str:
  """The AUBC table, best first."""
  header = ['policy', 'strategy', 'seeds', 'AUBC', 'final accuracy', 'AUBC − random', 'AUC-GAIN vs random']
  if baseline_policy:
    header.append(f'AUBC − {baseline_policy}')
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for e in sorted(entries, key=lambda e: -e['aubc_mean_se'][0]):
    cells = [e['policy'], e['strategy'], str(len(e['seeds'])), format_pm(e['aubc_mean_se']),
             format_pm(e['final_accuracy_mean_se']), format_pm(e.get('aubc_minus_random'), signed=True),
             format_pm(e.get('auc_gain'), 3, signed=True)]
    if baseline_policy:
      cells.append(format_pm(e.get('aubc_minus_baseline'), signed=True))
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


def write_outputs(rows: Sequence[dict], workdir: str, title: str, baseline_policy: str | None = None) -> dict:
  """rounds.csv, summary.json, summary.md and the figures; returns the summary with the markdown tables."""
  entries = summarize(rows, baseline_policy)
  with open(os.path.join(workdir, 'rounds.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
    writer.writeheader()
    writer.writerows(rows)
  table, times = markdown_table(entries, baseline_policy), time_table(rows)
  weights = strategy_weights(rows)
  if weights:  # AutoAL: its paired differences, overhead, and the weight of every candidate per round.
    table += '\n' + paired_table(rows, 'autoal')
    times += '\n' + overhead_table(rows)
    plots.learning_curves(weights, os.path.join(workdir, 'strategy_weights.png'),
                          title='AutoAL: mean SearchNet weight per candidate', ylabel='weight')
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump({'methods': entries}, f, indent=1)
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
