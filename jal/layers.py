"""Convolution layers with a per-backend, per-shape choice of formulation.

XLA's CPU convolution is slow on the small spatial maps that deep ResNet stacks reach (measured here, batch 128,
forward + backward: a 3x3 conv on a 2x2x512 map took 1,628 ms with XLA's conv and 20 ms as one matrix product
over the nine shifted views -- "im2col"; a strided 4x4x256 -> 512 conv 332 ms against 11 ms), and on the
one-channel stem (54 ms against 13 ms as nine shifted matrix products). On mid-sized maps (14x14x64) XLA's conv
is the fastest (36 ms against 60 ms). All formulations hold the same parameters
(`kernel: [kh, kw, C_in, C_out]`, `bias: [C_out]`, the names and shapes of `flax.linen.Conv`), compute the same
function with the same 'SAME' padding as `lax.conv_general_dilated`, and differ only in speed. The choice is
made in one place, `choose_conv_impl`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax import lax

ConvImpl = Literal['auto', 'tuned', 'xla', 'im2col', 'shifted_matmul']
CONV_IMPLS = ('auto', 'tuned', 'xla', 'im2col', 'shifted_matmul')
FORMULATIONS = ('xla', 'im2col', 'shifted_matmul')


def choose_conv_impl(
    impl: str,
    backend: str,
    height: int,
    width: int,
    in_channels: int,
    kernel_size: int,
    strides: int,
) -> str:
  """Resolves `impl` to a concrete formulation: 'xla', 'im2col' or 'shifted_matmul'.

  'auto' keeps XLA's convolution on accelerators (cuDNN and the TPU conv units are fast at every size). On the
  CPU it follows the per-shape measurement in this module's docstring (reproduced by
  `benchmarks/studies/conv_formulations.py`, per pass): shifted matmuls for few input channels (the stem), im2col
  for 1x1 and strided convs and maps of at most 4x4, XLA's conv elsewhere.
  """
  if impl not in CONV_IMPLS:
    raise ValueError(f'Unknown conv_impl {impl!r}; valid: {CONV_IMPLS}.')
  if impl != 'auto':
    return impl  # ('tuned' is resolved by `ConvTuner`, in `Conv`.)
  if backend != 'cpu':
    return 'xla'
  if kernel_size == 1:
    return 'im2col'  # A strided slice and one matmul.
  if in_channels <= 4:
    return 'shifted_matmul'
  if strides > 1 or max(height, width) <= 4:
    return 'im2col'
  return 'xla'


def _median_seconds(run: Callable[[], object], repeats: int = 5) -> float:
  """Median wall time of `run()` over `repeats` calls, after one warm-up call."""
  jax.block_until_ready(run())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(run())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _conv(impl: str, x, kernel, strides: int):
  """The convolution in formulation `impl`, one of FORMULATIONS."""
  if impl == 'im2col':
    return im2col_conv(x, kernel, strides)
  if impl == 'shifted_matmul':
    return shifted_matmul_conv(x, kernel, strides)
  if impl != 'xla':
    raise ValueError(f'Unknown conv formulation {impl!r}; valid: {FORMULATIONS}.')
  return lax.conv_general_dilated(x, kernel, (strides, strides), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _benchmark(impl: str, x_shape, kernel_shape, strides: int, training: bool) -> Callable[[], object]:
  """A zero-argument call of one formulation, compiled: the forward pass, or with `training` the forward and
  both gradients (input and kernel), as a training step needs them."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal(x_shape, np.float32)
  kernel = rng.standard_normal(kernel_shape, np.float32) * 0.1
  conv = functools.partial(_conv, impl, strides=strides)
  if training:
    fn = jax.jit(jax.grad(lambda x, k: jnp.sum(conv(x, k) ** 2), argnums=(0, 1)))
  else:
    fn = jax.jit(conv)
  compiled = fn.lower(x, kernel).compile()
  return lambda: compiled(x, kernel)


