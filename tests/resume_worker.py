"""A small checkpointed active-learning run, as a separate process (the SIGKILL-and-resume tests run it).

  python tests/resume_worker.py WORKDIR [fixed|inas|disk]

'fixed': margin on A(1,2), 3 rounds; 'inas': active-iNAS (margin) over the 1 x 2 grid from A(1,1), 2 rounds, the
architecture changing between them; 'disk': 'fixed' with the pool's raw pixels in WORKDIR/../pool.npy, read through
`jal.data.NpyPool` (a pool on disk). Prints the final history (without timings), the labelled set and a digest of
the final parameters as one JSON line, read back from disk as a later process would.
"""

import hashlib
import json
import os
import sys

import jax
import numpy as np

from jal import checkpoint, data, inas, loop, query
from jal.models import ModelConfig, model_fn
from jal.search_space import Architecture, SearchSpace
from jal.train import TrainConfig


def main(workdir, mode='fixed'):
  splits = data.load_splits(pool_size=300, test_size=200, seed=0)
  if mode == 'disk':
    path = os.path.join(os.path.dirname(os.path.abspath(workdir)), 'pool.npy')
    raw = np.round((splits.pool.images * splits.std + splits.mean) * 255).astype(np.uint8)
    if not os.path.exists(path):
      np.save(path + '.tmp.npy', raw)
      os.replace(path + '.tmp.npy', path)
    pool = data.Dataset(data.NpyPool(path), splits.pool.labels, 10, 'disk')
    splits = data.make_splits(pool, data.load_fashion_mnist('test').subset(np.arange(200)))
  if mode == 'inas':
    config = loop.LoopConfig(loop.BudgetSchedule(20, 20, 40), TrainConfig(epochs=2, examples_per_epoch=64,
                                                                          batch_size=32), ModelConfig(width=4))
    # Two rounds; iNAS over the 1 x 2 grid keeps A(1,1) in round 0 and grows to A(1,2) in round 1.
    policy = inas.inas_policy(inas.INASConfig(space=SearchSpace(1, 2), candidate_fraction=0.5))
  else:
    config = loop.LoopConfig(loop.BudgetSchedule(20, 20, 60), TrainConfig(epochs=3, examples_per_epoch=256,
                                                                          batch_size=32), ModelConfig(width=8))
    policy = loop.fixed(Architecture(1, 2))
  run_config = {'mode': mode, 'strategy': 'margin', 'seed': 0}
  loop.run(splits, config, 'margin', policy, seed=0, checkpointer=checkpoint.Checkpointer(workdir, run_config))
  state, _, done = loop.restore(checkpoint.Checkpointer(workdir, run_config), splits, config,
                                query.as_querier('margin'), model_fn(10, config.model))
  history = [{k: v for k, v in r.items() if not k.startswith(('time/', 'compile/'))} for r in state.history]
  leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(state.train_state.params)]
  print(json.dumps({'history': history, 'done': done, 'labeled': np.flatnonzero(state.labeled_mask).tolist(),
                    'archs': [r['arch'] for r in state.history],
                    'params_sha256': hashlib.sha256(b''.join(x.tobytes() for x in leaves)).hexdigest()}))


if __name__ == '__main__':
  main(*sys.argv[1:])
