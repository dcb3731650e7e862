"""The accelerator suite (benchmarks/device_suite.py) at its tiny size on the CPU: every section runs and reports,
so the script a device session runs once is known to work before that session starts."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _suite(out, *flags):
  result = subprocess.run([sys.executable, 'benchmarks/device_suite.py', '--tiny', f'--out={out}', *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(out, 'rows.jsonl'), encoding='utf-8') as f:
    rows = [json.loads(line) for line in f]
  with open(os.path.join(out, 'report.md'), encoding='utf-8') as f:
    return rows, f.read()


def test_every_section_of_the_device_suite_runs_and_reports_at_tiny_size(tmp_path):
  rows, report = _suite(tmp_path, '--no_torch')
  assert {r['section'] for r in rows} == {'throughput', 'seeds', 'round', 'inas', 'kernels'}
  throughput = [r for r in rows if r['section'] == 'throughput']
  assert len(throughput) == 1 * 1 * 2  # One architecture, one batch, two precisions.
  assert all(r['jal']['train_ips'] > 0 and r['jal']['infer_ips'] > 0 and r['torch'] is None for r in throughput)
  assert [r['seeds'] for r in rows if r['section'] == 'seeds'] == [2]
  jal_round = next(r for r in rows if r['section'] == 'round')
  assert all(jal_round[k] > 0 for k in ('train', 'score', 'margin', 'coreset', 'badge'))
  for heading in ('## Throughput', '## Seeds', '## One round', '## One iNAS round', '## Query kernels'):
    assert heading in report
  assert 'PyTorch not run' in report


def test_the_suite_runs_pytorch_beside_jal_where_it_is_installed(tmp_path):
  pytest.importorskip('torch')
  rows, report = _suite(tmp_path, '--sections=throughput,round')
  first = next(r for r in rows if r['section'] == 'throughput')
  assert first['torch']['train_ips'] > 0 and ('train_ips' in first['torch_compile'] or 'error' in
                                              first['torch_compile'])
  theirs = next(r for r in rows if r['section'] == 'round' and r['framework'] == 'torch')
  assert all(theirs[k] > 0 for k in ('train', 'score', 'margin', 'coreset', 'badge'))
  assert '| train + score + margin |' in report
