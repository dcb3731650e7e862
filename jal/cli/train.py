r"""Trains one architecture on N random labelled examples and reports test accuracy.

  jal-train --workdir=/tmp/jal_train
  jal-train --config=train:paper --workdir=...

Writes one JSON line per run to <workdir>/results.jsonl, and the first seed's variables to
<workdir>/variables/<arch>_n<labels>_seed<seed>.msgpack: a pretrained start for the active-learning binaries
(--config.model.init_from).
"""

import jax
from absl import app, flags

from jal import experiment
from jal.cli import launch

_CONFIG = launch.define_config('train')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for results.', required=True)


def _main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  launch.use_compilation_cache()
  launch.init_distributed()
  record = experiment.run_training(_CONFIG.value, _WORKDIR.value)
  if jax.process_index():
    return
  print(f"{record['arch']} on {record['num_labeled']} labels of {record['dataset']}: test accuracy "
        f"{record['test/accuracy_mean']:.4f} (seeds: {', '.join(f'{a:.4f}' for a in record['test/accuracy'])}) "
        f"in {record['total/seconds']:.1f} s; results in {_WORKDIR.value}/results.jsonl, variables in "
        f"{record['variables']}")


def main():
  launch.run(_main)


if __name__ == '__main__':
  main()
