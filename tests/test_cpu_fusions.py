"""Tests for jal.cpu_fusions: the option reaches XLA's compiler, changes only rounding, and is checked."""

import dataclasses
import importlib
import re
import types

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


def test_auto_is_the_default_and_applies_the_measured_thresholds():
  """'auto' (the default of the library and of the binaries' configs) hands training to YNNPACK from a widest
  stack of 32 channels and inference from 64: where `benchmarks/train_throughput.py` measured it faster."""
  from jal import experiment
  assert ModelConfig().cpu_fusions == 'auto' and experiment.base_config().model.cpu_fusions == 'auto'
  assert experiment.model_config(experiment.base_config().model).cpu_fusions == 'auto'
  cases = {(Architecture(1, 1), 16): (False, False),   # 16 channels: 0.95x training, 0.92x inference.
           (Architecture(2, 2), 16): (True, False),    # 32: 1.34x training, 0.84x inference.
           (Architecture(1, 1), 32): (True, False),    # 32: 1.42x training, 0.78x inference.
           (Architecture(2, 4), 16): (True, True),     # 128: 1.12x training, 1.12x inference.
           (Architecture(1, 2), 32): (True, True)}     # 64: 1.63x training, 1.83x inference.
  for (arch, width), (train_fast, infer_fast) in cases.items():
    model = build_model(arch, 10, ModelConfig(width=width))
    assert cpu_fusions.widest_stack(model) == width * 2 ** (arch.stacks - 1)
    assert (cpu_fusions.compiler_options(model, 'train', 'cpu') is not None) == train_fast, (arch, width)
    assert (cpu_fusions.compiler_options(model, 'infer', 'cpu') is not None) == infer_fast, (arch, width)
    assert cpu_fusions.compiler_options(model, 'train', 'tpu') is None
  # 'default' and 'ynnpack' ignore the width; a module that is not A(B, i, j) gets XLA's own list under 'auto'.
  wide = build_model(Architecture(2, 4), 10, ModelConfig(width=64, cpu_fusions='default'))
  assert cpu_fusions.compiler_options(wide, 'infer', 'cpu') is None
  assert cpu_fusions.compiler_options(_model('ynnpack'), 'infer', 'cpu') is not None
  assert not cpu_fusions.uses_ynnpack(types.SimpleNamespace(cpu_fusions='auto'), 'train')


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='a CPU compile option')
def test_the_default_compiles_the_measured_fastest_options(tiny_problem):
  """Under the default config A(1,1)'s forward pass compiles at width 64 as under 'ynnpack' (dots in YNNPACK), at
  width 16 as under XLA's own list: the compiled programs themselves, not only the options asked for."""
  images, _ = tiny_problem

  def compiled(width, choice=None):
    config = ModelConfig(width=width) if choice is None else ModelConfig(width=width, cpu_fusions=choice)
    model = build_model(Architecture(1, 1), 2, config)
    variables = jax.device_get(train_lib.create_train_state(model, train_lib.make_optimizer(TrainConfig(), 10),
                                                            jax.random.key(0), images.shape[1:]).variables)
    text = _compiled_forward(model, None).lower(variables, images).compile().as_text()
    program = text[text.index('\n%'):]  # The computations, without the header's tables of source files.
    return re.sub(r', metadata=\{[^}]*\}', '', program)

  assert compiled(64) == compiled(64, 'ynnpack') != compiled(64, 'default')
  assert compiled(16) == compiled(16, 'default') != compiled(16, 'ynnpack')


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
