"""Config for experiments/active_learning.py: query strategies compared on a fixed architecture.

  --config=experiments/configs/active_learning.py          CPU scale: Fashion-MNIST, A(1,2) width 16, 100 -> 800
                                                           labels; ~4 min per strategy for 3 seeds on 2 cores
  --config=experiments/configs/active_learning.py:smoke    seconds, for tests
  --config=experiments/configs/active_learning.py:paper    active-iNAS protocol on CIFAR-10 (GPU/TPU)
"""

import ml_collections

from experiments.configs import train as train_config


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.strategies = 'random,least_confidence,margin,entropy,bald,coreset,kmeans,badge'
  config.seeds = '0,1,2'                    # Paired: a seed fixes the initial labelled set for every strategy.

  config.data = ml_collections.ConfigDict()
  config.data.name = 'fashion_mnist_idx'
  config.data.data_dir = ''
  config.data.pool_size = 10_000
  config.data.test_size = 2000
  config.data.split_seed = 0                # The pool/test split is shared by every seed.

  config.budget = ml_collections.ConfigDict()
  config.budget.initial = 100
  config.budget.per_round = 100
  config.budget.total = 800
  config.budget.grown_per_round = 0         # 0: never grow.
  config.budget.grow_after = 0

  config.model = ml_collections.ConfigDict()
  config.model.arch = 'A(1,2)'
  config.model.width = 16
  config.model.conv_bias = True
  config.model.conv_impl = 'auto'
  config.model.dropout_rate = 0.0           # For strategies that do not need MC-dropout.
  config.model.mc_dropout_rate = 0.5        # For MC-dropout strategies (trained and queried with it).
  config.model.mc_passes = 100              # T, as in active-iNAS.

  config.train = train_config.get_config().train
  config.train.epochs = 15
  config.train.examples_per_epoch = 1024

  if arg == 'smoke':
    config.strategies = 'random,entropy'
    config.seeds = '0,1'
    config.data.pool_size = 300
    config.data.test_size = 200
    config.budget.initial = 20
    config.budget.per_round = 20
    config.budget.total = 60
    config.model.width = 4
    config.model.mc_passes = 5
    config.train.epochs = 2
    config.train.examples_per_epoch = 64
    config.train.batch_size = 32
  elif arg == 'paper':
    config.strategies = 'least_confidence,mc_variance,coreset'
    config.data.name = 'cifar10'
    config.data.pool_size = 0
    config.data.test_size = 0
    config.budget.initial = 2000
    config.budget.per_round = 2000
    config.budget.total = 50_000
    config.budget.grown_per_round = 5000
    config.budget.grow_after = 10_000
    config.model.width = 64
    config.train.epochs = 200
    config.train.examples_per_epoch = 50_000
    config.train.augment.shift = 4
    config.train.augment.rotation = 15.0
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use '', 'smoke' or 'paper'.")
  return config
