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
