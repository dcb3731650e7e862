"""Tests for jal.metrics and the mean ± SE format of jal.report."""

import numpy as np
import pytest

from jal import metrics, report


def test_aubc_is_normalised_trapezoid_area():
  assert metrics.aubc([100, 200, 400], [0.5, 0.7, 0.9]) == pytest.approx(
      ((0.5 + 0.7) / 2 * 100 + (0.7 + 0.9) / 2 * 200) / 300)
  assert metrics.aubc([0, 10], [0.8, 0.8]) == pytest.approx(0.8)
  assert metrics.aubc([100], [0.7]) == 0.7  # One round (the initial set only): its accuracy, the ratio's limit.
  assert metrics.auc_gain([100], [0.8], [0.6]) == pytest.approx(0.5)


def test_auc_gain_against_passive():
  n = [100, 200, 300]
  assert metrics.auc_gain(n, [0.6, 0.8, 0.9], [0.6, 0.8, 0.9]) == pytest.approx(0.0)
  # Passive error area: (0.5+0.4)/2*100 + (0.4+0.3)/2*100 = 80; active: (0.5+0.2)/2*100 + (0.2+0.1)/2*100 = 50.
  assert metrics.auc_gain(n, [0.5, 0.8, 0.9], [0.5, 0.6, 0.7]) == pytest.approx(30 / 80)
  assert metrics.auc_gain(n, [0.4, 0.5, 0.6], [0.5, 0.6, 0.7]) < 0


def test_mean_se_and_paired_difference():
  mean, se = metrics.mean_se([1.0, 2.0, 3.0])
  assert mean == pytest.approx(2.0) and se == pytest.approx(1.0 / np.sqrt(3))
  assert metrics.mean_se([0.5]) == (0.5, 0.0)
  # Paired: a constant offset has zero standard error even when the seeds vary a lot.
  assert metrics.paired_difference([0.9, 0.5, 0.7], [0.8, 0.4, 0.6]) == pytest.approx((0.1, 0.0, 3))
  assert report.format_pm(metrics.mean_se([0.8, 0.8])) == '0.8000 ± 0.0000'
  assert report.format_pm((0.01, 0.002), signed=True) == '+0.0100 ± 0.0020'
  assert report.format_pm(None) == '—'


def test_a_paired_difference_is_called_only_past_the_t_critical_value_for_its_seeds():
  assert metrics.t_critical(2) == pytest.approx(4.303, abs=1e-3)
  assert metrics.t_critical(4) == pytest.approx(2.776, abs=1e-3)
  # t = 3.0: a difference at 5 seeds (2.78), not at 3 (4.30), where 2 SE would have called it.
  assert metrics.Paired(0.03, 0.01, 5).distinguishable and not metrics.Paired(0.03, 0.01, 3).distinguishable
  assert metrics.Paired(-0.05, 0.01, 3).distinguishable and not metrics.Paired(0.0, 0.0, 3).distinguishable
  assert not metrics.Paired(0.5, 0.0, 1).distinguishable  # One seed is never evidence.
  assert report.format_pm(metrics.Paired(0.03, 0.01, 5), signed=True) == r'+0.0300 ± 0.0100 \*'
  assert report.format_pm(metrics.Paired(0.03, 0.01, 3), signed=True) == '+0.0300 ± 0.0100'
  with pytest.raises(ValueError, match='degree of freedom'):
    metrics.t_critical(0)


