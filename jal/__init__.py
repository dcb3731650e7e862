"""jal: deep active learning in JAX that searches for the architecture and the query strategy while it learns.

The public API:
  search space  `Architecture`, `SearchSpace`, `parse_architecture`         (jal.search_space)
  models        `build_model`, `ResNet`, `ModelOutput`, `register_block`    (jal.models)
  training      `train`, `TrainConfig`, `TrainResult`, `predict`, `evaluate` (jal.train)
  augmentation  `AugmentConfig`                                             (jal.augment)
  data          `load`, `load_splits`, `load_fashion_mnist`, `load_tfds`, `from_arrays`, `make_splits`,
                `load_image_folder`, `Dataset`, `Splits`                     (jal.data)
Active learning lives in its modules: `jal.query` (strategies), `jal.loop` (the loop, oracles, policies),
`jal.inas` (iNAS, active-iNAS), `jal.autoal` (AutoAL), `jal.session` (checkpoint and resume), `jal.labelling`
(people as the oracle), `jal.metrics` (AUBC, AUC-GAIN), `jal.compare` (paired comparisons, figures).
"""

from jal.augment import AugmentConfig
from jal.data import (
    DEFAULT_DATASET,
    Dataset,
    Splits,
    from_arrays,
    load,
    load_fashion_mnist,
    load_image_folder,
    load_splits,
    load_tfds,
    make_splits,
)
from jal.models import ModelOutput, ResNet, build_model, register_block
from jal.search_space import Architecture, SearchSpace, parse_architecture
from jal.train import (
    Predictions,
    TrainConfig,
    TrainResult,
    TrainState,
    evaluate,
    make_mesh,
    predict,
    train,
)

__version__ = '0.1.0'

__all__ = [
    'AugmentConfig', 'Architecture', 'DEFAULT_DATASET', 'Dataset', 'ModelOutput', 'Predictions', 'ResNet',
    'SearchSpace', 'Splits', 'TrainConfig', 'TrainResult', 'TrainState', 'build_model', 'evaluate',
    'from_arrays', 'load', 'load_fashion_mnist', 'load_image_folder', 'load_splits', 'load_tfds', 'make_mesh',
    'make_splits', 'parse_architecture', 'predict', 'register_block', 'train',
]
