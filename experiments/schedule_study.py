r"""Which per-round schedule makes the task model fit its labelled set: train and validation accuracy vs steps.

  python experiments/schedule_study.py --workdir=docs/results/schedule_study

Trains each architecture on |L| random labels for each number of epochs (the config's `study` section), scores it
on L and on a validation split held out of the training data (never the test split), and writes
schedule.jsonl (one row per training, resumable), schedule.md and schedule_curves.png.
"""

import os

from absl import app, flags
from ml_collections import config_flags

from jal import experiment, report

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), 'configs/schedule_study.py'), lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for results.', required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  rows = experiment.schedule_study(_CONFIG.value, _WORKDIR.value,
                                   on_row=lambda r: print({k: r[k] for k in ('arch', 'num_labeled', 'epochs', 'seed',
                                                                              'train/accuracy', 'val/accuracy')},
                                                          flush=True))
  table = report.schedule_table(rows)
  with open(os.path.join(_WORKDIR.value, 'schedule.md'), 'w', encoding='utf-8') as f:
    f.write(table)
  print(table)


if __name__ == '__main__':
  app.run(main)
