"""Inference: model outputs over any number of images in fixed-size padded chunks, accuracy, and the device mesh.

Used by training (validation scores), by the loop (test scores) and by the query strategies (pool scores). The
forward pass is jitted once per (model, sharding) and reused: the last chunk is padded, so nothing recompiles
when the pool or the test split changes size.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jal import cpu_fusions


@struct.dataclass
class Predictions:
  """Model outputs over a set of examples.

  Attributes:
    logits: [N, C] float32.
    probs: [N, C] softmax of the logits.
    embeddings: [N, D] pooled features.
    predicted_loss: [N] a loss-predicting model's predicted loss (`ModelConfig.loss_prediction`); else None.
  """

  logits: jax.Array
  probs: jax.Array
  embeddings: jax.Array
  predicted_loss: jax.Array | None = None

def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh with a 'data' axis over `devices` (default: every device of every process, `jax.devices()`;
  one process: its local devices)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), ('data',))

@functools.lru_cache(maxsize=64)
def _compiled_forward(model, data_sharding, scale=None, dtype=None):
  """The eval-mode forward of one chunk; with `scale`, raw pixels are normalised on the device first:
  (x / scale - mean) / std."""

  def forward(variables, images, mean=None, std=None):
    if scale is not None:
      images = (images.astype(jnp.float32) / scale - mean) / std
    if data_sharding is not None:
      images = jax.lax.with_sharding_constraint(images, data_sharding)
    output = model.apply(variables, images, train=False)
    outputs = output.logits, jax.nn.softmax(output.logits), output.embedding
    if output.predicted_loss is not None:
      outputs += (output.predicted_loss.astype(jnp.float32),)
    return outputs if dtype is None else tuple(x.astype(dtype) for x in outputs)

  return jax.jit(forward, compiler_options=cpu_fusions.compiler_options(model, 'infer'))


def predict(
    model: nn.Module,
    variables: dict,
    images,
    batch_size: int = 1024,
    mesh: Mesh | None = None,
    normalization: tuple[np.ndarray, np.ndarray] | None = None,
    to_host: bool = False,
    dtype=None,
) -> Predictions:
  """Inference in eval mode over any number of images, one fixed-size chunk at a time.

  Only one chunk's activations are alive at once; the last chunk is padded so nothing recompiles. A pool larger
  than memory streams: pass raw pixels from any random-access source (`jal.data.NpyPool`, an `np.memmap`) with
  their `normalization`, and `to_host=True`, and only one chunk of pixels is ever read.

  Args:
    model: the network.
    variables: {'params', 'batch_stats'} of one model.
    images: [N, H, W, C]: float32 normalised images on the host or the device; or, with `normalization`, raw
      pixels (uint8 is scaled by 1/255 first) read chunk by chunk from anything that slices.
    batch_size: chunk size; rounded up to a multiple of the device count.
    mesh: devices to shard each chunk over (default: all devices).
    normalization: (mean [C], std [C]) applied on the device to each chunk (`jal.data.normalization_stats`).
    to_host: copy each chunk's outputs into host arrays as it comes (no [N]-sized device array).
    dtype: the outputs' dtype (float16 halves them); default float32.

  Returns:
    Predictions with logits and probs [N, C] and embeddings [N, D] (numpy arrays with `to_host`, and with
    several processes: then each process reads and scores its own share of the images (`process_share`) and
    every process receives every output, in pool order).
  """
  if len(images.shape) != 4:
    raise ValueError(f'images must be [N, H, W, C], got shape {images.shape}.')
  batch_size, data_sharding = _layout(mesh, batch_size)
  stats = ()
  scale = None
  if normalization is not None:
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    stats = tuple(jnp.asarray(x, jnp.float32) for x in normalization)
  forward = _compiled_forward(model, data_sharding, scale, None if dtype is None else jnp.dtype(dtype))
  if jax.process_count() > 1:
    return _predict_by_process(forward, variables, images, batch_size, data_sharding,
                               tuple(np.asarray(x, np.float32) for x in normalization or ()))
  num_images = images.shape[0]
  outputs = []
  for start, (chunk, count) in zip(range(0, num_images, batch_size), _chunks(images, batch_size)):
    chunk = jnp.asarray(chunk) if normalization is not None else jnp.asarray(chunk, jnp.float32)
    parts = forward(variables, chunk, *stats)
    if not to_host:
      outputs.append(parts)
      continue
    if not outputs:  # Host arrays sized by the first chunk's outputs.
      outputs = [np.empty((num_images, *p.shape[1:]), p.dtype) for p in parts]
    for out, part in zip(outputs, jax.device_get(parts)):
      out[start:start + count] = part[:count]
  if to_host:
    return Predictions(*outputs)
  return Predictions(*(jnp.concatenate(parts)[:num_images] for parts in zip(*outputs)))


def process_share(num_images: int, process_index: int, process_count: int) -> tuple[int, int]:
  """[start, stop): the contiguous rows of N that process `process_index` of `process_count` reads and scores
  (shares differ by at most one row)."""
  base, extra = divmod(num_images, process_count)
  start = process_index * base + min(process_index, extra)
  return start, start + base + (process_index < extra)


def _predict_by_process(forward, variables, images, batch_size: int, data_sharding, stats: tuple) -> Predictions:
  """Every process reads only its share of `images` (`process_share`), `batch_size / processes` rows per step;
  the shares of one step form one global chunk over every device, and the outputs are gathered to every process
  and put back in pool order. All processes take the same number of steps (the last ones padded)."""
  count, shares = jax.process_count(), [process_share(images.shape[0], p, jax.process_count())
                                        for p in range(jax.process_count())]
  local = batch_size // count
  start, stop = shares[jax.process_index()]
  outputs = None
  for step in range(max(1, max(-(-(b - a) // local) for a, b in shares))):
    low = min(start + step * local, stop)
    chunk = np.asarray(images[low:min(low + local, stop)])
    chunk = chunk if stats else chunk.astype(np.float32)
    chunk = np.concatenate([chunk, np.zeros((local - len(chunk), *chunk.shape[1:]), chunk.dtype)])
    global_chunk = jax.make_array_from_process_local_data(data_sharding, chunk, (batch_size, *chunk.shape[1:]))
    parts = multihost_utils.process_allgather(forward(variables, global_chunk, *stats), tiled=True)
    if outputs is None:
      outputs = [np.empty((images.shape[0], *part.shape[1:]), part.dtype) for part in parts]
    for process, (a, b) in enumerate(shares):
      row = min(a + step * local, b)
      rows = min(local, b - row)
      for out, part in zip(outputs, parts):
        out[row:row + rows] = part[process * local:process * local + rows]
  return Predictions(*outputs)


def _layout(mesh: Mesh | None, batch_size: int) -> tuple[int, NamedSharding | None]:
  """(the chunk size rounded up to a multiple of the devices, the chunk's sharding over them or None)."""
  mesh = make_mesh() if mesh is None else mesh
  num_devices = mesh.devices.size
  return -(-batch_size // num_devices) * num_devices, NamedSharding(mesh, P('data')) if num_devices > 1 else None


def _chunks(images, batch_size: int):
  """Yields (chunk [batch_size, H, W, C], how many of its rows are real): the last chunk is zero-padded, on the
  host for host arrays (no device op whose shape depends on N)."""
  for start in range(0, images.shape[0], batch_size):
    chunk = images[start:start + batch_size]
    count = chunk.shape[0]
    if count < batch_size:
      padding = ((0, batch_size - count),) + ((0, 0),) * (chunk.ndim - 1)
      chunk = jnp.pad(chunk, padding) if isinstance(chunk, jax.Array) else np.pad(chunk, padding)
    yield chunk, count


@functools.lru_cache(maxsize=64)
def _compiled_scores(model, data_sharding):
  """(correct predictions, summed cross-entropy) of one padded chunk, the padding masked out."""

  def scores(variables, images, labels, valid):
    if data_sharding is not None:
      images = jax.lax.with_sharding_constraint(images, data_sharding)
    logits = model.apply(variables, images, train=False).logits
    correct = jnp.sum((jnp.argmax(logits, -1) == labels) & valid)
    loss = jnp.sum(jnp.where(valid, optax.softmax_cross_entropy_with_integer_labels(logits, labels), 0.0))
    return correct, loss

  return jax.jit(scores, compiler_options=cpu_fusions.compiler_options(model, 'infer'))


def evaluate(
    model: nn.Module,
    variables: dict,
    images: jax.Array | np.ndarray,
    labels: jax.Array | np.ndarray,
    batch_size: int = 1024,
    mesh: Mesh | None = None,
) -> dict[str, float]:
  """Accuracy and mean cross-entropy of one model on [N] labelled images: {'accuracy', 'loss'}.

  Scored chunk by chunk in one jitted function per model (the last chunk padded and masked): a validation split
  whose size changes every round (iNAS's V') compiles nothing new.
  """
  if images.ndim != 4 or len(labels) != images.shape[0]:
    raise ValueError(f'evaluate needs [N, H, W, C] images and [N] labels, got {images.shape} and {np.shape(labels)}.')
  batch_size, data_sharding = _layout(mesh, batch_size)
  scores = _compiled_scores(model, data_sharding)
  num_images = images.shape[0]
  correct, loss = [], []
  for (chunk, count), (chunk_labels, _) in zip(_chunks(images, batch_size),
                                               _chunks(np.asarray(labels, np.int32), batch_size)):
    chunk_correct, chunk_loss = scores(variables, jnp.asarray(chunk, jnp.float32), chunk_labels,
                                       np.arange(batch_size) < count)
    correct.append(chunk_correct)
    loss.append(chunk_loss)
  correct, loss = jax.device_get((correct, loss))
  # As a float32 mean over the split, as `jnp.mean` of the correct flags gives it.
  accuracy = np.float32(sum(int(c) for c in correct)) / np.float32(num_images)
  return {'accuracy': float(accuracy), 'loss': float(np.sum(np.asarray(loss, np.float64)) / num_images)}