@pytest.mark.parametrize('call, message', [
    (lambda: metrics.aubc([], []), 'at least 1 round'),
    (lambda: metrics.aubc([100, 100], [0.5, 0.6]), 'increase strictly'),
    (lambda: metrics.aubc([100, 200], [0.5, float('nan')]), 'finite'),
    (lambda: metrics.aubc([100, 200, 300], [0.5, 0.6]), 'matching'),
    (lambda: metrics.paired_difference([1, 2], [1, 2, 3]), 'one value per seed'),
    (lambda: metrics.auc_gain([1, 2], [1.0, 1.0], [1.0, 1.0]), 'undefined'),
])
def test_bad_curves_are_rejected(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def _rows(policy, strategy, seed, accuracies):
  return [{'policy': policy, 'strategy': strategy, 'seed': seed, 'round': r, 'num_labeled': 100 * (r + 1),
           'test/accuracy': a, 'arch/params': 1, 'arch/depth': 1, 'arch': 'A(1,1)'} for r, a in enumerate(accuracies)]


def test_paired_differences_against_several_baselines_per_run_and_per_round():
  assert report.baselines('fixed:A(1,2),fixed:A(2,4)') == ('fixed:A(1,2)', 'fixed:A(2,4)')
  rows = []
  for seed, shift in ((0, 0.0), (1, 0.02)):
    rows += _rows('small', 'lc', seed, [0.50 + shift, 0.60 + shift])
    rows += _rows('big', 'lc', seed, [0.55 + shift, 0.60 + shift])
    rows += _rows('inas', 'lc', seed, [0.50 + shift, 0.64 + shift + seed * 0.02])
  entries = {e['policy']: e for e in report.summarize(rows, 'small,big')}
  assert set(entries['inas']['aubc_minus']) == {'small', 'big'} and entries['small']['aubc_minus'].keys() == {'big'}
  mean, se, _ = entries['inas']['aubc_minus']['big']  # AUBC = mean of the two accuracies here.
  assert mean == pytest.approx(((0.50 - 0.55) + (0.64 - 0.60) + 0.01) / 2) and se == pytest.approx(0.005)
  table = report.round_differences_table(rows, 'small,big')
  lines = table.splitlines()
  assert lines[0] == '| strategy | difference | seeds | 100 labels | 200 labels |'
  # Equal differences on every seed (SE 0) are marked; +0.050 ± 0.010 is t = 5 < 12.7 at 2 seeds.
  assert r'| lc | big − small | 2 | +0.050 ± 0.000 \* | +0.000 ± 0.000 |' in lines
  assert r'| lc | inas − big | 2 | -0.050 ± 0.000 \* | +0.050 ± 0.010 |' in lines
  assert not any('small − big' in line for line in lines)  # Each pair of baselines once.
  assert report.round_differences_table(rows, '') == ''


def test_best_strategy_and_architecture_tables():
  rows = []
  for seed in (0, 1):
    rows += _rows('p', 'lc', seed, [0.6, 0.7 + 0.01 * seed])
    rows += _rows('p', 'coreset', seed, [0.6, 0.6])
    rows += _rows('p', 'random', seed, [0.9, 0.9])  # The passive learner is no candidate for "best".
  lines = report.best_strategy_table(rows).splitlines()
  assert lines[2:] == [r'| p | lc − coreset | 2 | +0.0525 ± 0.0025 \* |']  # t = 21 > 12.7 (1 degree of freedom).
  assert report.architecture_table(rows) == ''  # One architecture throughout: nothing to show.
  grown = [dict(r, arch=f'A(1,{r["round"] + 1})', **{'arch/params': 1000 * (r['round'] + 1)}) for r in rows]
  table = report.architecture_table([r for r in grown if r['strategy'] == 'lc'])
  assert '| p | lc | 1k / 1.0 | 2k / 1.0 | A(1,2), A(1,2) |' in table.splitlines()


def test_weight_table_reports_the_mean_weights_and_how_far_they_move():
  rows = []
  for seed, moved in ((0, 0.1), (1, 0.3)):
    for r, labels in enumerate((100, 200)):
      shift = moved * r
      rows.append({'policy': 'p', 'strategy': 'autoal', 'seed': seed, 'round': r, 'num_labeled': labels,
                   'autoal/weight/a': 0.5 + shift, 'autoal/weight/b': 0.5 - shift})
  lines = report.weight_table(rows).splitlines()
  assert lines[0] == '| labels | a | b | change since the previous query |'
  assert lines[2] == '| 100 | 0.500 | 0.500 | — |'
  assert lines[3] == '| 200 | 0.700 | 0.300 | 0.200 ± 0.100 |'  # Moves of 0.1 and 0.3: mean 0.2, SE 0.1.
  assert report.weight_table([dict(r, strategy='entropy') for r in rows]) == ''
  shares = [dict(r, **{'autoal/chosen_by/a': 0.25 * (1 + r['seed']), 'autoal/chosen_by/b': 1.0,
                        'autoal/outside_leader': 0.1 * r['round']}) for r in rows]
  lines = report.query_share_table(shares).splitlines()
  assert lines[0] == "| labels | in a's top b | in b's top b | outside the leader's top b |"
  assert lines[2:] == ['| 100 | 0.375 | 1.000 | 0.000 |', '| 200 | 0.375 | 1.000 | 0.100 |']
  assert report.query_share_table(rows) == ''


def test_ablation_table_pairs_each_variant_with_the_reference_by_seed():
  reference, variant = [], []
  for seed in (0, 1):
    reference += _rows('p', 'autoal', seed, [0.6, 0.7])
    reference += _rows('p', 'entropy', seed, [0.6, 0.7])
    reference += _rows('p', 'bald', seed, [0.6, 0.8 + 0.02 * seed])   # The oracle-best candidate after the fact.
    reference += _rows('p', 'random', seed, [0.6, 0.9])
    variant += _rows('p', 'autoal', seed, [0.6, 0.72 + 0.02 * seed])
  variant += _rows('p', 'autoal', 2, [0.6])                              # A seed the reference lacks: left out.
  changes = report.config_changes({'autoal': {'head_init': 'uniform', 'cycles': 50}, 'seeds': [0, 1]},
                                  {'autoal': {'head_init': 'random', 'cycles': 50}, 'seeds': [0, 1],
                                   'extra': 1})
  assert changes == ['autoal.head_init: uniform → random', 'extra: — → 1']
  assert report.config_changes({'a': {}}, {'a': {'new': 0}}, absent={'a.new': 0}) == []  # Added at its neutral value.
  lines = report.ablation_table(reference, {'head_random': variant}, changes={'head_random': changes[:1]}).splitlines()
  assert lines[2] == (r'| p | as is | — | 2 | 0.6500 ± 0.0000 | — | -0.1000 ± 0.0000 \* | -0.0550 ± 0.0050 (bald) '
                      '| 0.7000 ± 0.0000 | — | — |')
  assert lines[3] == (r'| p | head_random | autoal.head_init: uniform → random | 2 | 0.6650 ± 0.0050 | '
                      r'+0.0150 ± 0.0050 | -0.0850 ± 0.0050 \* | -0.0400 ± 0.0000 \* (bald) | 0.7300 ± 0.0100 | '
                      '— | — |')
  for r in variant:  # Weights 0.5/0.5 then 0.8/0.2: leading 0.65, a move of 0.3 per query.
    r.update({'autoal/weight/a': 0.5 + 0.3 * r['round'], 'autoal/weight/b': 0.5 - 0.3 * r['round']})
  line = report.ablation_table(reference, {'v': variant}).splitlines()[3]
  assert line.endswith('| 0.650 ± 0.000 | 0.300 ± 0.000 |')


def test_inheritance_study_table_scores_agreement_and_regret_against_a_uniform_pick():
  def row(seed, errors, scratch, inherited):
    r = {'policy': 'inheritance_study', 'strategy': 'lc', 'seed': seed, 'nas/candidate_steps': 100,
         'inherit_study/scratch/chosen': scratch, 'inherit_study/0.25/chosen': inherited,
         'inherit_study/0.25/steps': 25}
    r.update({f'nas/step0/{a}': e for a, e in errors.items()})
    return r
  errors = {'A(1,1)': 0.2, 'A(2,1)': 0.3, 'A(1,2)': 0.4}                 # A uniform pick's regret: 0.1.
  rows = [row(0, errors, 'A(1,1)', 'A(1,1)'), row(0, errors, 'A(1,1)', 'A(1,2)'),  # Seed 0: agrees 1/2, regret 0.1.
          row(1, errors, 'A(1,1)', 'A(1,1)'), row(1, errors, 'A(1,1)', 'A(1,1)')]  # Seed 1: 1, 0.
  line = report.inheritance_study_table(rows).splitlines()[2]
  assert line == ('| 0.25 | 4 | 0.750 ± 0.250 | 0.333 ± 0.000 | 0.050 ± 0.050 | 0.100 ± 0.000 | 0.250 |')


def test_inherited_fraction_rule_takes_the_shortest_schedule_as_good_as_the_best_or_the_cheapest():
  def rows(regrets):  # {fraction: regret per seed}; candidates' errors 0.0 (chosen), r and 0.3.
    out = []
    for seed in range(3):
      r = {'policy': 'inheritance_study', 'strategy': 'lc', 'seed': seed, 'nas/candidate_steps': 100,
           'inherit_study/scratch/chosen': 'a', 'nas/step0/a': 0.0, 'nas/step0/b': 0.1, 'nas/step0/c': 0.3}
      for fraction, regret in regrets.items():
        r[f'inherit_study/{fraction}/chosen'] = {0.0: 'a', 0.1: 'b', 0.3: 'c'}[regret[seed]]
        r[f'inherit_study/{fraction}/steps'] = 10
      out.append(r)
    return out
  # Uniform pick's regret 0.133. 1/4 and 1/8 always pick 'a' (regret 0); 1/16's regret 0.3 on every seed is
  # distinguishably worse: 1/8.
  fraction, sentence = report.inherited_fraction_rule(rows({0.0625: [0.3, 0.3, 0.3], 0.125: [0.0, 0.0, 0.0],
                                                            0.25: [0.0, 0.0, 0.0]}))
  assert fraction == 0.125 and '**0.125**' in sentence
  # 0.233 ± 0.067 worse (t = 3.5) is short of 4.30 at 3 seeds, where 2 SE would have dropped it: the shortest.
  fraction, _ = report.inherited_fraction_rule(rows({0.0625: [0.3, 0.3, 0.1], 0.125: [0.0, 0.0, 0.0]}))
  assert fraction == 0.0625
  fraction, sentence = report.inherited_fraction_rule(rows({0.0625: [0.3, 0.0, 0.1], 0.25: [0.1, 0.3, 0.0]}))
  assert fraction == 0.0625 and 'cost decides' in sentence   # No better than a uniform pick: the cheapest.


def test_compute_table_pairs_cost_ratios_with_the_baseline_and_inherited_searches_with_their_own():
  def run(policy, seed, accuracy, steps, seconds):  # Two rounds; the round model trains 10 steps each.
    return [{'policy': policy, 'strategy': 'lc', 'seed': seed, 'round': k, 'num_labeled': 100 * (k + 1),
             'test/accuracy': accuracy, 'arch/params': 1, 'arch/depth': 1, 'arch': 'A(1,1)', 'train/steps': 10,
             'nas/candidate_steps': steps / 2 - 10, 'time/train': 1.0, 'time/nas': seconds / 2 - 1.0}
            for k in range(2)]
  rows = (run('fixed', 0, 0.5, 20, 2.0) + run('fixed', 1, 0.6, 20, 4.0)
          + run('inas', 0, 0.7, 80, 8.0) + run('inas', 1, 0.7, 80, 12.0)
          + run('inas+inherit', 0, 0.6, 30, 3.0) + run('inas+inherit', 1, 0.8, 30, 6.0)
          + run('inas+lineage+pareto', 0, 0.5, 30, 3.0) + run('inas+lineage+pareto', 1, 0.7, 30, 6.0)
          + run('inas+pareto', 0, 0.6, 80, 8.0) + run('inas+pareto', 1, 0.6, 80, 12.0))
  points = report.compute_points(rows, report.summarize(rows, 'fixed'))
  lines = {line.split(' | ')[0][2:]: line for line in report.compute_table(points, 'fixed').splitlines()[2:]}
  # Seconds ratios to fixed per seed: 3/2, 6/4 -> 1.5 ± 0; inas: 8/2, 12/4 -> 3.5 ± 0.5. Steps 30/20, 80/20.
  assert lines['inas+inherit lc'] == ('| inas+inherit lc | 0.7000 ± 0.1000 | 30 | 4 | 1.50× ± 0.00 | 1.50× ± 0.00 | '
                                      '+0.1500 ± 0.0500 | +0.0000 ± 0.1000 |')
  assert lines['inas lc'].endswith('| 4.00× ± 0.00 | 3.50× ± 0.50 | +0.1500 ± 0.0500 | — |')
  # A lineage search is paired with the same search from scratch, its other options kept: 0.5 - 0.6, 0.7 - 0.6.
  assert lines['inas+lineage+pareto lc'].endswith('| +0.0000 ± 0.1000 |')
  assert lines['fixed lc'].endswith('| — | — | — | — |')


def test_search_cost_table_gives_the_search_overhead_per_run_and_after_the_first_round():
  def row(seed, k, nas, train, chosen_error, test_accuracy):
    return {'policy': 'inas+inherit', 'strategy': 'lc', 'seed': seed, 'round': k, 'nas/candidates': 2,
            'nas/candidate_steps': 10, 'time/candidates': nas, 'time/nas': nas, 'time/train': train,
            'nas/chosen': 'A(1,2)', 'nas/step0/A(1,1)': 0.9, 'nas/step0/A(1,2)': chosen_error,
            'test/accuracy': test_accuracy}
  # Seed 0: (3 + 1 + 1 + 2) / (1 + 2) = 7/3 over the run, 3/2 after round 0; seed 1: 16/6 = 8/3, 8/4 = 2.
  # The chosen candidate's V' error after round 0: 0.2 and 0.4 (round 0's 0.0 does not count); minus the round's
  # test error (0.25 and 0.3): -0.05 and +0.1.
  rows = [row(0, 0, 3.0, 1.0, 0.0, 0.5), row(0, 1, 1.0, 2.0, 0.2, 0.75), row(1, 0, 6.0, 2.0, 0.0, 0.5),
          row(1, 1, 4.0, 4.0, 0.4, 0.7)]
  line = report.search_cost_table(rows).splitlines()[2]
  assert line == ('| inas+inherit | 2.0 | 10 | 3.5 | 2.50× ± 0.17 | 1.75× ± 0.25 | — | 0.300 ± 0.100 | '
                  '+0.025 ± 0.075 |')  # No CPU seconds recorded: no CPU ratio.
  # With the process's CPU seconds: seed 0 (1.5 + 1 + 1 + 1) / (1 + 1) = 2.25, seed 1 (0.5 + 0 + 2 + 4) / 6.
  cpu = [(1.5, 1.0), (1.0, 1.0), (0.5, 2.0), (0.0, 4.0)]
  rows = [{**r, 'time/nas_cpu': n, 'time/train_cpu': t} for r, (n, t) in zip(rows, cpu)]
  assert report.search_cost_table(rows).splitlines()[2].split(' | ')[6] == '1.67× ± 0.58'


def test_the_stop_rule_table_says_where_each_run_would_have_stopped_and_what_it_gave_up():
  def run(seed, agreements, accuracies):
    return [{'policy': 'p', 'strategy': 's', 'seed': seed, 'round': i, 'num_labeled': 100 * (i + 1),
             'test/accuracy': a, **({'stop/agreement': k} if k is not None else {})}
            for i, (k, a) in enumerate(zip(agreements, accuracies))]
  rows = (run(0, [None, 0.85, 0.95, 0.96], [0.5, 0.6, 0.7, 0.75])      # κ >= 0.9 first at round 2.
          + run(1, [None, 0.70, 0.80, 0.99], [0.5, 0.6, 0.65, 0.7]))   # κ >= 0.9 only at the last round.
  table = report.stop_rule_table(rows, thresholds=(0.9,), patience=(1, 2))
  lines = table.splitlines()
  # K = 1: run 0 stops at 300 labels giving up 0.05; run 1 stops at its last round (not a stop).
  assert lines[2] == '| 0.90 | 1 | 1 of 2 | 350 | 0.0250 ± 0.0250 |'
  # K = 2: run 0 needs rounds 2 and 3 (its end), run 1 never: nothing stops early.
  assert lines[3] == '| 0.90 | 2 | 0 of 2 | 400 | 0.0000 ± 0.0000 |'
  assert report.stop_rule_table([{k: v for k, v in r.items() if k != 'stop/agreement'} for r in rows]) == ''


def test_the_class_balance_table_reads_each_runs_last_round():
  def row(strategy, seed, r, counts):
    return {'policy': 'p', 'strategy': strategy, 'seed': seed, 'round': r, 'num_labeled': sum(counts),
            'labels/per_class': counts}
  rows = [row('margin', 0, 0, [5, 5, 5]), row('margin', 0, 1, [2, 10, 18]), row('margin', 1, 1, [4, 12, 14]),
          row('balanced', 0, 1, [9, 10, 11])]
  lines = report.class_balance_table(rows).splitlines()
  # margin: the last rounds' rarest classes 2 and 4 (mean 3, SE 1), most frequent 18 and 14; round 0 is not read.
  assert lines[2] == '| p | balanced | 1 | 30 | 9.0 ± 0.0 | 11.0 ± 0.0 |'
  assert lines[3] == '| p | margin | 2 | 30 | 3.0 ± 1.0 | 16.0 ± 2.0 |'
  assert report.class_balance_table([{k: v for k, v in r.items() if k != 'labels/per_class'} for r in rows]) == ''


def test_a_grid_running_seed_by_seed_is_tabled_over_the_seeds_every_method_finished(tmp_path):
  """The fixed rows of seed 2 finish before the search's: the table stays over seeds 0-1 for every row (paired),
  and names seed 2's finished runs, so committed rows of a seed in progress never move a quoted figure."""
  def rows(policy, seed, accuracies):
    return [{'policy': policy, 'strategy': 'margin', 'seed': seed, 'round': r, 'num_labeled': 10 * (r + 1),
             'test/accuracy': a, 'arch': 'A(1,1)', 'arch/params': 5066, 'arch/depth': 4, 'time/round': 1.0}
            for r, a in enumerate(accuracies)]
  grid = (rows('fixed', 0, [0.5, 0.6]) + rows('fixed', 1, [0.5, 0.7]) + rows('fixed', 2, [0.1, 0.1])
          + rows('search', 0, [0.6, 0.7]) + rows('search', 1, [0.6, 0.8]) + rows('search', 2, [0.6]))
  kept, left_out = report.paired_seeds([r for r in grid if not (r['policy'] == 'search' and r['seed'] == 2)])
  assert left_out == [('fixed', 'margin', 2)] and {r['seed'] for r in kept} == {0, 1}
  summary = report.write_outputs(grid, str(tmp_path), 'grid', 'fixed')
  fixed = next(e for e in summary['methods'] if e['policy'] == 'fixed')
  assert fixed['seeds'] == [0, 1] and fixed['aubc_mean_se'][0] == pytest.approx(0.575)
  assert 'search margin seed 2 (1 of 2 rounds)' in summary['table']
  assert 'left out so that every row is paired: fixed margin seed 2.' in summary['table']
  # Every method on the same seeds (or none in common): the rows as they are.
  assert report.paired_seeds(grid[:4])[1] == [] and report.paired_seeds(rows('a', 0, [1]) + rows('b', 1, [1]))[1] == []
