r"""Which per-round schedule makes the task model fit its labelled set: train and validation accuracy vs steps.

  python experiments/schedule_study.py --workdir=docs/results/schedule_study

Trains each architecture on |L| random labels for each number of epochs (the config's `study` section), scores it
on L and on a validation split held out of the training data (never the test split), and writes
schedule.jsonl (one row per training, resumable), schedule.md and schedule_curves.png.
"""

import dataclasses
import os
from collections.abc import Callable

import jax
import numpy as np
from absl import flags

from jal import experiment, report
from jal.cli import launch
from jal.models import build_model
from jal.predict import evaluate
from jal.search_space import parse_architecture
from jal.train import train

_CONFIG = launch.define_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'schedule_study.py'))
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for results.', required=True)


def schedule_study(config, workdir: str,
                   on_row: Callable[[dict], None] | None = None) -> list[dict]:
  """Trains every (arch, |L|, epochs, seed) of `config.study` not yet in workdir/schedule.jsonl; returns all rows.

  |L| random labels from the pool (seeded, nested: the 300 contain the 100); each row holds 'train/accuracy' and
  'train/loss' on L in eval mode, 'val/accuracy' and 'val/loss' on the validation split, and the SGD steps.
  """
  splits = experiment.load_data(config)
  if splits.validation is None:
    raise ValueError('The schedule study needs a validation split: set --config.data.validation_size > 0.')
  pool = splits.pool
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, 'schedule.jsonl')
  rows = report.read_rows(path)
  done = {(r['arch'], r['num_labeled'], r['epochs'], r['seed']) for r in rows}
  base = experiment.train_config(config.train)
  for arch_name in experiment.names(config.study.archs):
    arch = parse_architecture(arch_name)
    model = build_model(arch, pool.num_classes, experiment.model_config(config.model))
    for seed in (int(s) for s in experiment.names(config.study.seeds)):
      order = np.random.default_rng(seed).permutation(len(pool))
      for num_labeled in (int(n) for n in experiment.names(config.study.num_labeled)):
        mask = np.zeros(len(pool), bool)
        mask[order[:num_labeled]] = True
        for epochs in (int(e) for e in experiment.names(config.study.epochs)):
          if (arch_name, num_labeled, epochs, seed) in done:
            continue
          settings = dataclasses.replace(base, epochs=epochs)
          result = train(model, settings, pool.images, pool.labels, jax.random.key(seed), mask)
          variables = result.state_for_seed(0).variables
          fit = evaluate(model, variables, pool.images[mask], pool.labels[mask])
          held_out = evaluate(model, variables, splits.validation.images, splits.validation.labels)
          row = {'arch': arch_name, 'num_labeled': num_labeled, 'epochs': epochs, 'seed': seed,
                 'steps': settings.total_steps, 'train/accuracy': fit['accuracy'], 'train/loss': fit['loss'],
                 'val/accuracy': held_out['accuracy'], 'val/loss': held_out['loss'], 'seconds': result.seconds}
          experiment.append_row(path, row)
          rows.append(row)
          if on_row is not None:
            on_row(row)
  report.schedule_curves(rows, os.path.join(workdir, 'schedule_curves.png'))
  return rows


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'Unexpected arguments: {argv[1:]}')
  rows = schedule_study(_CONFIG.value, _WORKDIR.value,
                                   on_row=lambda r: print({k: r[k] for k in ('arch', 'num_labeled', 'epochs', 'seed',
                                                                              'train/accuracy', 'val/accuracy')},
                                                          flush=True))
  table = report.schedule_table(rows)
  with open(os.path.join(_WORKDIR.value, 'schedule.md'), 'w', encoding='utf-8') as f:
    f.write(table)
  print(table)


if __name__ == '__main__':
  launch.run(main)
