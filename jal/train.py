"""The training engine: SGD on a labelled subset with a round-independent step count (active-iNAS §5.1; SPEC §3).

An "epoch" is a fixed number of examples drawn from the labelled set (the paper over-samples S to 50,000), so the
number of steps is the same whatever |L| is. The labelled set is a mask over the pool, but only L's images go to
the device, padded to a power-of-two bucket (`bucket_size`), so a pool of any size stays on the host (or on disk)
and a growing L recompiles the step once per doubling past 16 MiB. Each epoch visits the labelled items in a fresh
random order (cycling when |L| is smaller than the epoch), and one jitted, donated step gathers its batch on the
device.

Several seeds train at once (`train(..., rngs=[R keys])`), either vmapped or one after another
(`seed_parallelism`, the one place that chooses). Data parallelism uses `jax.jit` with a `NamedSharding`
over a 'data' mesh axis: the batch is split across devices, parameters are replicated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jal import cpu_fusions, pretrained, progress
from jal.augment import AugmentConfig, augment
from jal.loss_prediction import margin_ranking_loss
from jal.models import INIT_COMPILER_OPTIONS, init_variables
from jal.predict import evaluate, make_mesh

# How several seeds train at once, per backend: on the CPU vmapped conv nets train slower than the same models
# in turn (benchmarks/train_throughput.py); on accelerators vmap batches the seeds into wider kernels (unmeasured).
SEED_PARALLELISM = {'cpu': 'sequential', 'gpu': 'vmap', 'tpu': 'vmap'}


def seed_parallelism(choice: str = 'auto', backend: str | None = None) -> str:
  """'vmap' or 'sequential': `choice` itself, or for 'auto' the backend's entry of `SEED_PARALLELISM`."""
  if choice != 'auto':
    return choice
  return SEED_PARALLELISM.get(backend or jax.default_backend(), 'sequential')


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation hyper-parameters; the defaults are the paper's (SPEC §3).

  Attributes:
    epochs: number of epochs (200 in the paper).
    examples_per_epoch: examples drawn from the labelled set per epoch (50,000 in the paper), whatever |L| is.
    batch_size: global batch size; must divide evenly over the devices of the mesh.
    learning_rate: initial SGD learning rate.
    momentum: SGD momentum.
    nesterov: use Nesterov momentum (as the official code does).
    weight_decay: decoupled L2 coefficient on convolution kernels only.
    lr_boundaries: fractions of training at which the learning rate is multiplied by `lr_decay`.
    lr_decay: the factor applied at each boundary.
    augment: on-device augmentation.
    eval_every: evaluate on the validation set every this many epochs (0: only at the end).
    eval_batch_size: chunk size for inference.
    seed_parallelism: how several seeds train: 'auto' (per backend, `SEED_PARALLELISM`), 'vmap' or 'sequential'.
    freeze: 'none' trains every parameter; 'backbone' trains the model's 'head' only, the backbone's BatchNorm
      on its running statistics (a linear probe of pretrained features, with the head's dropout).
    loss_prediction_weight: λ, the weight of the loss-prediction module's margin ranking loss for a model built
      with `ModelConfig.loss_prediction` (Learning Loss: 1).
    loss_prediction_detach: the share of training after which the module's gradient no longer reaches the
      backbone (Learning Loss: epoch 120 of 200, 0.6).
  """

  epochs: int = 200
  examples_per_epoch: int = 50_000
  batch_size: int = 128
  learning_rate: float = 0.1
  momentum: float = 0.9
  nesterov: bool = True
  weight_decay: float = 5e-4
  lr_boundaries: tuple[float, ...] = (0.5, 0.75)
  lr_decay: float = 0.1
  augment: AugmentConfig = AugmentConfig()
  eval_every: int = 0
  eval_batch_size: int = 1024
  seed_parallelism: str = 'auto'
  freeze: str = 'none'
  loss_prediction_weight: float = 1.0
  loss_prediction_detach: float = 0.6

  def __post_init__(self):
    if self.loss_prediction_weight < 0 or not 0.0 <= self.loss_prediction_detach <= 1.0:
      raise ValueError('TrainConfig needs loss_prediction_weight >= 0 and loss_prediction_detach in [0, 1]; got '
                       f'{self.loss_prediction_weight}, {self.loss_prediction_detach}.')
    if self.epochs < 1 or self.batch_size < 1 or self.examples_per_epoch < self.batch_size:
      raise ValueError(
          'TrainConfig needs epochs >= 1, batch_size >= 1 and examples_per_epoch >= batch_size; got '
          f'epochs={self.epochs}, batch_size={self.batch_size}, '
          f'examples_per_epoch={self.examples_per_epoch}.'
      )
    if self.seed_parallelism not in ('auto', 'vmap', 'sequential'):
      raise ValueError("TrainConfig.seed_parallelism must be 'auto', 'vmap' or 'sequential', got "
                       f'{self.seed_parallelism!r}.')
    if self.freeze not in pretrained.FREEZE:
      raise ValueError(f'TrainConfig.freeze must be one of {pretrained.FREEZE}, got {self.freeze!r}.')
    if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
      raise ValueError(f'TrainConfig.learning_rate must be a positive finite number, got {self.learning_rate}.')

  @classmethod
  def from_dict(cls, fields: dict) -> TrainConfig:
    """From a plain (nested) dict such as `ml_collections.ConfigDict.to_dict()` of a config's `train` section."""
    fields = dict(fields)
    if isinstance(fields.get('augment'), dict):
      fields['augment'] = AugmentConfig(**fields['augment'])
    if 'lr_boundaries' in fields:
      fields['lr_boundaries'] = tuple(fields['lr_boundaries'])
    return cls(**fields)

  @property
  def steps_per_epoch(self) -> int:
    return self.examples_per_epoch // self.batch_size

  @property
  def total_steps(self) -> int:
    return self.epochs * self.steps_per_epoch


@struct.dataclass
class TrainState:
  """Everything that changes during training. With several seeds, every leaf has a leading [R] axis."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any

  @property
  def variables(self) -> dict:
    """The variables `model.apply` takes (a model without BatchNorm has no 'batch_stats')."""
    return {'params': self.params, 'batch_stats': self.batch_stats} if self.batch_stats else {'params': self.params}

  def apply_gradients(self, tx: optax.GradientTransformation, grads, batch_stats=None) -> TrainState:
    """One optimiser step: the update of every network jal trains (task model, AutoAL's three). Its ops carry
    the name scope 'optimizer' in profiles."""
    with jax.named_scope('optimizer'):
      updates, opt_state = tx.update(grads, self.opt_state, self.params)
      params = optax.apply_updates(self.params, updates)
    return TrainState(self.step + 1, params, self.batch_stats if batch_stats is None else batch_stats, opt_state)


@dataclasses.dataclass
class TrainResult:
  """What `train` returns.

  Attributes:
    state: the R trained states, stacked along a leading axis (use `unstack` or `state_for_seed`).
    history: per seed, one dict per logged epoch: 'epoch', 'train/loss', 'train/accuracy', and
      'val/loss', 'val/accuracy' when a validation set was given.
    seconds: wall time of the whole call, compilation included.
  """

  state: TrainState
  history: list[list[dict[str, float]]]
  seconds: float

  @property
  def num_seeds(self) -> int:
    return len(self.history)

  def state_for_seed(self, seed_index: int) -> TrainState:
    """The trained state of one seed."""
    return jax.tree_util.tree_map(lambda x: x[seed_index], self.state)

  def best_val_accuracy(self) -> list[float]:
    """Per seed, the best validation accuracy over the evaluations (the official iNAS score)."""
    return [max(e['val/accuracy'] for e in h if 'val/accuracy' in e) for h in self.history]

  def curve(self, seed_index: int = 0) -> list[dict]:
    """One seed's per-epoch curve for result rows: epoch, step, train loss and accuracy, validation scores."""
    return [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in epoch.items()
             if k in ('epoch', 'step', 'train/loss', 'train/accuracy') or k.startswith('val/')}
            for epoch in self.history[seed_index]]

  def final_val_accuracy(self) -> list[float]:
    """Per seed, the validation accuracy at the end of training."""
    return [h[-1]['val/accuracy'] for h in self.history]


def _conv_kernel_mask(params) -> Any:
  """True for convolution kernels ([kh, kw, C_in, C_out]); weight decay touches nothing else."""
  return jax.tree_util.tree_map_with_path(
      lambda path, x: getattr(path[-1], 'key', None) == 'kernel' and x.ndim == 4, params
  )


def make_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
  """SGD with (Nesterov) momentum, piecewise-constant lr, and weight decay on conv kernels only.

  The same optimisation fields and step count give the same (hashable) transformation, whatever the config's
  other fields (evaluation interval, augmentation, ...), so jitted steps are reused across them.
  """
  return _optimizer(config.learning_rate, config.momentum, config.nesterov, config.weight_decay,
                    tuple(config.lr_boundaries), config.lr_decay, total_steps, config.freeze)


@functools.cache
def _optimizer(learning_rate, momentum, nesterov, weight_decay, lr_boundaries, lr_decay, total_steps,
               freeze='none'):
  boundaries = {max(1, int(round(fraction * total_steps))): lr_decay for fraction in lr_boundaries}
  schedule = optax.piecewise_constant_schedule(learning_rate, boundaries)
  tx = optax.chain(
      optax.masked(optax.add_decayed_weights(weight_decay), _conv_kernel_mask),
      optax.sgd(schedule, momentum=momentum, nesterov=nesterov),
  )
  if freeze == 'none':
    return tx
  # A frozen backbone gets no update at all (weight decay included); the head trains as before.
  return optax.multi_transform({'train': tx, 'frozen': optax.set_to_zero()},
                               functools.partial(pretrained.freeze_labels, freeze=freeze))


def create_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    rng: jax.Array,
    image_shape: tuple[int, int, int],
) -> TrainState:
  """Initialises parameters, batch statistics and optimiser state for images of shape [H, W, C]."""
  variables = init_variables(model, rng, image_shape)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=variables['params'],
      batch_stats=variables.get('batch_stats', {}),
      opt_state=tx.init(variables['params']),
  )


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of [N, C] logits against [N] int labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def train_step(
    state: TrainState,
    images: jax.Array,
    labels: jax.Array,
    rng: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    augment_config: AugmentConfig,
    freeze: str = 'none',
    loss_prediction: tuple[float, int] | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on a [B, H, W, C] batch with [B] int labels. Pure; `train` jits it with the batch gather.

  With freeze='backbone' no gradient flows into the backbone (XLA drops its backward pass) and its BatchNorm
  runs on the running statistics, which stay as they are; the head trains with its dropout. With
  `loss_prediction` = (λ, detach step), a loss-predicting model adds λ times its module's margin ranking loss
  against the per-sample loss, the module's gradient reaching the backbone until the detach step.

  Returns:
    The new state and {'train/loss', 'train/accuracy'} scalars.
  """
  augment_rng, dropout_rng = jax.random.split(rng)
  images = augment(images, augment_rng, augment_config)
  frozen = freeze == 'backbone'
  extra = {}
  if loss_prediction is not None:
    extra['loss_coupling'] = (state.step < loss_prediction[1]).astype(jnp.float32)

  def loss_fn(params):
    if frozen:
      params = {k: v if k == pretrained.HEAD else jax.lax.stop_gradient(v) for k, v in params.items()}
    output, updates = model.apply(
        {**state.variables, 'params': params},
        images,
        rngs={'dropout': dropout_rng},
        mutable=['batch_stats'],
        **({'train': False, 'dropout': True} if frozen else {'train': True}), **extra,
    )
    losses = optax.softmax_cross_entropy_with_integer_labels(output.logits, labels)
    loss = losses.mean()
    if loss_prediction is not None:
      loss += loss_prediction[0] * margin_ranking_loss(output.predicted_loss, losses)
    return loss, (output.logits, updates.get('batch_stats', {}))

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  new_state = state.apply_gradients(tx, grads, batch_stats)
  return new_state, {'train/loss': loss, 'train/accuracy': accuracy}


# The least device memory the labelled set is padded to: small runs (|L| under a few thousand small images)
# compile the training step once, as when the whole pool sat on the device.
LABELED_BUCKET_BYTES = 16 << 20


def bucket_size(num_labeled: int, pool_size: int, row_bytes: int, min_bytes: int | None = None) -> int:
  """Rows the labelled set is padded to on the device: the next power of two >= `num_labeled`, at least
  `min_bytes` (default `LABELED_BUCKET_BYTES`) of rows of `row_bytes` (rounded down to a power of two, >= 64),
  at most `pool_size`. A growing L recompiles the training step once per doubling past that, not every round."""
  min_bytes = LABELED_BUCKET_BYTES if min_bytes is None else min_bytes
  least = max(64, 1 << max(0, (min_bytes // max(1, row_bytes)).bit_length() - 1))
  return min(pool_size, max(least, 1 << max(0, int(num_labeled) - 1).bit_length()))


def epoch_order(items: jax.Array, num_labeled: jax.Array, rng: jax.Array, pool_size: int) -> jax.Array:
  """A random order of the labelled set's slots: [B] slot indices, the |L| filled ones first in random order.

  `items` [B] holds each slot's pool index (slots past `num_labeled` are padding). The random keys are drawn over
  the whole pool's `pool_size` indices and read at L's, so an item's place in the order depends on its pool index
  and the key only, never on how L is stored or padded (rows stay those of a run that kept the pool on device).
  """
  keys = jax.random.uniform(rng, (pool_size,))[items]
  return jnp.argsort(jnp.where(jnp.arange(items.shape[0]) < num_labeled, keys, 2.0)).astype(jnp.int32)


def _sample_and_step(
    state, images, labels, order, num_labeled, step_in_epoch, rng, mean=None, std=None, *, model, tx,
    augment_config, batch_size, data_sharding, scale=None, freeze='none', loss_prediction=None,
):
  """Gathers the batch for `step_in_epoch` from the epoch's order (cycling over |L|) and takes one step; with
  `scale`, the batch's raw pixels are normalised first: (x / scale - mean) / std."""
  positions = (step_in_epoch * batch_size + jnp.arange(batch_size)) % num_labeled
  indices = order[positions]
  batch_images, batch_labels = images[indices], labels[indices]
  if scale is not None:
    batch_images = (batch_images.astype(jnp.float32) / scale - mean) / std
  if data_sharding is not None:
    batch_images = jax.lax.with_sharding_constraint(batch_images, data_sharding)
    batch_labels = jax.lax.with_sharding_constraint(batch_labels, data_sharding)
  return train_step(
      state, batch_images, batch_labels, rng, model=model, tx=tx, augment_config=augment_config, freeze=freeze,
      loss_prediction=loss_prediction,
  )


@functools.lru_cache(maxsize=64)
def _compiled_step(model, tx, augment_config, batch_size, data_sharding, vmapped, scale=None, freeze='none',
                   loss_prediction=None):
  """The jitted, donated step for one (model, optimiser, batch layout, pixel scale, frozen part); cached so
  rounds reuse it."""
  body = functools.partial(
      _sample_and_step, model=model, tx=tx, augment_config=augment_config, batch_size=batch_size,
      data_sharding=data_sharding, scale=scale, freeze=freeze, loss_prediction=loss_prediction,
  )
  if vmapped:
    body = jax.vmap(body, in_axes=(0, None, None, 0, None, None, 0, None, None))
  return jax.jit(body, donate_argnums=0, compiler_options=cpu_fusions.compiler_options(model, 'train'))


@functools.lru_cache(maxsize=64)
def _compiled_init(model, tx, image_shape, vmapped, replicated):
  """Initialises state already placed as the step returns it (replicated), so the step traces once.

  The variables compile once per model (`init_variables`, whose random initialisers are most of a small
  network's compile time), the optimiser state once per (model, optimiser): a candidate that trains on another
  schedule reuses its architecture's initialiser.
  """
  variables_fn = _variables_init(model, image_shape, vmapped)
  opt_init = jax.jit(jax.vmap(tx.init) if vmapped else tx.init, out_shardings=replicated)

  def init(rng):
    variables = variables_fn(rng)
    params = jax.device_put(variables['params'], replicated)
    return TrainState(jax.device_put(jnp.zeros(rng.shape, jnp.int32), replicated), params,
                      jax.device_put(variables.get('batch_stats', {}), replicated), opt_init(params))

  return init


@functools.lru_cache(maxsize=64)
def _variables_init(model, image_shape, vmapped):
  """keys -> initial variables of `model` (one key, or [R] keys when vmapped), compiled once per model."""
  if not vmapped:
    return functools.partial(init_variables, model, image_shape=image_shape)
  # `init_variables` is traced into this one compile, so the initialisers' options go here.
  options = INIT_COMPILER_OPTIONS if jax.default_backend() == 'cpu' else None
  return jax.jit(jax.vmap(lambda rng: init_variables(model, rng, image_shape)), compiler_options=options)


def _warm_init(model, tx, image_shape, variables, vmapped, replicated):
  """An init_fn (keys -> state) that starts every seed from `variables`, placed as the step returns its state."""
  expected = jax.eval_shape(lambda: init_variables(model, jax.random.key(0), image_shape))
  got = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  if jax.tree_util.tree_structure(expected) != jax.tree_util.tree_structure(got) or any(
      a.shape != b.shape for a, b in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(got))):
    raise ValueError('init does not fit the model: its variables must have the tree and shapes of '
                     f'init_variables(model, ...) ({model.arch if hasattr(model, "arch") else model}); inherit them '
                     'with jal.inherit.inherit.')
  # On the host: every call places fresh buffers (the step donates its state, so seeds cannot share them).
  state = jax.device_get(TrainState(jnp.zeros((), jnp.int32), got['params'], got['batch_stats'],
                                    tx.init(got['params'])))

  def init_fn(rngs):
    if not vmapped:
      return jax.device_put(state, replicated)
    return jax.device_put(jax.tree_util.tree_map(lambda x: np.broadcast_to(x, (rngs.shape[0], *x.shape)), state),
                          replicated)

  return init_fn


