"""jal: deep active learning in JAX that searches for the architecture and the query strategy while it learns.

The public API:
  search space  `Architecture`, `SearchSpace`, `parse_architecture`         (jal.search_space)
  models        `build_model`, `ModelConfig`, `ResNet`, `ModelOutput`, `register_block` (jal.models)
  training      `train`, `TrainConfig`, `TrainResult`, `TrainState`         (jal.train)
  inference     `predict`, `evaluate`, `make_mesh`, `Predictions`           (jal.predict)
  augmentation  `AugmentConfig`                                             (jal.augment)
  data          `load`, `load_splits`, `load_fashion_mnist`, `load_tfds`, `from_arrays`, `make_splits`,
                `load_image_folder`, `Dataset`, `Splits`, `NpyPool` (pools larger than memory) (jal.data)
Active learning lives in its modules: `jal.query` (strategies, queriers), `jal.loop` (the loop, policies,
checkpointed resume), `jal.oracle` (simulated and human oracles, label import), `jal.inas` (iNAS, active-iNAS),
`jal.autoal` (AutoAL), `jal.albl` (ALBL, the bandit over strategies), `jal.cold_start` (the initial set),
`jal.pretrained` (pretrained variables), `jal.loss_prediction` (Learning Loss), `jal.checkpoint` (Orbax checkpoints
of PyTrees), `jal.experiment` (configs -> resumable grids of runs),
`jal.report` (tables, paired differences, figures), `jal.metrics` (AUBC, AUC-GAIN), `jal.progress` (progress
lines and TensorBoard events while training).
"""

from jal.augment import AugmentConfig
from jal.data import (
    DEFAULT_DATASET,
    Dataset,
    NpyPool,
    Splits,
    from_arrays,
    load,
    load_fashion_mnist,
    load_image_folder,
    load_splits,
    load_tfds,
    make_splits,
)
from jal.models import ModelConfig, ModelOutput, ResNet, build_model, register_block
from jal.predict import Predictions, evaluate, make_mesh, predict
from jal.search_space import Architecture, SearchSpace, parse_architecture
from jal.train import TrainConfig, TrainResult, TrainState, train

__version__ = '0.1.0'

__all__ = [
    'AugmentConfig', 'Architecture', 'DEFAULT_DATASET', 'Dataset', 'ModelConfig', 'ModelOutput', 'NpyPool',
    'Predictions',
    'ResNet', 'SearchSpace', 'Splits', 'TrainConfig', 'TrainResult', 'TrainState', 'build_model', 'evaluate',
    'from_arrays', 'load', 'load_fashion_mnist', 'load_image_folder', 'load_splits', 'load_tfds', 'make_mesh',
    'make_splits', 'parse_architecture', 'predict', 'register_block', 'train',
]
