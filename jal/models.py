"""The A(B, i, j) ResNet family as a Flax Linen module (active-iNAS §4.1; SPEC §1).

Stem: conv3x3(width) - BN - ReLU - max-pool 3x3/2. Stack s = 0..j-1: i blocks of width `width * 2**s`, the first
block of every stack s > 0 striding by 2 with a 1x1 projection shortcut. Head: global average pool (the
embedding that coreset, k-means and BADGE use) - dropout slot (rate 0 except for MC-dropout) - dense to C.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jal import search_space
from jal.cpu_fusions import CPU_FUSIONS
from jal.layers import CONV_IMPLS, Conv, max_pool
from jal.loss_prediction import LossModule
from jal.search_space import Architecture

PRECISIONS = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}  # `ModelConfig.precision` -> compute dtype.


@struct.dataclass
class ModelOutput:
  """What a forward pass returns.

  Attributes:
    logits: [N, C] float32.
    embedding: [N, D] the pooled features before the dropout slot (D = width * 2**(j-1)).
    stages: the output of the stem and of every stack, [N, H_s, W_s, C_s] each, when requested; else ().
    predicted_loss: [N] the loss-prediction module's output (a model built with `loss_prediction`); else None.
  """

  logits: jax.Array
  embedding: jax.Array
  stages: tuple[jax.Array, ...] = ()
  predicted_loss: jax.Array | None = None


class BasicBlock(nn.Module):
  """ResNet basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the (projected) shortcut, then ReLU."""

  features: int
  strides: int
  conv: Any
  norm: Any

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    residual = x
    y = self.conv(self.features, 3, self.strides)(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.features, 3, 1)(y)
    y = self.norm()(y)
    if self.strides != 1 or x.shape[-1] != self.features:
      residual = self.norm()(self.conv(self.features, 1, self.strides)(x))
    return nn.relu(y + residual)


BLOCK_MODULES: dict[str, type[nn.Module]] = {'basic': BasicBlock}


def register_block(name: str, module: type[nn.Module], spec: search_space.BlockSpec) -> None:
  """Makes a new block type available to the search space and to `build_model`.

  Args:
    name: the block's name in `Architecture(block=name)`.
    module: a Linen module with fields (features, strides, conv, norm) mapping [N, H, W, C_in] to
      [N, H/strides, W/strides, features], like `BasicBlock`.
    spec: its depth β and trainable-parameter count, so the search space needs no model build.
  """
  BLOCK_MODULES[name] = module
  search_space.BLOCKS[name] = spec


class Head(nn.Module):
  """The dropout slot and the dense classifier over the pooled embedding."""

  num_classes: int
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, embedding: jax.Array, dropout: bool = False) -> jax.Array:
    """Maps [N, D] embeddings to [N, C] logits; `dropout=True` needs a 'dropout' PRNG stream."""
    x = nn.Dropout(self.dropout_rate, deterministic=not dropout)(embedding)
    return nn.Dense(self.num_classes, name='dense')(x)


class ResNet(nn.Module):
  """A(B, i, j) for `num_classes` classes at base width `width` (64 in the paper)."""

  arch: Architecture
  num_classes: int
  width: int = 64
  conv_bias: bool = True
  dropout_rate: float = 0.0
  conv_impl: str = 'auto'
  bn_momentum: float = 0.9
  cpu_fusions: str = 'auto'
  precision: str = 'float32'
  loss_prediction: bool = False

  @nn.compact
  def __call__(
      self,
      images: jax.Array,
      train: bool = False,
      dropout: bool | None = None,
      return_stages: bool = False,
      loss_coupling: float | jax.Array = 1.0,
  ) -> ModelOutput:
    """Runs the network.

    Args:
      images: [N, H, W, C_in] float32.
      train: BatchNorm uses batch statistics and updates `batch_stats` (pass `mutable=['batch_stats']`).
      dropout: activate the dropout slot; defaults to `train`. MC-dropout passes `train=False, dropout=True`.
      return_stages: also return the stem's and every stack's output (AutoAL's loss-prediction module).
      loss_coupling: with `loss_prediction`, the share of the loss module's gradient that reaches the backbone
        (1: joint training; 0: the module learns on fixed features, as Learning Loss does late in training).

    Returns:
      A ModelOutput with logits [N, C], embedding [N, D] and the stages if requested.
    """
    dtype = PRECISIONS[self.precision]
    conv = functools.partial(Conv, use_bias=self.conv_bias, impl=self.conv_impl, training=train, dtype=dtype)
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-5, dtype=dtype
    )
    block = BLOCK_MODULES[self.arch.block]
    x = conv(self.width, 3, 1, name='stem_conv')(images)
    x = nn.relu(norm(name='stem_bn')(x))
    x = max_pool(x, 3, 2, impl='xla' if self.conv_impl == 'xla' else 'auto', training=train)  # (tuned: auto.)
    stages = [x]
    for stack, features in enumerate(self.arch.widths(self.width)):
      for index in range(self.arch.blocks):
        strides = 2 if (stack > 0 and index == 0) else 1
        x = block(features, strides, conv, norm, name=f'stack{stack}_block{index}')(x)
      stages.append(x)
    embedding = jnp.mean(x, axis=(1, 2)).astype(jnp.float32)  # Head, loss and every query in float32.
    logits = Head(self.num_classes, self.dropout_rate, name='head')(
        embedding, dropout=train if dropout is None else dropout
    )
    predicted_loss = None
    if self.loss_prediction:  # Learning loss: the value is the same either way, the gradient scaled.
      coupled = [loss_coupling * s + (1.0 - loss_coupling) * jax.lax.stop_gradient(s) for s in stages]
      predicted_loss = LossModule(name='loss_module')(coupled)
    return ModelOutput(logits, embedding, tuple(stages) if return_stages else (), predicted_loss)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """How every network of a run is built, besides its architecture.

  Attributes:
    width: base width (channels of the first stack; 64 in the paper).
    conv_bias: convolutions carry a bias (as the official code's).
    dropout_rate: rate of the dropout slot before the head, active in training and in MC-dropout passes.
    conv_impl: the convolution formulation (`jal.layers.CONV_IMPLS`; 'auto' picks per backend and shape by fixed
      rules, 'tuned' by timing them on this machine, `jal.layers.ConvTuner`).
    cpu_fusions: which fusions XLA's CPU backend gives to YNNPACK when it compiles the training step and the
      forward pass (`jal.cpu_fusions`): 'auto' (where measured faster, by the widest stack's channels), 'default'
      (XLA's own list) or 'ynnpack' (always); they round differently.
    precision: the backbone's compute dtype, `PRECISIONS`: 'float32', or 'bfloat16' (mixed precision: convolutions
      and batch norm in bfloat16, parameters, optimiser, pooled embedding, head and loss in float32; no loss
      scaling, as bfloat16 keeps float32's range). For accelerators; CPUs have no fast bfloat16 convolutions.
    loss_prediction: a loss-prediction module on the stem's and every stack's output (Learning Loss, Yoo & Kweon
      2019), trained with the model (`TrainConfig.loss_prediction_weight`); the `learning_loss` strategy reads it.
  """

  width: int = 64
  conv_bias: bool = True
  dropout_rate: float = 0.0
  conv_impl: str = 'auto'
  cpu_fusions: str = 'auto'
  precision: str = 'float32'
  loss_prediction: bool = False

  def __post_init__(self):
    if self.width < 1:
      raise ValueError(f'ModelConfig.width must be >= 1, got {self.width}.')
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f'ModelConfig.dropout_rate must be in [0, 1), got {self.dropout_rate}.')
    if self.conv_impl not in CONV_IMPLS:
      raise ValueError(f'Unknown conv_impl {self.conv_impl!r}; valid: {CONV_IMPLS}.')
    if self.cpu_fusions not in CPU_FUSIONS:
      raise ValueError(f'Unknown cpu_fusions {self.cpu_fusions!r}; valid: {CPU_FUSIONS}.')
    if self.precision not in PRECISIONS:
      raise ValueError(f'Unknown precision {self.precision!r}; valid: {tuple(PRECISIONS)}.')


def build_model(arch: Architecture, num_classes: int, config: ModelConfig | None = None) -> ResNet:
  """Builds A(B, i, j) for `num_classes` classes; see `ResNet`.

  Raises:
    ValueError: on an unknown block type or fewer than two classes.
  """
  config = config or ModelConfig()
  if arch.block not in BLOCK_MODULES:
    raise ValueError(f'No module for block {arch.block!r}; registered: {sorted(BLOCK_MODULES)}.')
  if num_classes < 2:
    raise ValueError(f'num_classes must be >= 2, got {num_classes}.')
  return ResNet(arch, num_classes, config.width, config.conv_bias, config.dropout_rate, config.conv_impl,
                cpu_fusions=config.cpu_fusions, precision=config.precision, loss_prediction=config.loss_prediction)


# Architecture -> the Flax module of a round. The module's `apply(variables, images [N, H, W, C], train=...)`
# returns a `ModelOutput` (logits [N, C], embedding [N, D]); a researcher's own module fits as long as it does.
ModelFn = Callable[[Any], nn.Module]


def model_fn(num_classes: int, config: ModelConfig | None = None) -> ModelFn:
  """The default model factory: A(B, i, j) -> `build_model(arch, num_classes, config)`."""
  return functools.partial(_build, num_classes=num_classes, config=config or ModelConfig())


def _build(arch, *, num_classes, config):
  return build_model(arch, num_classes, config)


# XLA compiles the initialisers at LLVM level 2 instead of its default 3 on the CPU: the same bits (tests/test_train.py
# checks against the default), 5-10x faster to compile (A(1,3) at width 8, two seeds: 2.4 s against 24 s). Their
# unrolled threefry code is what level 3 spends its time on, and they run once per training, so nothing is lost;
# the training step keeps level 3 (level 2 changes its bits). Accelerators keep their defaults (not measured).
INIT_COMPILER_OPTIONS = {'xla_backend_optimization_level': 2}


def init_variables(model: ResNet, rng: jax.Array, image_shape: tuple[int, int, int]) -> dict:
  """Initialises {'params', 'batch_stats'} for images of shape [H, W, C], jitted (op by op, each initialiser would
  compile on its own: ~20 s for a small network on the CPU); inside another jit it is traced into that one."""
  if isinstance(rng, jax.core.Tracer):  # The enclosing jit compiles it, with its own options.
    return _init(model, rng, image_shape)
  return _jitted_init(jax.default_backend() == 'cpu')(model, rng, image_shape)


@functools.cache
def _jitted_init(cpu: bool):
  return jax.jit(_init, static_argnames=('model', 'image_shape'),
                 compiler_options=INIT_COMPILER_OPTIONS if cpu else None)


def _init(model: ResNet, rng: jax.Array, image_shape: tuple[int, int, int]) -> dict:
  return model.init(rng, jnp.zeros((1, *image_shape), jnp.float32), train=False)


def count_params(params) -> int:
  """Number of scalars in a parameter tree."""
  return sum(x.size for x in jax.tree_util.tree_leaves(params))
