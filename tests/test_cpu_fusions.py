"""Tests for jal.cpu_fusions: the option reaches XLA's compiler, changes only rounding, and is checked."""

import dataclasses
import importlib

import jax
import numpy as np
import pytest

from jal import cpu_fusions
from jal.models import ModelConfig, build_model
from jal.predict import _compiled_forward, predict
from jal.search_space import Architecture
from jal.train import TrainConfig, train

train_lib = importlib.import_module('jal.train')


def _model(choice):
  return build_model(Architecture(1, 1), 2, ModelConfig(width=8, cpu_fusions=choice))


def test_options_per_direction_and_backend():
  assert cpu_fusions.compiler_options(_model('default'), 'train', 'cpu') is None
  ynn = _model('ynnpack')
  assert cpu_fusions.compiler_options(ynn, 'train', 'cpu') == {
      'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_REDUCE'}
  assert cpu_fusions.compiler_options(ynn, 'infer', 'cpu') == {
      'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'}
  assert cpu_fusions.compiler_options(ynn, 'train', 'gpu') is None
  assert cpu_fusions.compiler_options(object(), 'infer', 'cpu') is None  # A user's own module: XLA's default.
  with pytest.raises(ValueError, match='direction'):
    cpu_fusions.compiler_options(ynn, 'backward', 'cpu')
  with pytest.raises(ValueError, match='cpu_fusions'):
    ModelConfig(cpu_fusions='onednn')


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='a CPU compile option')
def test_ynnpack_reaches_the_compiler_and_changes_only_rounding(tiny_problem):
  images, labels = tiny_problem
  default, ynn = _model('default'), _model('ynnpack')
  variables = jax.device_get(train_lib.create_train_state(default, train_lib.make_optimizer(TrainConfig(), 10),
                                                          jax.random.key(0), images.shape[1:]).variables)
  # Inference hands the dots to YNNPACK under 'ynnpack': the compiled forward pass says so, and the default's
  # list (no dots) differs from it.
  hlo = {name: _compiled_forward(model, None).lower(variables, images).compile().as_text()
         for name, model in (('default', default), ('ynnpack', ynn))}
  assert hlo['ynnpack'] != hlo['default'] and '"__ynn_fusion"' in hlo['ynnpack']
  np.testing.assert_allclose(predict(ynn, variables, images).logits, predict(default, variables, images).logits,
                             rtol=1e-4, atol=1e-4)
  config = TrainConfig(epochs=2, examples_per_epoch=32, batch_size=16, learning_rate=0.05)
  a = train(default, config, images, labels, jax.random.key(1))
  b = train(ynn, dataclasses.replace(config), images, labels, jax.random.key(1))
  for x, y in zip(jax.tree_util.tree_leaves(a.state.params), jax.tree_util.tree_leaves(b.state.params), strict=True):
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-3, atol=1e-3)
