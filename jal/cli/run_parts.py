r"""Runs a grid as parallel parts (one process per seed, or per policy and seed) and merges their rows.

  jal-run-parts --config=compare_inas --workdir=workdir/compare_inas --split=policies,seeds --jobs=4

Each part is the config with one seed (and one policy) in its own workdir, workdir/parts/<part>/, logging to
workdir/parts/<part>.log; at most --jobs run at once. When they end (or on Ctrl-C / SIGTERM, which stops them),
`jal.experiment.merge_workdirs` merges every part's rows into workdir and writes its report, finished or not. Run
the same command again to resume: each part resumes from its checkpoints, and a part whose runs the merged
rounds.jsonl already holds whole (committed rows, a fresh clone without the parts' checkpoints) is skipped. On
one GPU the parts share the device (children run with XLA_PYTHON_CLIENT_PREALLOCATE=false unless you set it); on
CPUs, use about one job per two cores. Parts may also run on other machines: copy their folders under
workdir/parts/ and run with --jobs=0 to merge only.
"""

import os
import signal
import subprocess
import sys
import time

from absl import app, flags

from jal import experiment, report
from jal.cli import launch

_CONFIG = launch.define_config(None, "The grid's config: NAME[:arg] of jal.configs or path.py[:arg].")
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for the merged results; parts go under parts/.',
                               required=True)
_SPLIT = flags.DEFINE_enum('split', 'seeds', ['seeds', 'policies,seeds'], 'What one part holds one of.')
_JOBS = flags.DEFINE_integer('jobs', 2, 'Parts running at once (0: merge the parts already there, run nothing).')
_PART = flags.DEFINE_bool('part', False, 'Internal: run one part (the grid of --config in --workdir).')
_LABELS = flags.DEFINE_string('labels', None, 'Unused: human-labelled sessions run one part, without this tool.')


def _parts(config) -> list[tuple[str, list[str], int, str | None]]:
  """(name, extra flags, seed, policy or None) of every part of the grid."""
  seeds = [int(s) for s in experiment.names(config.seeds)]
  policies = experiment.names(config.policies) if _SPLIT.value == 'policies,seeds' else [None]
  parts = []
  for seed in seeds:  # Seed-major: with fewer jobs than parts, whole paired seeds finish first.
    for policy in policies:
      name = f'seed{seed}' if policy is None else f"{policy.replace(':', '_').replace(',', '_')}_seed{seed}"
      extra = [f'--config.seeds=({seed},)']
      if policy is not None:
        extra.append(f"--config.policies=('{policy}',)")
      parts.append((name.replace('(', '').replace(')', ''), extra, seed, policy))
  return parts


def _forwarded_flags() -> list[str]:
  """This command's --config flags, less the grid fields each part sets itself."""
  return [a for a in sys.argv[1:] if a.startswith('--config') and not a.startswith(('--config.seeds',
                                                                                       '--config.policies'))]


def _main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _PART.value:
    return launch.main_for(_CONFIG, _WORKDIR, _LABELS)(argv)
  config = _CONFIG.value
  if config.get('oracle', 'simulated') != 'simulated':
    raise app.UsageError('A human-labelled session runs one policy, strategy and seed: use its binary directly.')
  parts = _parts(config)
  parts_dir = os.path.join(_WORKDIR.value, 'parts')
  os.makedirs(parts_dir, exist_ok=True)
  env = dict(os.environ)
  env.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')  # Several processes share one accelerator.
  # Parts whose runs the merged rows already hold whole (committed rows, on a machine without the parts'
  # checkpoints) are not run again.
  merged = report.read_rows(os.path.join(_WORKDIR.value, 'rounds.jsonl'))
  finished = [p for p in parts if not os.path.isdir(os.path.join(parts_dir, p[0]))
              and experiment.complete(config, merged, p[2], p[3])]
  for name, *_ in finished:
    print(f'{name}: complete in {_WORKDIR.value}/rounds.jsonl, not run again', flush=True)
  pending = [p for p in parts if p not in finished] if _JOBS.value > 0 else []
  running, failed = {}, []
  stop = []
  signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
  try:
    while (pending or running) and not stop:
      while pending and len(running) < _JOBS.value:
        name, extra, *_ = pending.pop(0)
        log = open(os.path.join(parts_dir, name + '.log'), 'a', encoding='utf-8')  # noqa: SIM115
        command = [sys.executable, '-m', 'jal.cli.run_parts', '--part', *_forwarded_flags(), *extra,
                   f'--workdir={os.path.join(parts_dir, name)}']
        running[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log)
        print(f'started {name}', flush=True)
      for name, (process, log) in list(running.items()):
        if process.poll() is not None:
          log.close()
          del running[name]
          print(f'{name}: {"done" if process.returncode == 0 else f"failed (exit {process.returncode})"}',
                flush=True)
          if process.returncode != 0:
            failed.append(name)
      time.sleep(1)
  except KeyboardInterrupt:
    stop.append(True)
  for name, (process, log) in running.items():  # Stopped: the parts keep their checkpoints and finished rows.
    process.terminate()
    process.wait()
    log.close()
    print(f'{name}: stopped', flush=True)
  done = [os.path.join(parts_dir, name) for name, *_ in _parts(config)
          if os.path.exists(os.path.join(parts_dir, name, 'config.json'))]
  summary = experiment.merge_workdirs(done, _WORKDIR.value, config)
  print(summary['table'])
  if failed or running or stop:
    print(f'Not finished: {", ".join(failed + list(running)) or "stopped"}; see {parts_dir}/<part>.log, and run '
          'the same command again to resume.', file=sys.stderr)
    sys.exit(1)


def main():
  launch.run(_main)


if __name__ == '__main__':
  main()
