"""Tests for jal.experiment: a comparison grid run from Python (no binary), interrupted and resumed."""

import importlib
import json
import os
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from workdirs import smoke_config

from experiments import inas_studies
from jal import checkpoint, experiment, report


class Interrupted(Exception):
  pass


def _without_times(rows):
  key = lambda r: (r['policy'], r['strategy'], r['seed'], r['round'])  # noqa: E731
  return sorted(({k: v for k, v in r.items() if not k.startswith(('time/', 'compile/'))} for r in rows), key=key)


def _assert_tensorboard_matches_rows(workdir, config):
  """Each round model's per-epoch curve is in its row and in TensorBoard; test accuracy per round against |L|."""
  rows = report.read_rows(f'{workdir}/rounds.jsonl')
  assert all([e['epoch'] for e in r['train/curve']] == list(range(1, config.train.epochs + 1)) for r in rows)
  assert all(r['train/curve'][-1]['train/loss'] == pytest.approx(r['train/loss'], abs=1e-5) for r in rows)
  events = EventAccumulator(f'{workdir}/tensorboard')
  events.Reload()
  for r in rows:
    run = f"{r['policy']} {r['strategy']} seed {r['seed']}"
    loss = events.Scalars(f"{run} / round {r['round']} ({r['num_labeled']} labels) / model {r['arch']}/loss")
    assert [e.value for e in loss] == pytest.approx([e['train/loss'] for e in r['train/curve']], abs=1e-5)
  for strategy, seed in (('entropy', 0), ('random', 1)):
    mine = [r for r in rows if (r['strategy'], r['seed']) == (strategy, seed)]
    accuracy = events.Scalars(f"{mine[0]['policy']}/{strategy}/seed{seed}/test/accuracy")
    assert [(e.step, e.value) for e in accuracy] == [(r['num_labeled'], pytest.approx(r['test/accuracy']))
                                                     for r in mine]


