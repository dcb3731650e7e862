"""A small checkpointed active-learning run, as a separate process (the SIGKILL-and-resume test runs it).

  python tests/session_worker.py WORKDIR [--slow]

Prints the final history (without timings) and a digest of the final parameters as one JSON line.
"""

import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jal import data, loop, session  # noqa: E402
from jal.search_space import Architecture  # noqa: E402
from jal.train import TrainConfig  # noqa: E402


def main(workdir):
  splits = data.load_splits(pool_size=300, test_size=200, seed=0)
  config = loop.LoopConfig(loop.BudgetSchedule(20, 20, 60), TrainConfig(epochs=3, examples_per_epoch=256,
                                                                        batch_size=32), width=8)
  run_config = {'schedule': [20, 20, 60], 'epochs': 3, 'width': 8, 'strategy': 'margin', 'seed': 0}
  state = session.run(session.Session(workdir, run_config), splits, config, 'margin',
                      loop.fixed(Architecture(1, 2)), seed=0)
  _, progress, done = session.Session(workdir, run_config).restore(
      session.task_model_template(splits, config), None)
  history = [{k: v for k, v in r.items() if not k.startswith('time/')} for r in state.history]
  leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(progress.train_state.params)]
  print(json.dumps({'history': history, 'done': done, 'labeled': np.flatnonzero(state.labeled_mask).tolist(),
                    'params': [float(np.sum(x.astype(np.float64))) for x in leaves],
                    'params_sha256': hashlib.sha256(b''.join(x.tobytes() for x in leaves)).hexdigest()}))


if __name__ == '__main__':
  main(sys.argv[1])
