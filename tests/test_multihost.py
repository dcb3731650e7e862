"""Several processes (jax.distributed) on one machine: two CPU processes over the loopback address, one device each,
run the active-learning binary as one job. Same rows as one process with two devices (the same global batch and
mesh), and only process 0 writes the workdir."""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = [sys.executable, '-m', 'jal.cli.active_learning', '--config=active_learning:smoke',
           '--config.strategies=entropy', '--config.seeds=0', '--compilation_cache=']


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _rows(workdir):
  with open(os.path.join(workdir, 'rounds.jsonl'), encoding='utf-8') as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if not k.startswith(('time/', 'compile/'))} for r in rows]


@pytest.mark.usefixtures('fashion_mnist')
def test_two_processes_compute_what_one_process_with_two_devices_does(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  port = _free_port()
  processes = [subprocess.Popen(
      [*COMMAND, f'--workdir={tmp_path / "two"}', f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
       f'--process_id={i}'], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)]
  outputs = []
  for process in processes:
    try:
      outputs.append(process.communicate(timeout=300)[0])
    except subprocess.TimeoutExpired:
      for p in processes:
        p.kill()
      raise
  assert [p.returncode for p in processes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
  single = subprocess.run([*COMMAND, f'--workdir={tmp_path / "one"}'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**env, 'XLA_FLAGS': '--xla_force_host_platform_device_count=2'})
  assert single.returncode == 0, single.stderr[-3000:]

  two, one = _rows(tmp_path / 'two'), _rows(tmp_path / 'one')
  assert len(two) == 3 and two == one  # Losses, curves, accuracies and queries, bit for bit.
  assert 'entropy' in outputs[0] and 'final test accuracy' in outputs[0]  # Process 0 prints the tables...
  assert 'final test accuracy' not in outputs[1]  # ...process 1 computes and stays quiet.
  with open(tmp_path / 'two' / 'sessions.jsonl', encoding='utf-8') as f:
    sessions = [json.loads(line) for line in f]
  assert [(s['process_count'], s['device_count']) for s in sessions] == [(2, 2)]  # One writer.