def test_a_two_seed_grid_from_python_resumes_after_an_interruption(tmp_path, fashion_mnist):
  del fashion_mnist
  config = smoke_config(strategies='entropy,random', seeds=(0, 1))
  config.tensorboard = True  # Output only: the workdirs below, written without it, must hold the same rows.
  straight = experiment.run(config, str(tmp_path / 'a'))
  assert {(m['strategy'], tuple(m['seeds'])) for m in straight['methods']} == {('entropy', (0, 1)),
                                                                                 ('random', (0, 1))}
  _assert_tensorboard_matches_rows(str(tmp_path / 'a'), config)
  config.tensorboard = False

  seen = []

  def stop_after_four_rounds(row):
    seen.append(row)
    if len(seen) == 4:  # Seed 0 of entropy complete, seed 1 one round in.
      raise Interrupted()

  with pytest.raises(Interrupted):
    experiment.run(config, str(tmp_path / 'b'), on_row=stop_after_four_rounds)
  assert len(report.read_rows(str(tmp_path / 'b' / 'rounds.jsonl'))) == 4
  resumed_rows = []
  resumed = experiment.run(config, str(tmp_path / 'b'), on_row=resumed_rows.append)
  # Only what was left ran: seed 1 of entropy from its second round, then random.
  assert [(r['strategy'], r['seed'], r['round']) for r in resumed_rows] == [
      ('entropy', 1, 1), ('entropy', 1, 2), ('random', 0, 0), ('random', 0, 1), ('random', 0, 2),
      ('random', 1, 0), ('random', 1, 1), ('random', 1, 2)]
  rows = report.read_rows(str(tmp_path / 'b' / 'rounds.jsonl'))
  assert _without_times(rows) == _without_times(report.read_rows(str(tmp_path / 'a' / 'rounds.jsonl')))
  assert json.dumps(resumed['methods']) == json.dumps(straight['methods'])

  # The same grid as parts on other processes (jal-run-parts): seed 1 run alone, seed 0's rows from the
  # first grid; merged, they are the whole grid's rows and summary.
  part1 = experiment.run(smoke_config(strategies='entropy,random', seeds=(1,)), str(tmp_path / 'part1'))
  assert {tuple(m['seeds']) for m in part1['methods']} == {(1,)}
  part0 = tmp_path / 'part0'
  part0.mkdir()
  (part0 / 'config.json').write_text((tmp_path / 'a' / 'config.json').read_text())
  (part0 / 'rounds.jsonl').write_text(''.join(
      json.dumps(r) + '\n' for r in report.read_rows(str(tmp_path / 'a' / 'rounds.jsonl')) if r['seed'] == 0))
  merged = experiment.merge_workdirs([str(part0), str(tmp_path / 'part1')], str(tmp_path / 'merged'), config)
  assert _without_times(report.read_rows(str(tmp_path / 'merged' / 'rounds.jsonl'))) == _without_times(rows)
  assert [m['aubc_mean_se'] for m in merged['methods']] == [m['aubc_mean_se'] for m in straight['methods']]
  assert json.loads((tmp_path / 'merged' / 'grid.json').read_text())['seeds'] == [0, 1]
  # A seed run again alone into the grid (jal-run-parts --config.seeds=1): the grid keeps seed 0 and its report.
  again = experiment.merge_workdirs([str(tmp_path / 'part1')], str(tmp_path / 'merged'),
                                    smoke_config(strategies='entropy,random', seeds=(1,)))
  assert json.loads((tmp_path / 'merged' / 'grid.json').read_text())['seeds'] == [0, 1]
  assert [m['aubc_mean_se'] for m in again['methods']] == [m['aubc_mean_se'] for m in straight['methods']]
  # Committed rows of a finished seed (no checkpoints on a fresh clone) make run_parts skip that part.
  merged_rows = report.read_rows(str(tmp_path / 'merged' / 'rounds.jsonl'))
  assert experiment.complete(config, merged_rows, 0) and experiment.complete(config, merged_rows, 1, 'fixed:A(1,2)')
  assert not experiment.complete(config, [r for r in merged_rows if r['round'] < 2], 0)
  assert not experiment.complete(config, merged_rows, 2)
  sessions = [json.loads(line) for line in (tmp_path / 'merged' / 'sessions.jsonl').read_text().splitlines()]
  assert [s['backend'] for s in sessions] == ['cpu']  # part0 was written by hand: only part1 recorded a session.
  # Which machine made the rows: two CPU machines need not agree bit for bit.
  assert sessions[0]['cpu'] and 'cpu_vector' in sessions[0]
  assert sessions[0]['packages']['jaxlib'] and sessions[0]['packages']['flax']


def _part(directory, config, runs):
  """A workdir as a part leaves it: config.json and one row per (policy, strategy, seed, round)."""
  directory.mkdir()
  experiment.check_workdir_config(config, str(directory))
  (directory / 'rounds.jsonl').write_text(''.join(
      json.dumps({'policy': p, 'strategy': s, 'seed': seed, 'round': r, 'num_labeled': 20 * (r + 1),
                  'test/accuracy': 0.5, 'arch': 'A(1,2)', 'arch/params': 1, 'arch/depth': 4}) + '\n'
      for p, s, seed, r in runs))
  return str(directory)


