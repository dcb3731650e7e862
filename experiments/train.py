r"""Trains one architecture on N random labelled examples and reports test accuracy.

  python experiments/train.py --workdir=/tmp/jal_train
  python experiments/train.py --config=experiments/configs/train.py:paper --workdir=...

Writes one JSON line per run to <workdir>/results.jsonl.
"""

import os

import jax
import launch
from absl import app, flags
from ml_collections import config_flags

from jal import experiment

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), 'configs/train.py'), lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for results.', required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  launch.use_compilation_cache()
  launch.init_distributed()
  record = experiment.run_training(_CONFIG.value, _WORKDIR.value)
  if jax.process_index():
    return
  print(f"{record['arch']} on {record['num_labeled']} labels of {record['dataset']}: test accuracy "
        f"{record['test/accuracy_mean']:.4f} (seeds: {', '.join(f'{a:.4f}' for a in record['test/accuracy'])}) "
        f"in {record['total/seconds']:.1f} s; results in {_WORKDIR.value}/results.jsonl")


if __name__ == '__main__':
  app.run(main)
