"""The config shared by the active-learning binaries (active_learning, active_inas, compare_inas).

CPU scale by default (Fashion-MNIST from local IDX files, width 16, 100 -> 800 labels); `paper()` turns it into
the active-iNAS protocol (CIFAR-10 via TFDS, width 64, 2000 -> 50,000 labels, 200 epochs).
"""

import ml_collections

from experiments.configs import train as train_config


def base() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.policies = 'fixed:A(1,2)'         # Comma-separated: 'inas' and/or 'fixed:A(i,j)'.
  config.strategies = 'least_confidence'    # Comma-separated names from jal.query.QUERIES.
  config.seeds = '0,1,2'                    # Paired: a seed fixes the initial labelled set of every method.
  config.baseline_policy = ''               # Paired AUBC differences against this policy ('' = none).
  config.skip = ''                          # 'policy/strategy' pairs not to run, comma-separated.
  config.oracle = 'simulated'               # 'human': queries go to workdir/queries/, answers come by --labels.

  config.data = ml_collections.ConfigDict()
  config.data.name = 'fashion_mnist_idx'    # Or a TFDS name, or 'folder' (your images, in data_dir).
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
  config.model.width = 16
  config.model.conv_bias = True
  config.model.conv_impl = 'auto'
  config.model.dropout_rate = 0.0           # For strategies that do not need MC-dropout.
  config.model.mc_dropout_rate = 0.5        # For MC-dropout strategies (trained and queried with it).
  config.model.mc_passes = 100              # T, as in active-iNAS.

  config.inas = ml_collections.ConfigDict()
  config.inas.max_steps = 1                 # T_iNAS.
  config.inas.validation_fraction = 0.2
  config.inas.candidate_fraction = 0.25     # Premature evaluation.
  config.inas.num_seeds = 1
  config.inas.score = 'best'
  config.inas.schedule = 'truncated'
  config.inas.max_blocks = 12
  config.inas.max_stacks = 5

  config.train = train_config.get_config().train
  config.train.epochs = 15
  config.train.examples_per_epoch = 1024
  return config


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Seconds-long runs for tests."""
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
  config.inas.candidate_fraction = 0.5
  config.inas.max_blocks = 2                # Few architectures: tests are compile-bound.
  config.inas.max_stacks = 2
  return config


def paper(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The active-iNAS protocol (§5.1): for GPU/TPU."""
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
  return config


def apply(config: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  if arg == 'smoke':
    return smoke(config)
  if arg == 'paper':
    return paper(config)
  if arg:
    raise ValueError(f"Unknown config argument {arg!r}; use '', 'smoke' or 'paper'.")
  return config