def test_merging_parts_refuses_overlaps_and_other_settings_but_not_another_data_location(tmp_path):
  config = smoke_config(seeds=(0, 1))
  run0 = [('fixed:A(1,2)', 'entropy', 0, r) for r in range(2)]
  part0 = _part(tmp_path / 'p0', config, run0)
  again = _part(tmp_path / 'again', config, run0[:1])
  with pytest.raises(checkpoint.CheckpointError, match='both hold rows of the run'):
    experiment.merge_workdirs([part0, again], str(tmp_path / 'into'), config)
  other = smoke_config(seeds=(1,), **{'train.epochs': 3})
  with pytest.raises(checkpoint.CheckpointError, match=r'train\.epochs: 2 -> 3|train\.epochs: 3 -> 2'):
    experiment.merge_workdirs([part0, _part(tmp_path / 'p1', other, [])], str(tmp_path / 'into'), config)
  assert not (tmp_path / 'into' / 'rounds.jsonl').exists()
  # Merging again as parts progress: a run `into` holds more rounds of stays as it is.
  experiment.merge_workdirs([part0], str(tmp_path / 'into'), config)
  experiment.merge_workdirs([again], str(tmp_path / 'into'), config)
  assert len(report.read_rows(str(tmp_path / 'into' / 'rounds.jsonl'))) == 2
  # Where the data lives is not what a run is: parts from a machine with the IDX files elsewhere merge.
  moved = smoke_config(seeds=(1,), **{'data.data_dir': '/elsewhere'})
  assert checkpoint.config_differences(experiment.run_config(moved), experiment.run_config(config)) == []
  # A grid written before a field existed resumes when the field holds the value that reproduces the old code.
  older = experiment.run_config(config)
  del older['warm_start']
  assert checkpoint.config_differences(older, experiment.run_config(config)) == []
  warm = smoke_config(seeds=(0,), warm_start=True)
  assert checkpoint.config_differences(older, experiment.run_config(warm)) == ["warm_start: '<absent>' -> True"]


def test_config_lists_accept_tuples_and_flag_strings():
  assert experiment.names(('inas', 'fixed:A(1,2)')) == ('inas', 'fixed:A(1,2)')
  assert experiment.names('inas,fixed:A(1,2)') == ('inas', 'fixed:A(1,2)')
  assert experiment.names(('entropy,margin',)) == ('entropy', 'margin')
  assert experiment.names((0, 1)) == ('0', '1')


@pytest.mark.parametrize('name', ['active_inas', 'active_learning', 'compare_inas'])
def test_paper_configs_are_the_published_active_inas_protocol(name):
  """SPEC §2-3 field by field: no CPU-scale choice of a binary's config survives ':paper'."""
  config = importlib.import_module(f'jal.configs.{name}').get_config('paper')
  assert config.data.name == 'cifar10' and config.data.pool_size == 0 and config.data.test_size == 0
  assert (config.budget.initial, config.budget.per_round, config.budget.total) == (2000, 2000, 50_000)
  assert (config.budget.grown_per_round, config.budget.grow_after) == (5000, 10_000)
  assert config.model.width == 64 and config.model.mc_dropout_rate == 0.5 and config.model.mc_passes == 100
  train = experiment.train_config(config.train)
  assert (train.epochs, train.examples_per_epoch, train.batch_size) == (200, 50_000, 128)
  assert (train.learning_rate, train.momentum, train.nesterov, train.weight_decay) == (0.1, 0.9, True, 5e-4)
  assert (train.lr_boundaries, train.lr_decay) == ((0.5, 0.75), 0.1)
  assert (train.augment.flip, train.augment.shift, train.augment.rotation) == (True, 4, 15.0)
  search = experiment.inas_config(config.inas)
  assert (search.max_steps, search.validation_fraction, search.candidate_fraction) == (1, 0.2, 0.25)
  assert (search.schedule, search.score, search.num_seeds) == ('truncated', 'best', 1)
  assert (search.space.max_blocks, search.space.max_stacks) == (12, 5)


@pytest.fixture
def study_policies(monkeypatch):
  """The study policies registered for one test only: the registry is global, and other tests list it."""
  monkeypatch.setattr(experiment, 'POLICIES', dict(experiment.POLICIES))
  inas_studies.register()


