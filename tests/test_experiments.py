"""End-to-end runs of the binaries at their smallest configs."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, tmp_path):
  return subprocess.run([sys.executable, *args, f'--workdir={tmp_path}'], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)


def test_train_binary_smoke(tmp_path, fashion_mnist):
  del fashion_mnist  # Only to skip when the dataset package is absent.
  completed = _run(['experiments/train.py', '--config=experiments/configs/train.py:smoke',
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


@pytest.mark.parametrize('override, message', [
    ('--config.train.epoch=3', 'epoch'),  # Misspelt: the config is locked.
    ('--config.model.arch=A(0,2)', 'positive int'),
])
def test_train_binary_rejects_bad_config(tmp_path, override, message):
  completed = _run(['experiments/train.py', '--config=experiments/configs/train.py:smoke', override],
                   tmp_path)
  assert completed.returncode != 0
  assert message in completed.stderr


def test_active_learning_binary_smoke_and_skips_finished_runs(tmp_path, fashion_mnist):
  del fashion_mnist
  args = ['experiments/active_learning.py', '--config=experiments/configs/active_learning.py:smoke']
  completed = _run(args, tmp_path)
  assert completed.returncode == 0, completed.stderr[-3000:]
  with open(tmp_path / 'rounds.jsonl') as f:
    rows = [json.loads(line) for line in f]
  assert len(rows) == 2 * 2 * 3  # strategies x seeds x rounds (20, 40, 60 labels).
  assert {r['num_labeled'] for r in rows} == {20, 40, 60}
  with open(tmp_path / 'summary.json') as f:
    summary = json.load(f)['strategies']
  assert set(summary) == {'random', 'entropy'}
  assert len(summary['entropy']['aubc']) == 2 and 'aubc_minus_random' in summary['entropy']
  for name in ('rounds.csv', 'summary.md', 'learning_curve.png'):
    assert (tmp_path / name).stat().st_size > 0
  assert 'AUBC' in completed.stdout
  # A restart with the same workdir has nothing left to run.
  again = _run(args, tmp_path)
  assert again.returncode == 0
  assert again.stderr.count('already complete') == 4
  with open(tmp_path / 'rounds.jsonl') as f:
    assert len(f.readlines()) == 12


def test_active_learning_binary_rejects_unknown_strategy(tmp_path):
  completed = _run(['experiments/active_learning.py', '--config=experiments/configs/active_learning.py:smoke',
                    '--config.strategies=random,entropi'], tmp_path)
  assert completed.returncode != 0
  assert "Unknown query strategy 'entropi'" in completed.stderr
