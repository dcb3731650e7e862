r"""Trains one architecture on N random labelled examples and reports test accuracy.

  python experiments/train.py --workdir=/tmp/jal_train
  python experiments/train.py --config=experiments/configs/train.py:paper --workdir=...

Writes one JSON line per run to <workdir>/results.jsonl.
"""

import json
import os
import time

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

import jal

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), 'configs/train.py'), lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for results.', required=True)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Loads the data, trains `num_seeds` models, evaluates on the test split, appends a JSON line."""
  start = time.perf_counter()
  splits = jal.load_splits(
      config.data.name, config.data.data_dir or None, config.data.validation_size,
      config.data.pool_size or None, config.data.test_size or None, config.seed)
  pool = splits.pool
  if not 0 < config.data.num_labeled <= len(pool):
    raise ValueError(f'data.num_labeled must be in [1, {len(pool)}], got {config.data.num_labeled}.')
  labeled = np.random.default_rng(config.seed).choice(len(pool), config.data.num_labeled, replace=False)
  labeled_mask = np.zeros(len(pool), bool)
  labeled_mask[labeled] = True

  arch = jal.parse_architecture(config.model.arch)
  model = jal.build_model(
      arch, pool.num_classes, config.model.width, config.model.conv_bias, config.model.dropout_rate,
      config.model.conv_impl)
  rngs = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  validation = (splits.validation.images, splits.validation.labels) if splits.validation else None
  logging.info('Training %s (%d params) on %d labels of %s, %d seed(s).', arch,
               arch.num_params(pool.num_classes, pool.image_shape[-1], config.model.width,
                               config.model.conv_bias), config.data.num_labeled, pool.name,
               config.num_seeds)
  train_config = jal.TrainConfig.from_dict(config.train.to_dict())
  result = jal.train(model, train_config, pool.images, pool.labels, rngs, labeled_mask, validation)
  accuracies = [
      jal.evaluate(model, result.state_for_seed(i).variables, splits.test.images,
                   splits.test.labels)['accuracy'] for i in range(config.num_seeds)]
  record = {
      'dataset': config.data.name, 'arch': str(arch), 'width': config.model.width,
      'num_labeled': config.data.num_labeled, 'num_seeds': config.num_seeds,
      'test/accuracy': accuracies, 'test/accuracy_mean': float(np.mean(accuracies)),
      'train/seconds': result.seconds, 'total/seconds': time.perf_counter() - start,
      'train/images_per_second': result.num_seeds * train_config.total_steps
      * config.train.batch_size / result.seconds,
      'backend': jax.default_backend(), 'config': config.to_dict(),
  }
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'results.jsonl'), 'a') as f:
    f.write(json.dumps(record, default=str) + '\n')
  return record


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  record = run(_CONFIG.value, _WORKDIR.value)
  logging.info('Test accuracy %.4f (seeds: %s) in %.1f s; results in %s/results.jsonl.',
               record['test/accuracy_mean'], ', '.join(f'{a:.4f}' for a in record['test/accuracy']),
               record['total/seconds'], _WORKDIR.value)
  print(f"{record['arch']} on {record['num_labeled']} labels of {record['dataset']}: test accuracy "
        f"{record['test/accuracy_mean']:.4f} in {record['total/seconds']:.1f} s")


if __name__ == '__main__':
  app.run(main)