@pytest.mark.usefixtures('study_policies')
def test_the_inas_study_policy_records_v_prime_and_held_out_errors_per_seed(tmp_path, fashion_mnist):
  del fashion_mnist
  config = smoke_config(policies='inas_study', seeds=(0,), study_seeds=2, **{'data.validation_size': 60})
  summary = experiment.run(config, str(tmp_path))
  rows = report.read_rows(str(tmp_path / 'rounds.jsonl'))
  assert len(rows) == 3 and all(r['policy'] == 'inas_study' for r in rows)
  first = rows[0]
  for arch in ('A(1,1)', 'A(2,1)', 'A(1,2)'):  # Round 0's candidates, two seeds each, three errors each.
    for seed in (0, 1):
      for key in ('val_best', 'val_final', 'holdout'):
        assert 0.0 <= first[f'study/{arch}/{seed}/{key}'] <= 1.0
    assert first[f'study/{arch}/0/val_best'] <= first[f'study/{arch}/0/val_final']
    assert first[f'study/{arch}/num_validation'] == 4  # 20% of 20 labels.
  # iNAS's choice is seed 0's best V' error.
  assert first['nas/step0/A(1,2)'] == pytest.approx(first['study/A(1,2)/0/val_best'])
  assert "held-out error" in summary['table'] and 'choice changes with the seed' in summary['table']


@pytest.mark.usefixtures('study_policies')
def test_inas_study_without_a_held_out_split_is_refused(tmp_path):
  with pytest.raises(ValueError, match='validation_size'):
    experiment.run(smoke_config(policies='inas_study'), str(tmp_path))
  with pytest.raises(ValueError, match='validation_size'):
    experiment.run(smoke_config(policies='heldout_best'), str(tmp_path))


@pytest.mark.usefixtures('study_policies')
def test_the_held_out_upper_bound_keeps_the_neighbour_with_the_lowest_held_out_error(tmp_path, fashion_mnist):
  del fashion_mnist
  config = smoke_config(policies='heldout_best', **{'data.validation_size': 60})
  experiment.run(config, str(tmp_path))
  rows = report.read_rows(str(tmp_path / 'rounds.jsonl'))
  assert len(rows) == 3
  current = 'A(1,1)'
  for row in rows:
    errors = {k.removeprefix('nas/heldout/'): v for k, v in row.items() if k.startswith('nas/heldout/')}
    # The current architecture and its neighbours in the smoke space (at most 2 blocks, 2 stacks).
    assert current in errors and len(errors) >= 2 and all(0.0 <= e <= 1.0 for e in errors.values())
    assert row['nas/chosen'] == row['arch'] and errors[row['arch']] == min(errors.values())
    assert row['nas/decision'] == ('stay' if row['arch'] == current else 'move')
    assert row['nas/validation_size'] == 60
    current = row['arch']


def test_policy_specs_name_searches_and_their_options(monkeypatch):
  from jal import inas as inas_lib
  from jal import nas as nas_lib
  seen = {}
  monkeypatch.setattr(inas_lib, 'inas_policy', lambda config: seen.setdefault('inas', config))
  monkeypatch.setattr(nas_lib, 'evolution_policy', lambda config, *args: seen.setdefault('evolution', (config, args)))
  base = experiment.inas_config(experiment.base_config().inas)
  experiment.make_policy('inas+inherit', base)
  assert seen['inas'].inherit == 'round_model' and seen['inas'].choose == 'error'
  seen.clear()
  experiment.make_policy('inas+lineage', base)
  assert seen['inas'].inherit == 'lineage'
  seen.clear()
  experiment.make_policy('inas', base)
  assert seen['inas'].inherit == 'none'
  experiment.make_policy('evolution+inherit+pareto', base)
  config, args = seen['evolution']
  assert config.inherit == 'round_model' and config.choose == 'pareto' and args == (3, 3, 2)
  for spec, message in (('fixed:A(1,2)+inherit', 'apply to searches'), ('inas+warp', 'options are'),
                        ('inas+inherit+lineage', 'one of them'),
                        ('hill', 'Unknown architecture policy')):
    with pytest.raises(ValueError, match=message):
      experiment.make_policy(spec, base)


