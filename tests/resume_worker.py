"""A small checkpointed active-learning run, as a separate process (the SIGKILL-and-resume tests run it).

  python tests/resume_worker.py WORKDIR

Prints the final history (without timings) and a digest of the final parameters as one JSON line.
"""

import hashlib
import json
import sys

import jax
import numpy as np

from jal import checkpoint, data, loop, query
from jal.models import ModelConfig, model_fn
from jal.search_space import Architecture
from jal.train import TrainConfig


def main(workdir):
  splits = data.load_splits(pool_size=300, test_size=200, seed=0)
  config = loop.LoopConfig(loop.BudgetSchedule(20, 20, 60), TrainConfig(epochs=3, examples_per_epoch=256,
                                                                        batch_size=32), ModelConfig(width=8))
  run_config = {'schedule': [20, 20, 60], 'epochs': 3, 'width': 8, 'strategy': 'margin', 'seed': 0}
  policy = loop.fixed(Architecture(1, 2))
  loop.run(splits, config, 'margin', policy, seed=0, checkpointer=checkpoint.Checkpointer(workdir, run_config))
  # The final state, as a later process reads it back from disk.
  state, _, done = loop.restore(checkpoint.Checkpointer(workdir, run_config), splits, config,
                                query.as_querier('margin'), model_fn(10, config.model))
  history = [{k: v for k, v in r.items() if not k.startswith('time/')} for r in state.history]
  leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(state.train_state.params)]
  print(json.dumps({'history': history, 'done': done, 'labeled': np.flatnonzero(state.labeled_mask).tolist(),
                    'params': [float(np.sum(x.astype(np.float64))) for x in leaves],
                    'params_sha256': hashlib.sha256(b''.join(x.tobytes() for x in leaves)).hexdigest()}))


if __name__ == '__main__':
  main(sys.argv[1])