@dataclasses.dataclass
class ConvTuner:
  """Picks each conv shape's fastest formulation by timing them on this machine at first use (as cuDNN's
  benchmark mode does), and keeps the choice in a JSON file keyed by backend, device kind and shape.

  Attributes:
    path: the cache file (default `~/.cache/jal/conv_tuning.json`, or $JAL_CONV_TUNING_CACHE).
    timer: (formulation, zero-argument call) -> seconds; tests inject one, so no test depends on this machine's
      speed.
    candidates: the formulations timed; accelerators time XLA's conv only unless given more.
  """
  path: str = ''
  timer: Callable[[str, Callable[[], object]], float] = lambda impl, run: _median_seconds(run)
  candidates: tuple[str, ...] | None = None
  measured: int = 0  # How many shapes this tuner timed (rather than read from its cache).
  used: dict[str, str] = dataclasses.field(default_factory=dict)  # Key -> choice of every shape asked for here.

  def __post_init__(self):
    self.path = os.path.expanduser(self.path or os.environ.get('JAL_CONV_TUNING_CACHE', '')
                                   or os.path.join('~', '.cache', 'jal', 'conv_tuning.json'))
    self._choices = None

  def choices(self) -> dict[str, dict]:
    if self._choices is None:
      self._choices = {}
      if os.path.exists(self.path):
        with open(self.path, encoding='utf-8') as f:
          self._choices = json.load(f)
    return self._choices

  @staticmethod
  def key(backend: str, device_kind: str, x_shape, features: int, kernel_size: int, strides: int,
          training: bool) -> str:
    n, h, w, c = x_shape
    return (f'{backend}|{device_kind}|{"train" if training else "infer"}|n{n} {h}x{w}x{c}->{features} '
            f'k{kernel_size} s{strides}')

  def choose(self, x_shape, features: int, kernel_size: int, strides: int, training: bool) -> str:
    """The fastest formulation for this shape and direction: from the cache, or timed now and cached."""
    device = jax.devices()[0]
    key = self.key(device.platform, device.device_kind, x_shape, features, kernel_size, strides, training)
    cached = self.choices().get(key)
    if cached is not None and cached.get('choice') in FORMULATIONS:  # (Else written by another version: timed anew.)
      self.used[key] = cached['choice']
      return cached['choice']
    candidates = self.candidates or (FORMULATIONS if device.platform == 'cpu' else ('xla',))
    kernel_shape = (kernel_size, kernel_size, x_shape[-1], features)
    with jax.ensure_compile_time_eval():  # Timed outside the model's trace, on concrete arrays.
      seconds = {impl: self.timer(impl, _benchmark(impl, tuple(x_shape), kernel_shape, strides, training))
                 for impl in candidates}
    choice = min(seconds, key=seconds.get)
    self.choices()[key] = {'choice': choice, 'seconds': seconds}
    self.measured += 1
    self.used[key] = choice
    self._save()
    return choice

  def _save(self) -> None:
    try:
      os.makedirs(os.path.dirname(self.path) or '.', exist_ok=True)
      with open(self.path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(self.choices(), f, indent=1, sort_keys=True)
      os.replace(self.path + '.tmp', self.path)
    except OSError as error:  # A read-only home only costs the next process a re-measurement.
      logging.warning('Conv tuning cache %s not written (%s): the next process times these shapes again.',
                      self.path, error)


_TUNER: ConvTuner | None = None


def conv_tuner() -> ConvTuner:
  """The process's tuner (its cache file read once); `set_conv_tuner` replaces it (tests, other cache files)."""
  global _TUNER
  if _TUNER is None:
    _TUNER = ConvTuner()
  return _TUNER


def set_conv_tuner(tuner: ConvTuner | None) -> None:
  global _TUNER
  _TUNER = tuner


def _shifted_views(x: jax.Array, kernel_shape, strides: int) -> list[jax.Array]:
  """The kh*kw strided views of 'SAME'-padded `x` that each kernel tap multiplies."""
  kh, kw = kernel_shape[:2]
  n, h, w, c_in = x.shape
  (pad_top, pad_bottom), (pad_left, pad_right) = lax.padtype_to_pads(
      (h, w), (kh, kw), (strides, strides), 'SAME'
  )
  x = jnp.pad(x, ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right), (0, 0)))
  out_h = -(-h // strides)
  out_w = -(-w // strides)
  return [
      lax.slice(
          x,
          (0, dy, dx, 0),
          (n, dy + (out_h - 1) * strides + 1, dx + (out_w - 1) * strides + 1, c_in),
          (1, strides, strides, 1),
      )
      for dy in range(kh)
      for dx in range(kw)
  ]


def shifted_matmul_conv(x: jax.Array, kernel: jax.Array, strides: int) -> jax.Array:
  """'SAME' convolution as a sum of kh*kw matrix products, one per kernel tap.

  Same contract as `im2col_conv`; cheaper when C_in is small because no patch matrix is written.
  """
  kh, kw = kernel.shape[:2]
  views = _shifted_views(x, kernel.shape, strides)
  out = jnp.dot(views[0], kernel[0, 0])
  for tap, view in enumerate(views[1:], start=1):
    out = out + jnp.dot(view, kernel[tap // kw, tap % kw])
  return out


def im2col_conv(x: jax.Array, kernel: jax.Array, strides: int) -> jax.Array:
  """'SAME' convolution as one matrix product over the kh*kw shifted views of `x`.

  Args:
    x: [N, H, W, C_in] input.
    kernel: [kh, kw, C_in, C_out] weights.
    strides: the stride in both spatial dimensions.

  Returns:
    [N, ceil(H / strides), ceil(W / strides), C_out], equal to
    `lax.conv_general_dilated(x, kernel, (strides,) * 2, 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))`.
  """
  kh, kw, c_in, c_out = kernel.shape
  views = _shifted_views(x, kernel.shape, strides)
  patches = views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)
  return jnp.dot(patches, kernel.reshape(kh * kw * c_in, c_out))


def choose_pool_impl(impl: str, backend: str, training: bool = True) -> str:
  """'auto' -> 'separable' for training on the CPU, 'xla' elsewhere.

  On the CPU XLA's select-and-scatter gradient of a `reduce_window` max is slow: the stem (conv-BN-ReLU-pool on
  a 128x28x28x64 batch) took 136 ms forward + backward with it, 110 ms as the max of nine strided views, and
  57 ms as a max over three column views followed by a max over three row views. Forward alone, XLA's
  `reduce_window` is the faster (53 ms against 112 ms on 1024x28x28x64; `benchmarks/studies/inference_rules.py`), and
  both give the same values.
  """
  if impl not in POOL_IMPLS:
    raise ValueError(f'Unknown pool impl {impl!r}; valid: {POOL_IMPLS}.')
  if impl != 'auto':
    return impl
  return 'separable' if backend == 'cpu' and training else 'xla'


POOL_IMPLS = ('auto', 'xla', 'separable')


def max_pool(x: jax.Array, window: int = 3, strides: int = 2, impl: str = 'auto',
             training: bool = True) -> jax.Array:
  """'SAME' max-pooling of [N, H, W, C] over square windows, equal to `flax.linen.max_pool`.

  'separable' takes the max over `window` strided column views of the -inf-padded input, then over `window`
  strided row views of that, so its gradient is a short chain of selects instead of a select-and-scatter;
  'auto' takes it when `training` (a gradient will be taken) on the CPU. Its ops carry the name scope 'max_pool'
  in profiles.
  """
  with jax.named_scope('max_pool'):
    return _max_pool(x, window, strides, choose_pool_impl(impl, jax.default_backend(), training))


def _max_pool(x: jax.Array, window: int, strides: int, impl: str) -> jax.Array:
  if impl == 'xla':
    return nn.max_pool(x, (window, window), strides=(strides, strides), padding='SAME')
  n, h, w, c = x.shape
  (pad_top, pad_bottom), (pad_left, pad_right) = lax.padtype_to_pads(
      (h, w), (window, window), (strides, strides), 'SAME')
  x = jnp.pad(x, ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right), (0, 0)), constant_values=-jnp.inf)
  out_h, out_w = -(-h // strides), -(-w // strides)
  columns = functools.reduce(jnp.maximum, [
      lax.slice(x, (0, 0, d, 0), (n, x.shape[1], d + (out_w - 1) * strides + 1, c), (1, 1, strides, 1))
      for d in range(window)])
  return functools.reduce(jnp.maximum, [
      lax.slice(columns, (0, d, 0, 0), (n, d + (out_h - 1) * strides + 1, out_w, c), (1, strides, 1, 1))
      for d in range(window)])


class Conv(nn.Module):
  """A square 'SAME' convolution whose formulation is chosen per backend and map size.

  Attributes:
    features: output channels.
    kernel_size: side of the square kernel.
    strides: stride in both spatial dimensions.
    use_bias: add a per-channel bias (Keras' default, which the official active-iNAS model keeps before BN).
    impl: 'auto' (see `choose_conv_impl`), 'tuned' (the fastest measured on this machine, `ConvTuner`),
      'xla', 'im2col' or 'shifted_matmul'.
    training: with 'tuned', time forward and backward (training) or the forward alone (inference).
    dtype: the computation's dtype (bfloat16 for mixed precision); the parameters stay float32.
  """

  features: int
  kernel_size: int = 3
  strides: int = 1
  use_bias: bool = True
  impl: str = 'auto'
  training: bool = True
  dtype: Any = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.initializers.variance_scaling(
      2.0, 'fan_out', 'normal'
  )

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps [N, H, W, C_in] to [N, ceil(H/s), ceil(W/s), features]."""
    k = self.kernel_size
    kernel = self.param(
        'kernel', self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32
    )
    if self.impl == 'tuned':  # Initialisation only needs the shapes: nothing to time.
      impl = 'xla' if self.is_initializing() else conv_tuner().choose(
          x.shape, self.features, k, self.strides, self.training)
    else:
      impl = choose_conv_impl(self.impl, jax.default_backend(), x.shape[1], x.shape[2], x.shape[3], k,
                              self.strides)
    y = _conv(impl, x.astype(self.dtype), kernel.astype(self.dtype), self.strides)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
    return y
