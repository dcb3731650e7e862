"""What jal's commands share: flags -> config -> `jal.experiment.run` -> printed tables.

`jal/cli` is the face of the package, its only part that reads absl flags: each module is a console script
(`jal-active-inas`, ...; pyproject.toml lists them) and makes one library call, which a notebook can make too.
"""

import logging as std_logging
import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jal import checkpoint, configs, experiment, oracle, report


def define_config(default: str | None, help_string: str = 'Config: NAME[:arg] of jal.configs or path.py[:arg].'):
  """--config (locked: a misspelt override is an error), by name (`jal.configs`) or path, default `default`."""
  return config_flags.DEFINE_config_file('config', configs.path(default) if default else None, help_string,
                                         lock_config=True)


def define_flags(default_config: str):
  """--config (default: the installed config `default_config`), --workdir and --labels."""
  config = define_config(default_config)
  workdir = flags.DEFINE_string('workdir', None, 'Directory for results.', required=True)
  labels = flags.DEFINE_string(
      'labels', None, 'With --config.oracle=human: a CSV of item_id,label answering the pending query (see '
      'queries/round_<r>/labels_template.csv in the workdir).')
  return config, workdir, labels


_CACHE = flags.DEFINE_string(
    'compilation_cache', os.path.join('~', '.cache', 'jal', 'xla'),
    "JAX's persistent compilation cache: a rerun, a resumed grid or another seed skips compiling (most of a small "
    "model's first round). '' turns it off; JAX_COMPILATION_CACHE_DIR, when set, wins.")


def use_compilation_cache() -> None:
  """Points JAX's persistent compilation cache at --compilation_cache (unless JAX_COMPILATION_CACHE_DIR is set)."""
  if os.environ.get('JAX_COMPILATION_CACHE_DIR') or not _CACHE.value:
    return
  jax.config.update('jax_compilation_cache_dir', os.path.expanduser(_CACHE.value))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'Several processes (hosts): host:port of process 0, the same on every process; '
    'with --num_processes and --process_id. Every process runs the same command and computes the same rounds '
    'over one mesh of all their devices; process 0 alone writes the workdir (a path every host sees).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Several processes: how many (with '
                                      '--coordinator_address).')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'Several processes: this one\'s index, 0 .. num_processes-1.')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False, "jax.distributed.initialize() from the cluster's own settings (Cloud TPU pods, SLURM, "
    'Kubernetes), without the three flags above.')


def init_distributed() -> None:
  """Joins the processes of a multi-host run (`jax.distributed`) when the flags ask for it; CPU processes talk
  through gloo (JAX's CPU collectives), accelerators through their own."""
  if not (_DISTRIBUTED.value or _COORDINATOR.value):
    return
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  logging.info('Process %d of %d; devices: %d here, %d in all.', jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


def _config_by_name(argv: list[str]) -> list[str]:
  """argv with `--config=NAME[:arg]` (or `--config NAME[:arg]`) made the installed config's path."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith('--config='):
      out[i] = '--config=' + configs.path(arg[len('--config='):])
    elif arg == '--config' and i + 1 < len(out):
      out[i + 1] = configs.path(out[i + 1])
  return out


def _parse_flags(argv: list[str]):
  try:
    argv = _config_by_name(argv)
  except ValueError as error:
    print(f'error: {error}', file=sys.stderr, flush=True)
    sys.exit(2)
  return app.parse_flags_with_usage(argv)


def run(main) -> None:
  """`absl.app.run(main)`, with `--config` by name (`jal.configs`) as well as by path."""
  app.run(main, flags_parser=_parse_flags)


def _quiet_orbax(record) -> bool:
  """Drops Orbax's INFO lines (several per checkpoint); its warnings and errors still show."""
  return not ('/orbax/' in record.pathname and record.levelno < std_logging.WARNING)


def main_for(config_flag, workdir_flag, labels_flag):
  """An absl main: runs the grid, prints one line per round, the tables and the final accuracies."""

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    logging.get_absl_handler().addFilter(_quiet_orbax)
    use_compilation_cache()
    init_distributed()
    try:
      primary = jax.process_index() == 0
      summary = experiment.run(config_flag.value, workdir_flag.value, labels_flag.value,
                               on_row=lambda row: primary and print(report.round_line(row), flush=True))
    except oracle.LabelsRequested as request:
      print(request, flush=True)  # Not an error: the session waits, checkpointed, for people.
      return
    except (oracle.LabelFileError, checkpoint.CheckpointError, ValueError, FloatingPointError) as error:
      print(f'error: {error}', file=sys.stderr, flush=True)
      sys.exit(1)
    if not primary:
      return
    print(summary['table'])
    print(summary['times'])
    for method in summary['methods']:
      print(f"final test accuracy of {method['policy']} {method['strategy']}: "
            f"{report.format_pm(method['final_accuracy_mean_se'])} over {len(method['seeds'])} seed(s)")

  return main
