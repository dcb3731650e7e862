"""Config for experiments/train.py: train one architecture on N labelled examples.

  --config=experiments/configs/train.py          CPU scale: A(1,2), width 16, 1000 Fashion-MNIST labels (~1 min)
  --config=experiments/configs/train.py:smoke    seconds-long run for tests
  --config=experiments/configs/train.py:paper    the paper's protocol: CIFAR-10 via TFDS, width 64, 200 epochs
"""

import ml_collections


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.num_seeds = 1

  config.data = ml_collections.ConfigDict()
  config.data.name = 'fashion_mnist_idx'  # Local IDX files; any other name is read through TFDS.
  config.data.data_dir = ''               # '' = the loader's default location.
  config.data.num_labeled = 1000          # N random labelled examples from the pool.
  config.data.validation_size = 0
  config.data.pool_size = 0               # 0 = the whole training split.
  config.data.test_size = 0               # 0 = the whole test split.

  config.model = ml_collections.ConfigDict()
  config.model.arch = 'A(1,2)'
  config.model.width = 16                 # The paper's width is 64; 16 keeps CPU runs in minutes.
  config.model.conv_bias = True
  config.model.dropout_rate = 0.0
  config.model.conv_impl = 'auto'

  config.train = ml_collections.ConfigDict()
  config.train.epochs = 30
  config.train.examples_per_epoch = 2048
  config.train.batch_size = 128
  config.train.learning_rate = 0.1
  config.train.momentum = 0.9
  config.train.nesterov = True
  config.train.weight_decay = 5e-4
  config.train.lr_boundaries = (0.5, 0.75)
  config.train.lr_decay = 0.1
  config.train.eval_every = 0
  config.train.eval_batch_size = 1024
  config.train.seeds = 'auto'
  config.train.augment = ml_collections.ConfigDict()
  config.train.augment.flip = True
  config.train.augment.shift = 2
  config.train.augment.rotation = 0.0

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
