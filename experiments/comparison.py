"""What the active-learning binaries share: flags, and config -> `jal.compare` -> files in the workdir."""

import json
import logging as std_logging
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

import jal  # noqa: E402
from jal import autoal, compare, data, inas, labelling, loop, session  # noqa: E402

_LABELS = flags.DEFINE_string(
    'labels', None, 'With --config.oracle=human: a CSV of item_id,label answering the pending query (see '
    'queries/round_<r>/labels_template.csv in the workdir).')


def define_flags(default_config: str):
  config = config_flags.DEFINE_config_file(
      'config', os.path.join(os.path.dirname(__file__), 'configs', default_config), lock_config=True)
  workdir = flags.DEFINE_string('workdir', None, 'Directory for results.', required=True)
  return config, workdir


def _split(text: str) -> list[str]:
  """'inas,fixed:A(1,2)' -> ['inas', 'fixed:A(1,2)']: commas inside parentheses do not split."""
  return [part.strip() for part in re.split(r',(?![^(]*\))', str(text)) if part.strip()]


def autoal_config(section: ml_collections.ConfigDict) -> autoal.AutoALConfig:
  """The config's `autoal` section as an AutoALConfig ('arch' as 'A(i,j)', 'candidates' comma-separated)."""
  fields = section.to_dict()
  fields['candidates'] = tuple(_split(fields['candidates']))
  fields['arch'] = jal.parse_architecture(fields['arch'])
  if fields.get('temperature', None) is not None and fields['temperature'] <= 0:
    fields['temperature'] = None  # <= 0 in a flag: the std of s.
  return autoal.AutoALConfig(**fields)


def _querier_factory(config: ml_collections.ConfigDict):
  """Strategy name -> what the loop runs: 'autoal' -> `jal.autoal.AutoAL` from config.autoal; else the name."""
  made = {}

  def querier_for(name):
    if name != 'autoal':
      return name
    if 'autoal' not in config:
      raise ValueError("Strategy 'autoal' needs an `autoal` config section (see experiments/configs/autoal.py).")
    if name not in made:
      made[name] = autoal.AutoAL(autoal_config(config.autoal))
    return made[name]

  return querier_for


# Fields that choose which runs to make, not how a run goes: they may change between restarts of a workdir.
GRID_FIELDS = ('policies', 'strategies', 'seeds', 'skip', 'baseline_policy')