_compiled_epoch_order = jax.jit(epoch_order, static_argnames='pool_size')
_compiled_epoch_orders = jax.jit(jax.vmap(epoch_order, in_axes=(None, None, 0, None)), static_argnums=3)


def as_key_batch(rngs: jax.Array) -> jax.Array:
  """Returns [R] typed PRNG keys from one key or R keys, typed (`jax.random.key`) or raw (`PRNGKey`)."""
  rngs = jnp.asarray(rngs) if not isinstance(rngs, jax.Array) else rngs
  if not jnp.issubdtype(rngs.dtype, jax.dtypes.prng_key):
    if rngs.dtype != jnp.uint32 or rngs.shape[-1:] != (2,) or rngs.ndim > 2:
      raise ValueError(
          f'rngs must be PRNG keys (jax.random.key(seed), or a stack of them), got {rngs.dtype} '
          f'{rngs.shape}.')
    rngs = jax.random.wrap_key_data(rngs)
  if rngs.ndim > 1:
    raise ValueError(f'rngs must be one key or a 1-D stack of keys, got key shape {rngs.shape}.')
  return rngs[None] if rngs.ndim == 0 else rngs


def _split_named(rng: jax.Array, batched: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(init_rng, order_rng, step_rng) of one seed's key, or of each of [R] keys."""
  if batched:
    split = jax.vmap(lambda k: jax.random.split(k, 3))(rng)
    return split[:, 0], split[:, 1], split[:, 2]
  init_rng, order_rng, step_rng = jax.random.split(rng, 3)
  return init_rng, order_rng, step_rng


def _gather_rows(images, items: np.ndarray, rows: int, dtype) -> np.ndarray:
  """[rows, H, W, C] `dtype` on the host: the images at `items` (from a numpy array, a memory map, a
  `jal.data.NpyPool` or a device array: only those rows are read), zero-padded to `rows`."""
  gathered = np.asarray(images[items], dtype)
  return np.concatenate([gathered, np.zeros((rows - len(items), *gathered.shape[1:]), dtype)])


def _validate_training_data(images, labels, labeled_mask, num_classes):
  if len(images.shape) != 4:
    raise ValueError(f'images must be [N, H, W, C], got shape {images.shape}.')
  if labels.shape != (images.shape[0],):
    raise ValueError(
        f'labels must be [N] with N = {images.shape[0]} (one per image), got shape {labels.shape}.'
    )
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f'labels must be integers, got dtype {labels.dtype}; cast with labels.astype(int).')
  if labeled_mask.shape != labels.shape or labeled_mask.dtype != bool:
    raise ValueError(
        f'labeled_mask must be a bool [N] array with N = {labels.shape[0]}, got '
        f'{labeled_mask.dtype} {labeled_mask.shape}.'
    )
  num_labeled = int(np.sum(np.asarray(labeled_mask)))
  if num_labeled == 0:
    raise ValueError('labeled_mask selects no example: label at least one item before training.')
  used = np.asarray(labels)[np.asarray(labeled_mask)]
  if used.min() < 0 or used.max() >= num_classes:
    raise ValueError(
        f'labels of labelled items must lie in [0, {num_classes}), found range '
        f'[{used.min()}, {used.max()}]; check num_classes or the label encoding.'
    )
  return num_labeled


