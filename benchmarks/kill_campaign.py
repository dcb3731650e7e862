r"""Kills the active-iNAS binary at random moments, restarts it each time, and checks the end against a clean run.

  python benchmarks/kill_campaign.py --kills=10 --seed=0 --workdir=/tmp/kill_campaign

Runs `jal-active-inas` at its smoke config (one seed, three rounds, iNAS over a 2 x 2 grid) once
uninterrupted, then again with a SIGKILL after a random delay (uniform in [min_delay, max_delay] seconds of the
process's life) and restarts it until it finishes; again in fresh workdirs until `kills` kills are done. Every
killed and restarted workdir must end with the same rows (without timings) and the same final parameters (read
back with plain Orbax) as the clean one.
JAX's persistent compilation cache keeps restarts short. Prints one line per kill and a verdict; exit status 1 if
anything differs.
"""

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = [sys.executable, '-m', 'jal.cli.active_inas', '--config=active_inas:smoke',
           '--config.seeds=0']


def _start(workdir, cache):
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  return subprocess.Popen([*COMMAND, f'--workdir={workdir}'], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


def _outcome(workdir):
  """(rows without timings, sha256 of the final model's parameters) of a finished workdir."""
  import numpy as np
  import orbax.checkpoint as ocp

  with open(os.path.join(workdir, 'rounds.jsonl'), encoding='utf-8') as f:
    rows = sorted((json.loads(line) for line in f if line.strip()), key=lambda r: (r['seed'], r['round']))
  rows = [{k: v for k, v in r.items() if not k.startswith('time/')} for r in rows]
  (run,) = os.listdir(os.path.join(workdir, 'checkpoints'))
  run_dir = os.path.join(workdir, 'checkpoints', run)
  step = max(int(name) for name in os.listdir(run_dir) if name.isdigit())
  arrays = ocp.StandardCheckpointer().restore(os.path.join(run_dir, str(step), 'arrays'))
  params = arrays['state']['train_state']['params']
  leaves = [np.asarray(leaf) for leaf in _leaves(params)]
  return rows, hashlib.sha256(b''.join(leaf.tobytes() for leaf in leaves)).hexdigest()


def _leaves(tree):
  if isinstance(tree, dict):
    for key in sorted(tree):
      yield from _leaves(tree[key])
  else:
    yield tree


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--kills', type=int, default=10)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--min_delay', type=float, default=3.0)
  parser.add_argument('--max_delay', type=float, default=10.0)
  parser.add_argument('--workdir', default='/tmp/jal_kill_campaign')
  args = parser.parse_args()
  rng = random.Random(args.seed)
  cache = os.path.join(args.workdir, 'jax_cache')
  clean = os.path.join(args.workdir, 'clean')
  if os.path.exists(args.workdir):
    sys.exit(f'{args.workdir} exists: use a fresh --workdir.')
  start = time.perf_counter()
  process = _start(clean, cache)
  if process.wait() != 0:
    sys.exit(f'The clean run failed:\n{process.stderr.read()[-3000:]}')
  print(f'clean run: {time.perf_counter() - start:.0f} s', flush=True)

  kills = restarts = attempts = 0
  failures = []
  while kills < args.kills:  # Workdirs killed until they finish, each compared with the clean run.
    killed = os.path.join(args.workdir, f'killed_{attempts}')
    attempts += 1
    while True:
      process = _start(killed, cache)
      restarts += 1
      delay = rng.uniform(args.min_delay, args.max_delay)
      try:
        process.wait(timeout=delay)
      except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        print(f'{os.path.basename(killed)}: kill {kills} after {delay:.1f} s, latest checkpoint step '
              f'{_latest_step(killed)}', flush=True)
        continue
      if process.returncode != 0:
        print(f'FAILED: start {restarts} exited {process.returncode}:\n{process.stderr.read()[-3000:]}')
        sys.exit(1)
      break
    same_rows, same_params = (a == b for a, b in zip(_outcome(clean), _outcome(killed)))
    print(f'{os.path.basename(killed)} finished: rows {"same" if same_rows else "DIFFER"}, final parameters '
          f'{"same" if same_params else "DIFFER"}', flush=True)
    if not (same_rows and same_params):
      failures.append(killed)
  verdict = 'identical' if not failures else f'DIFFERENT in {failures}'
  print(f'{kills} kills over {attempts} killed runs ({restarts} starts), {time.perf_counter() - start:.0f} s: every '
        f'run ended {verdict} to the uninterrupted one.' if not failures else f'{kills} kills: {verdict}')
  sys.exit(1 if failures else 0)


def _latest_step(workdir):
  root = os.path.join(workdir, 'checkpoints')
  steps = [int(n) for r in (os.listdir(root) if os.path.isdir(root) else []) for n in os.listdir(os.path.join(root, r))
           if n.isdigit()]
  return max(steps, default=None)


if __name__ == '__main__':
  main()