def test_the_safe_grid_config_names_three_datasets_and_registers_its_upper_bound(monkeypatch):
  import importlib.util
  studies = ('inas_study', 'inheritance_study', 'heldout_best', 'safe_2x025', 'safe_from_a24')
  monkeypatch.setattr(experiment, 'POLICIES', {k: v for k, v in experiment.POLICIES.items() if k not in studies})
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'experiments', 'configs',
                      'safe_grid.py')
  spec = importlib.util.spec_from_file_location('safe_grid', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  full, small, tailed = (module.get_config(arg) for arg in ('', 'small', 'imbalanced'))
  assert 'heldout_best' in experiment.POLICIES  # Any runner that loads the config can run the upper bound.
  # The cheaper safe row: the safe search itself, with 2 folds at a quarter of the round's schedule.
  from jal import inas, nas
  seen = {}
  monkeypatch.setattr(nas, 'safe_policy', lambda *args: seen.setdefault('args', args))
  experiment.POLICIES['safe_2x025'](inas.INASConfig(), small, None)
  assert seen['args'][1:] == (2, 2.0, 'probability', 0.25) and 'safe_2x025' in small.policies
  assert 'safe_2x025' not in full.policies and 'safe_2x025' not in tailed.policies  # It broke the bound at 8x8.
  # The safe search from ResNet-18: the grid's settings, its start A(2,4); a row where the input allows A(2,4).
  monkeypatch.setattr(nas, 'safe_policy', lambda *args, **kwargs: seen.update(args=args, kwargs=kwargs))
  experiment.POLICIES['safe_from_a24'](inas.INASConfig(), full, None)
  assert seen['args'][1:] == (3, 2.0, 'probability', None) and str(seen['kwargs']['start']) == 'A(2,4)'
  assert 'safe_from_a24' in full.policies and 'safe_from_a24' in tailed.policies
  assert 'safe_from_a24' not in small.policies
  assert (full.model.cpu_fusions, small.model.cpu_fusions, tailed.model.cpu_fusions) == ('default', 'default', 'auto')
  assert 'fixed:A(2,4)' in full.policies and 'fixed:A(2,4)' not in small.policies  # No 2x2 map for it at 8x8.
  assert (small.data.image_size, tailed.data.imbalance, full.data.validation_size) == (8, 10.0, 2000)
  assert tuple(full.seeds) == (0, 1, 2, 3, 4)
  with pytest.raises(ValueError, match='Unknown dataset'):
    module.get_config('cifar')


def test_the_safe_grid_config_loads_outside_the_repository_root(tmp_path):
  # A console script (jal-run-parts) finds neither the repository root's packages nor experiments/ on its path.
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'experiments', 'configs',
                      'safe_grid.py')
  code = (f'import importlib.util; spec = importlib.util.spec_from_file_location("safe_grid", {path!r}); '
          'module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); '
          'print(module.get_config("small").data.image_size)')
  result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split()[-1] == '8'


def test_each_autoal_ablation_changes_only_the_settings_it_names():
  from jal.configs import autoal as autoal_config
  from jal.configs import autoal_ablation
  base = autoal_config.get_config('three').autoal.to_dict()
  for name, changed in autoal_ablation.ABLATIONS.items():
    config = autoal_ablation.get_config(name)
    assert tuple(config.strategies) == ('autoal',)
    fields = config.autoal.to_dict()
    assert {k for k in base if fields[k] != base[k]} == {k for k in changed if changed[k] != base[k]}, name
    experiment.autoal_config(config.autoal)  # The variant is a valid AutoALConfig.
  assert autoal_ablation.get_config('loss_prediction_only').autoal.informativeness_weight == 0.0
  with pytest.raises(ValueError, match='Unknown ablation'):
    autoal_ablation.get_config('nope')


def test_the_practitioner_grids_differ_from_each_other_in_what_they_measure(tmp_path):
  import importlib.util
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'experiments', 'configs',
                      'practitioner_grids.py')
  spec = importlib.util.spec_from_file_location('practitioner_grids', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  balanced, learning_loss = module.get_config('balanced'), module.get_config('learning_loss')
  assert balanced.data.imbalance == 10.0 and 'margin+balanced' in balanced.strategies
  assert learning_loss.model.loss_prediction and learning_loss.strategies[:2] == ('learning_loss',
                                                                                  'learning_loss+balanced')
  with pytest.raises(ValueError, match='Unknown grid'):
    module.get_config('cifar')