def train(
    model: nn.Module,
    config: TrainConfig,
    images: jax.Array | np.ndarray,
    labels: jax.Array | np.ndarray,
    rngs: jax.Array,
    labeled_mask: jax.Array | np.ndarray | None = None,
    validation: tuple[Any, Any] | None = None,
    schedule_fraction: float = 1.0,
    mesh: Mesh | None = None,
    init: dict | None = None,
    normalization: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainResult:
  """Trains R independent models of one architecture on the labelled items of a pool.

  Args:
    model: the network (`jal.models.build_model`, or any Flax module whose `apply(..., train=)` returns a
      `jal.models.ModelOutput` and that has a `num_classes` attribute).
    config: optimisation hyper-parameters.
    images: [N, H, W, C] float32 pool images (normalised), or with `normalization` raw pixels (uint8 is scaled
      by 1/255): a numpy array, a memory map, a `jal.data.NpyPool` or a device array. Only the labelled rows are
      read, and only they go to the device (uint8 stays uint8 there).
    labels: [N] int labels; only entries where `labeled_mask` is True are read.
    rngs: [R] PRNG keys, one per seed (a single key trains one model); each key fixes the initialisation, the
      example order, the augmentation and dropout of its model.
    labeled_mask: [N] bool, the labelled set L (default: every item).
    validation: optional (images [M, H, W, C], labels [M]) scored every `config.eval_every` epochs and at the
      end; the test set never belongs here.
    schedule_fraction: train for this fraction of the full schedule and stop ("premature evaluation", iNAS
      §4.3): the
      learning-rate schedule is the full one, truncated.
    mesh: devices to run data-parallel on (default: all local devices on a 'data' axis).
    init: variables {'params', 'batch_stats'} every seed starts from instead of a fresh initialisation (a warm
      start, e.g. weights inherited from a parent: `jal.inherit`); the optimiser state starts fresh. Its tree
      must be the model's.
    normalization: (mean [C], std [C]) applied on the device to each batch of raw `images`
      (`jal.data.normalization_stats`), as `jal.predict.predict` does.

  Returns:
    A TrainResult with the R states stacked and a per-seed history.

  Raises:
    ValueError: on malformed images, labels or mask, or a batch that does not divide over the devices.
  """
  start = time.perf_counter()
  rngs = as_key_batch(rngs)
  num_seeds = rngs.shape[0]
  if not hasattr(images, 'shape'):
    images = np.asarray(images)
  labels = np.asarray(labels) if not isinstance(labels, jax.Array) else labels
  if labeled_mask is None:
    labeled_mask = np.ones(labels.shape, bool)
  labeled_mask = np.asarray(labeled_mask)
  num_labeled = _validate_training_data(images, labels, labeled_mask, model.num_classes)
  if not 0.0 < schedule_fraction <= 1.0:
    raise ValueError(f'schedule_fraction must be in (0, 1], got {schedule_fraction}.')

  mesh = make_mesh() if mesh is None else mesh
  num_devices = mesh.devices.size
  if config.batch_size % num_devices:
    raise ValueError(
        f'batch_size {config.batch_size} does not divide over {num_devices} devices; use a multiple of '
        f'{num_devices}.'
    )
  replicated = NamedSharding(mesh, P())
  data_sharding = NamedSharding(mesh, P('data')) if num_devices > 1 else None
  # Only L goes to the device, padded to a bucket (`bucket_size`): never the pool, whose size does not matter.
  pool_size = labels.shape[0]
  items = np.flatnonzero(labeled_mask)
  dtype = images.dtype if normalization is not None else np.float32
  row_bytes = int(np.prod(images.shape[1:])) * np.dtype(dtype).itemsize
  padded = np.zeros(bucket_size(num_labeled, pool_size, row_bytes), np.int32)
  padded[:num_labeled] = items
  scale, stats = None, (None, None)
  if normalization is not None:
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    stats = tuple(jax.device_put(np.asarray(x, np.float32), replicated) for x in normalization)
  images = _gather_rows(images, items, len(padded), dtype)
  labels = jax.device_put(np.pad(np.asarray(labels[items], np.int32), (0, len(padded) - num_labeled)), replicated)
  images = jax.device_put(images, replicated)
  items = jax.device_put(padded, replicated)
  num_labeled_arr = jax.device_put(jnp.int32(num_labeled), replicated)

  vmapped = seed_parallelism(config.seed_parallelism) == 'vmap' and num_seeds > 1
  total_steps = config.total_steps
  tx = make_optimizer(config, total_steps)
  image_shape = tuple(images.shape[1:])
  loss_prediction = None
  if getattr(model, 'loss_prediction', False):  # Learning loss: (λ, the step its gradient stops at the backbone).
    loss_prediction = (config.loss_prediction_weight, int(round(config.loss_prediction_detach * total_steps)))
  step_fn = _compiled_step(model, tx, config.augment, config.batch_size, data_sharding, vmapped, scale,
                           config.freeze, loss_prediction)
  init_fn = _compiled_init(model, tx, image_shape, vmapped, replicated)
  if init is not None:
    init_fn = _warm_init(model, tx, image_shape, init, vmapped, replicated)
  run_steps = max(1, int(round(schedule_fraction * total_steps)))
  steps_per_epoch = config.steps_per_epoch

  def run(seed_rng, state):
    """Trains one seed's state, or R stacked states when vmapped; returns it and the per-seed histories."""
    num_histories = seed_rng.shape[0] if vmapped else 1
    fold = jax.vmap(jax.random.fold_in, in_axes=(0, None)) if vmapped else jax.random.fold_in
    order_rng, step_rng = _split_named(seed_rng, vmapped)[1:]
    histories = [[] for _ in range(num_histories)]
    step = epoch = 0
    started = time.perf_counter()
    while step < run_steps:
      order = (_compiled_epoch_orders if vmapped else _compiled_epoch_order)(
          items, num_labeled_arr, fold(order_rng, epoch), pool_size)
      epoch_metrics = []
      for step_in_epoch in range(min(steps_per_epoch, run_steps - step)):
        state, metrics = step_fn(
            state, images, labels, order, num_labeled_arr, jnp.int32(step_in_epoch),
            fold(step_rng, step), *stats,
        )
        epoch_metrics.append(metrics)
        step += 1
      epoch += 1
      # One host transfer per epoch, not per step.
      means = jax.device_get(
          jax.tree_util.tree_map(lambda *m: jnp.mean(jnp.stack(m), 0), *epoch_metrics))
      evaluate_now = validation is not None and (
          step >= run_steps or (config.eval_every and epoch % config.eval_every == 0))
      for seed_index, history in enumerate(histories):
        record = {'epoch': epoch, 'step': step}
        record.update({k: float(np.reshape(v, -1)[seed_index]) for k, v in means.items()})
        if evaluate_now:
          seed_state = jax.tree_util.tree_map(lambda x, i=seed_index: x[i], state) if vmapped else state
          scores = evaluate(model, seed_state.variables, *validation,
                            batch_size=config.eval_batch_size, mesh=mesh)
          record.update({f'val/{k}': v for k, v in scores.items()})
        history.append(record)
      if progress.active():  # The per-epoch line (means over vmapped seeds); `means` is on the host already.
        shown = {k.removeprefix('train/'): float(np.mean(means[k])) for k in ('train/loss', 'train/accuracy')}
        shown.update({k: v for k, v in histories[0][-1].items() if k.startswith('val/')})
        progress.update(step, run_steps, shown, 'step', time.perf_counter() - started,
                        step * config.batch_size * num_histories, epoch)
    return state, histories

  if vmapped:
    state, histories = run(rngs, init_fn(_split_named(rngs, True)[0]))
  else:
    states, histories = [], []
    for seed_index in range(num_seeds):
      seed_rng = rngs[seed_index]
      with progress.task(f'seed {seed_index}') if num_seeds > 1 else contextlib.nullcontext():
        seed_state, seed_history = run(seed_rng, init_fn(_split_named(seed_rng, False)[0]))
      states.append(seed_state)
      histories.extend(seed_history)
    state = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
  jax.block_until_ready(state)
  return TrainResult(state, histories, time.perf_counter() - start)