def check_workdir_config(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Records the config a workdir's runs are made with (config.json) and refuses a restart under another one
  (naming the differing fields), so that finished rows and checkpoints are never mixed across configs."""
  run_config = {k: v for k, v in config.to_dict().items() if k not in GRID_FIELDS}
  path = os.path.join(workdir, 'config.json')
  if os.path.exists(path):
    with open(path) as f:
      session.check_config(json.load(f), run_config, f'The workdir {workdir}')
  else:
    with open(path + '.tmp', 'w') as f:
      json.dump(session.normalise_config(run_config), f, indent=1)
    os.replace(path + '.tmp', path)
  return run_config


def load_data(config: ml_collections.ConfigDict) -> jal.Splits:
  """config.data -> Splits: 'folder' reads your images from data_dir (jal.data.load_image_folder)."""
  if config.data.name == 'folder':
    if not config.data.data_dir:
      raise ValueError("--config.data.name=folder needs --config.data.data_dir=/path/to/images.")
    return data.load_image_folder(config.data.data_dir)
  return jal.load_splits(config.data.name, config.data.data_dir or None, 0, config.data.pool_size or None,
                         config.data.test_size or None, config.data.split_seed)


def run(config: ml_collections.ConfigDict, workdir: str, labels_file: str | None = None) -> dict:
  """Runs (or resumes) the configured grid of policies x strategies x seeds; writes rows, tables, figures.

  With config.oracle = 'human' (one policy, strategy and seed), each query is written to workdir/queries/ and the
  run stops with `jal.labelling.LabelsRequested`; `labels_file` answers the pending query.
  """
  budget = config.budget
  oracle_kind = config.get('oracle', 'simulated')
  if oracle_kind not in ('simulated', 'human'):
    raise ValueError(f"config.oracle must be 'simulated' or 'human', got {oracle_kind!r}.")
  if labels_file and oracle_kind != 'human':
    raise ValueError('--labels answers a human query: add --config.oracle=human.')
  splits = load_data(config)
  if splits.pool.unknown_labels and oracle_kind != 'human':
    raise ValueError('This pool has unlabelled images that only people can label: add --config.oracle=human.')
  initial = budget.initial
  if splits.pool.unknown_labels:  # An image folder: its seed labels are the initial set.
    initial = int(np.sum(splits.pool.labels >= 0))
    logging.info('Initial labelled set: the %d seed labels of the image folder.', initial)
  schedule = loop.BudgetSchedule(initial, budget.per_round, budget.total, budget.grown_per_round or None,
                                 budget.grow_after or None)
  train_config = jal.TrainConfig.from_dict(config.train.to_dict())
  fields = config.inas.to_dict()
  space = jal.SearchSpace(fields.pop('max_blocks'), fields.pop('max_stacks'))
  inas_config = inas.INASConfig(space=space, **fields)
  policies, strategies = _split(config.policies), _split(config.strategies)
  seeds = [int(s) for s in _split(config.seeds)]
  skip = [tuple(method.split('/')) for method in _split(config.get('skip', ''))]
  if any(len(method) != 2 for method in skip):
    raise ValueError(f"config.skip must be 'policy/strategy' pairs separated by commas, got {config.skip!r}.")
  querier_for = _querier_factory(config)
  for strategy in strategies:
    loop.strategy_needs(querier_for(strategy))
  for policy in policies:
    compare.make_policy(policy, inas_config)

  def loop_config_for(strategy):
    needs_mc = 'mc' in loop.strategy_needs(querier_for(strategy))
    return loop.LoopConfig(
        schedule, train_config, config.model.width,
        config.model.mc_dropout_rate if needs_mc else config.model.dropout_rate, config.model.mc_passes,
        config.model.conv_bias, config.model.conv_impl)

  oracle = None
  if oracle_kind == 'human':
    if len(policies) * len(strategies) * len(seeds) != 1:
      raise ValueError('A human-labelled session runs one policy, one strategy and one seed; set '
                       '--config.policies, --config.strategies and --config.seeds to one each.')
    oracle = labelling.HumanOracle(splits, os.path.join(workdir, 'queries'), labels_file)
  os.makedirs(workdir, exist_ok=True)
  run_config = check_workdir_config(config, workdir)
  start = time.perf_counter()

  def report(row):
    """One line per round on stdout (and the log): the architecture, iNAS's candidate errors, accuracy, times."""
    candidates = ', '.join(f"{k.split('/')[-1]} {v:.3f}" for k, v in row.items()
                           if k.startswith('nas/step') and isinstance(v, float))
    line = (f"{row['policy']} {row['strategy']} seed {row['seed']} round {row['round']}: {row['num_labeled']} "
            f"labels, {row['arch']} ({row['arch/params']} params), test accuracy {row['test/accuracy']:.4f}"
            + (f' | iNAS validation errors: {candidates}' if candidates else '')
            + f" | nas {row['time/nas']:.1f}s train {row['time/train']:.1f}s"
            + (f" search {row['time/search']:.1f}s" if 'time/search' in row else '')
            + f" score {row['time/score']:.1f}s select {row['time/select']:.2f}s"
            + f' | {time.perf_counter() - start:.0f}s elapsed')
    print(line, flush=True)
    logging.info(line)

  rows = compare.run_grid(splits, policies, strategies, seeds, loop_config_for, inas_config,
                          os.path.join(workdir, 'rounds.jsonl'), on_round=report, skip=skip,
                          querier_for=querier_for, checkpoint_dir=os.path.join(workdir, 'checkpoints'),
                          run_config=run_config, oracle=oracle)
  rows = [r for r in rows if r['policy'] in policies and r['strategy'] in strategies and r['seed'] in seeds]
  title = f'{config.data.name}, width {config.model.width}'
  return compare.write_outputs(rows, workdir, title, config.baseline_policy or None)


def _quiet_orbax(record) -> bool:
  """Drops Orbax's INFO lines (several per checkpoint); its warnings and errors still show."""
  return not ('/orbax/' in record.pathname and record.levelno < std_logging.WARNING)


def main_for(config_flag, workdir_flag):
  """An absl main that runs the comparison and prints its tables."""

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    logging.get_absl_handler().addFilter(_quiet_orbax)
    try:
      summary = run(config_flag.value, workdir_flag.value, _LABELS.value)
    except labelling.LabelsRequested as request:
      print(request, flush=True)  # Not an error: the session waits, checkpointed, for people.
      return
    except (labelling.LabelFileError, session.CheckpointError) as error:
      print(error, file=sys.stderr, flush=True)
      sys.exit(1)
    print(summary['table'])
    print(summary['times'])
    for method in summary['methods']:
      print(f"final test accuracy of {method['policy']} {method['strategy']}: "
            f"{compare.format_pm(method['final_accuracy_mean_se'])} over {len(method['seeds'])} seed(s)")

  return main
