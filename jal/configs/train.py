"""Config for `jal-train`: train one architecture on N labelled examples.

  --config=train          CPU scale: A(1,2), width 16, 1000 Fashion-MNIST labels (~20 s)
  --config=train:smoke    seconds-long run for tests
  --config=train:paper    the paper's protocol: CIFAR-10 via TFDS, width 64, 200 epochs
"""

import ml_collections

from jal import experiment


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  config = experiment.train_defaults()
  if arg == 'smoke':
    config.data.num_labeled = 64
    config.data.pool_size = 512
    config.data.test_size = 256
    config.model.width = 4
    config.train.epochs = 2
    config.train.examples_per_epoch = 128
    config.train.batch_size = 32
  elif arg == 'paper':
    config.data.name = 'cifar10'
    config.data.num_labeled = 50_000
    config.model.width = 64
    config.model.arch = 'A(2,4)'
    config.train.epochs = 200
    config.train.examples_per_epoch = 50_000
    config.train.augment.shift = 4
    config.train.augment.rotation = 15.0
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use '', 'smoke' or 'paper'.")
  return config
