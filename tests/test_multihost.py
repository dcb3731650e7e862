"""Several processes (jax.distributed) on one machine: two CPU processes over the loopback address, one device each,
run the active-learning binary as one job. Each process reads and scores its half of the pool
(`jal.predict.process_share`), the selection sees every score; same rows and picks as one process with two devices
(the same global batch and mesh), and only process 0 writes the workdir."""

import json
import os
import socket
import subprocess
import sys

import pytest

from jal.predict import process_share

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


@pytest.mark.parametrize('num_images, processes', [(10, 2), (11, 2), (1_000_003, 4), (3, 4)])
def test_process_shares_tile_the_pool(num_images, processes):
  shares = [process_share(num_images, p, processes) for p in range(processes)]
  assert shares[0][0] == 0 and shares[-1][1] == num_images
  assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
  assert max(b - a for a, b in shares) - min(b - a for a, b in shares) <= 1
