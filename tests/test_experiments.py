"""End-to-end runs of the commands (`jal.cli`, installed as `jal-*` console scripts) at their smallest configs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, tmp_path):
  return subprocess.run([sys.executable, *args, f'--workdir={tmp_path}'], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)


def test_train_binary_smoke(tmp_path, fashion_mnist):
  del fashion_mnist  # Only to skip when the dataset package is absent.
  completed = _run(['-m', 'jal.cli.train', '--config=train:smoke',
                    '--config.num_seeds=2'], tmp_path)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert 'test accuracy' in completed.stdout
  with open(tmp_path / 'results.jsonl') as f:
    records = [json.loads(line) for line in f]
  assert len(records) == 1
  record = records[0]
  assert record['arch'] == 'A(1,2)' and record['num_labeled'] == 64
  assert len(record['test/accuracy']) == 2
  assert all(0.0 <= a <= 1.0 for a in record['test/accuracy'])
  # Its variables are a pretrained start for an active-learning run of the same architecture and width.
  assert record['variables'] == str(tmp_path / 'variables' / 'A(1,2)_n64_seed0.msgpack')
  from workdirs import smoke_config

  from jal import experiment
  config = smoke_config(**{'model.init_from': record['variables'], 'model.freeze': 'backbone'})
  experiment.run(config, str(tmp_path / 'probe'))
  with open(tmp_path / 'probe' / 'rounds.jsonl') as f:
    rows = [json.loads(line) for line in f]
  assert rows and all(r['train/pretrained'] == 1.0 for r in rows)
  # jal-train itself starts from them too: a linear probe leaves every backbone weight as saved.
  from jal import pretrained
  from jal.configs import train as train_config
  probe = train_config.get_config('smoke')
  probe.model.init_from, probe.model.freeze = record['variables'], 'backbone'
  again = experiment.run_training(probe, str(tmp_path / 'probe_train'))
  before, after = pretrained.load_variables(record['variables']), pretrained.load_variables(again['variables'])
  assert all(np.array_equal(after['params'][k]['kernel'], before['params'][k]['kernel'])
             for k in ('stem_conv',)) and not np.array_equal(after['params']['head']['dense']['kernel'],
                                                             before['params']['head']['dense']['kernel'])


@pytest.mark.parametrize('override, message', [
    ('--config.train.epoch=3', 'epoch'),  # Misspelt: the config is locked.
    ('--config.model.arch=A(0,2)', 'positive int'),
])
def test_train_binary_rejects_bad_config(tmp_path, override, message):
  completed = _run(['-m', 'jal.cli.train', '--config=train:smoke', override],
                   tmp_path)
  assert completed.returncode != 0
  assert message in completed.stderr


def test_active_learning_binary_smoke_and_resumes(tmp_path, fashion_mnist):
  del fashion_mnist
  args = ['-m', 'jal.cli.active_learning', '--config=active_learning:smoke']
  completed = _run(args, tmp_path)
  assert completed.returncode == 0, completed.stderr[-3000:]
  with open(tmp_path / 'rounds.jsonl') as f:
    rows = [json.loads(line) for line in f]
  assert len(rows) == 2 * 2 * 3  # strategies x seeds x rounds (20, 40, 60 labels).
  assert {r['num_labeled'] for r in rows} == {20, 40, 60}
  assert {r['policy'] for r in rows} == {'fixed:A(1,2)'}
  with open(tmp_path / 'summary.json') as f:
    methods = {m['strategy']: m for m in json.load(f)['methods']}
  assert set(methods) == {'random', 'entropy'}
  assert len(methods['entropy']['aubc']) == 2 and 'aubc_minus_random' in methods['entropy']
  for name in ('rounds.csv', 'summary.md', 'learning_curve.png'):
    assert (tmp_path / name).stat().st_size > 0
  assert 'AUBC' in completed.stdout
  # Nothing left: the restart says so and trains nothing.
  again = _run(args, tmp_path)
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'nothing to do' in again.stderr and 'round 0:' not in again.stdout
  # Drop the last run's last row, as if killed after its checkpoint: the row comes back from the checkpoint.
  with open(tmp_path / 'rounds.jsonl', 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in rows[:-1])
  again = _run(args, tmp_path)
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'round 0:' not in again.stdout
  with open(tmp_path / 'rounds.jsonl') as f:
    rerun = [json.loads(line) for line in f]
  key = lambda r: (r['strategy'], r['seed'], r['round'])  # noqa: E731
  assert sorted(rerun, key=key) == sorted(rows, key=key)
  # Another config in the same workdir is refused, naming the field.
  refused = _run([*args, '--config.train.epochs=3'], tmp_path)
  assert refused.returncode != 0
  assert 'train.epochs: 2 -> 3' in refused.stderr


def test_compare_smoke_records_what_each_search_spent(tmp_path, fashion_mnist):
  """`jal-compare` over searches and a fixed architecture, with the fixed one's passive learner (random) for
  AUC-GAIN: paired differences, figures, and what each search spent."""
  del fashion_mnist
  completed = _run(['-m', 'jal.cli.compare', '--config=compare_nas:smoke', '--config.seeds=0',
                    '--config.strategies=least_confidence,random', '--config.skip=inas/random,inas+inherit/random'],
                   tmp_path)
  assert completed.returncode == 0, completed.stderr[-3000:]
  with open(tmp_path / 'summary.json') as f:
    methods = {(m['policy'], m['strategy']): m for m in json.load(f)['methods']}
  assert set(methods) == {('inas', 'least_confidence'), ('inas+inherit', 'least_confidence'),
                          ('fixed:A(1,1)', 'least_confidence'), ('fixed:A(1,1)', 'random')}
  assert set(methods[('inas', 'least_confidence')]['aubc_minus']) == {'fixed:A(1,1)'}
  assert 'auc_gain' in methods[('fixed:A(1,1)', 'least_confidence')]
  for name in ('learning_curves.png', 'architectures.png', 'auc_gain.png', 'summary.md'):
    assert (tmp_path / name).stat().st_size > 0
  summary = (tmp_path / 'summary.md').read_text()
  assert 'What each search spent on candidates per round' in summary
  for policy in ('| inas |', '| inas+inherit |'):
    assert policy in summary
  rows = [json.loads(line) for line in (tmp_path / 'rounds.jsonl').read_text().splitlines()]
  inherited = [r for r in rows if r['policy'] == 'inas+inherit' and r['round'] > 0]
  scratch = [r for r in rows if r['policy'] == 'inas' and r['round'] > 0]
  # Inherited candidates train 1/32 of the schedule, from scratch 1/2 (both floored at one epoch at smoke scale).
  per_candidate = lambda r: r['nas/candidate_steps'] / r['nas/candidates']  # noqa: E731
  assert inherited and all(per_candidate(r) <= per_candidate(s) for r, s in zip(inherited, scratch))
  assert all('compile/events' in r and 'time/compile' in r for r in rows)
  # AUBC against compute: per run, every round model's steps plus the candidates' (0 for the fixed architecture).
  assert 'AUBC against compute per run' in summary and (tmp_path / 'aubc_vs_compute.png').stat().st_size > 0
  fixed_steps = sum(r['train/steps'] for r in rows if r['policy'] == 'fixed:A(1,1)' and r['strategy'] != 'random')
  inas_steps = sum(r['train/steps'] + r['nas/candidate_steps'] for r in rows if r['policy'] == 'inas')
  assert '| fixed:A(1,1) least_confidence | ' in summary and f'| {fixed_steps:,} |' in summary
  assert f'| {inas_steps:,} |' in summary


def test_inheritance_study_smoke(tmp_path, fashion_mnist):
  del fashion_mnist
  completed = _run(['experiments/inas_study.py', '--config=experiments/configs/inheritance_study.py:smoke',
                    '--config.seeds=0'], tmp_path)
  assert completed.returncode == 0, completed.stderr[-3000:]
  summary = (tmp_path / 'summary.md').read_text()
  assert 'Inherited candidates against the from-scratch choice' in summary
  assert '| 0.0625 | 2 |' in summary  # Two rounds with a previous model.


def test_autoal_binary_smoke(tmp_path, fashion_mnist):
  del fashion_mnist
  completed = _run(['-m', 'jal.cli.autoal', '--config=autoal:smoke',
                    '--config.strategies=autoal,entropy', '--config.seeds=0'], tmp_path)
  assert completed.returncode == 0, completed.stderr[-3000:]
  with open(tmp_path / 'summary.json') as f:
    methods = {m['strategy'] for m in json.load(f)['methods']}
  assert methods == {'autoal', 'entropy'}
  assert 'autoal − entropy' in completed.stdout and 'round time: autoal / entropy' in completed.stdout
  with open(tmp_path / 'rounds.jsonl') as f:
    rows = [json.loads(line) for line in f if '"autoal"' in line]
  queried = [r for r in rows if r['query/size']]
  assert queried and all(abs(r['autoal/weight/entropy'] + r['autoal/weight/kmeans'] - 1) < 1e-4 for r in queried)
  for name in ('learning_curve.png', 'strategy_weights.png', 'summary.md'):
    assert (tmp_path / name).stat().st_size > 0


def test_active_learning_binary_rejects_unknown_strategy(tmp_path):
  completed = _run(['-m', 'jal.cli.active_learning', '--config=active_learning:smoke',
                    '--config.strategies=random,entropi'], tmp_path)
  assert completed.returncode != 0
  assert "Unknown query strategy 'entropi'" in completed.stderr


def test_unknown_policy_is_rejected(tmp_path):
  completed = _run(['-m', 'jal.cli.compare', '--config=compare_inas:smoke',
                    "--config.policies=('inas','fixed:B(1,2)')"], tmp_path)
  assert completed.returncode != 0
  assert 'Cannot parse architecture' in completed.stderr


def test_a_config_by_an_unknown_name_lists_the_installed_ones(tmp_path):
  completed = _run(['-m', 'jal.cli.active_learning', '--config=active_lerning:smoke'], tmp_path)
  assert completed.returncode == 2
  assert "Unknown config 'active_lerning'" in completed.stderr and 'active_inas, active_learning' in completed.stderr
