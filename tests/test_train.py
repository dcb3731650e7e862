"""Tests for jal.train: learning, seeds, no recompilation, optimiser, inference, errors."""

import dataclasses
import importlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jal.augment import AugmentConfig
from jal.data import Dataset, NpyPool, normalization_stats, normalize
from jal.models import ModelConfig, build_model
from jal.predict import evaluate, predict
from jal.search_space import Architecture
from jal.train import TrainConfig, train

# `jal.train` the attribute is the function; the module is reached through the import system.
train_lib = importlib.import_module('jal.train')

TINY = TrainConfig(epochs=2, examples_per_epoch=32, batch_size=16, learning_rate=0.05,
                   augment=AugmentConfig(flip=True, shift=1))


def _model(classes=2, width=4, arch=(1, 1)):
  return build_model(Architecture(*arch), classes, ModelConfig(width=width))


@pytest.mark.parametrize('precision', ['float32', 'bfloat16'])
def test_model_learns_fashion_mnist(fashion_mnist, precision):
  pool, test = fashion_mnist.pool, fashion_mnist.test
  model = build_model(Architecture(1, 1), 10, ModelConfig(width=16, precision=precision))
  config = TrainConfig(epochs=8, examples_per_epoch=1024, batch_size=64, learning_rate=0.1,
                       augment=AugmentConfig(flip=False, shift=2), eval_every=4)
  mask = np.zeros(len(pool), bool)
  mask[:1000] = True
  result = train(model, config, pool.images, pool.labels, jax.random.key(0), mask,
                 validation=(pool.images[1000:1500], pool.labels[1000:1500]))
  accuracy = evaluate(model, result.state_for_seed(0).variables, test.images, test.labels)['accuracy']
  assert accuracy > 0.6, accuracy  # Chance is 0.10; this config measured 0.71 in float32; bfloat16 must clear it too.
  history = result.history[0]
  assert history[-1]['train/loss'] < history[0]['train/loss']
  assert [e['epoch'] for e in history if 'val/accuracy' in e] == [4, 8]
  assert result.best_val_accuracy()[0] > 0.55


@pytest.mark.parametrize('seeds', ['sequential', 'vmap'])
def test_several_seeds_equal_single_runs(tiny_problem, seeds):
  images, labels = tiny_problem
  model = _model()
  config = dataclasses.replace(TINY, seed_parallelism=seeds)
  keys = jax.random.split(jax.random.key(3), 3)
  together = train(model, config, images, labels, keys)
  for index in range(3):
    alone = train(model, dataclasses.replace(TINY, seed_parallelism='sequential'), images, labels, keys[index])
    chex.assert_trees_all_close(together.state_for_seed(index).params, alone.state_for_seed(0).params,
                                atol=1e-4, rtol=1e-4)
    assert together.history[index][-1]['train/loss'] == pytest.approx(
        alone.history[0][-1]['train/loss'], rel=1e-4)
  # Different keys give different models.
  assert not jnp.allclose(together.state.params['head']['dense']['kernel'][0],
                          together.state.params['head']['dense']['kernel'][1])


def test_rounds_do_not_recompile(tiny_problem, monkeypatch):
  images, labels = tiny_problem
  monkeypatch.setattr(train_lib, '_sample_and_step',
                      chex.assert_max_traces(train_lib._sample_and_step, n=1))
  train_lib._compiled_step.cache_clear()
  model = _model()
  for num_labeled in (5, 17, 40, 64):  # Growing labelled sets, as over active-learning rounds.
    mask = np.arange(len(labels)) < num_labeled
    train(model, TINY, images, labels, jax.random.key(num_labeled), mask)
  # A new model object with the same fields reuses the compiled step too.
  train(_model(), TINY, images, labels, jax.random.key(0), np.arange(len(labels)) < 9)
  train_lib._compiled_step.cache_clear()


def test_initialisers_compiled_for_speed_give_the_default_compilations_bits():
  """INIT_COMPILER_OPTIONS may only make the initialisers compile faster, never change one bit of them."""
  from jal.models import init_variables
  model, key = _model(10, 4, (1, 2)), jax.random.key(5)
  default = jax.jit(lambda key: model.init(key, jnp.zeros((1, 8, 8, 3)), train=False))(key)
  for a, b in zip(jax.tree_util.tree_leaves(default), jax.tree_util.tree_leaves(init_variables(model, key, (8, 8, 3))),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(b), np.asarray(a))


@pytest.mark.parametrize('seeds', ['sequential', 'vmap'])
def test_warm_start_begins_every_seed_from_the_given_variables(tiny_problem, seeds):
  images, labels = tiny_problem
  model = _model()
  parent = train(model, TINY, images, labels, jax.random.key(0)).state_for_seed(0)
  config = dataclasses.replace(TINY, epochs=1, examples_per_epoch=16, seed_parallelism=seeds)
  # One step at learning rate ~0 leaves the weights where they started: the start was the given variables.
  still = dataclasses.replace(config, learning_rate=1e-12, weight_decay=0.0)
  result = train(model, still, images, labels, jax.random.split(jax.random.key(1), 2), init=parent.variables)
  for index in range(2):
    chex.assert_trees_all_close(result.state_for_seed(index).params, parent.params, atol=1e-6)
  # Warm-started training continues from the parent's loss, below a fresh start's.
  warm = train(model, config, images, labels, jax.random.key(1), init=parent.variables)
  cold = train(model, config, images, labels, jax.random.key(1))
  assert warm.history[0][0]['train/loss'] < cold.history[0][0]['train/loss']
  with pytest.raises(ValueError, match='init does not fit'):
    train(_model(arch=(1, 2)), config, images, labels, jax.random.key(1), init=parent.variables)


def test_batches_come_only_from_the_labelled_set(tiny_problem):
  images, labels = tiny_problem
  mask = np.zeros(len(labels), bool)
  mask[[3, 10, 50]] = True
  items = jnp.asarray([3, 10, 50, 0, 0, 0, 0, 0], jnp.int32)  # Three labelled slots, then padding.
  order = train_lib.epoch_order(items, jnp.int32(3), jax.random.key(0), len(labels))
  assert sorted(np.asarray(order[:3]).tolist()) == [0, 1, 2]
  # Unlabelled items' labels may be anything (here out of range): they are never read.
  garbage = np.where(mask, labels, 99)
  result = train(_model(), TINY, images, garbage, jax.random.key(0), mask)
  chex.assert_tree_all_finite(result.state.params)


class _CountingPool(NpyPool):
  """An on-disk pool that records how many rows each read takes."""

  def __init__(self, path):
    super().__init__(path)
    self.rows_read = []

  def __getitem__(self, index):
    rows = super().__getitem__(index)
    self.rows_read.append(len(rows))
    return rows


def test_training_sends_only_the_labelled_rows_to_the_device(tmp_path, monkeypatch):
  # A 4,096-item uint8 pool on disk, 40 of them labelled: training reads those 40 rows once, sends no array with
  # the pool's length to the device, and equals training on the pool normalised in memory.
  monkeypatch.setattr(train_lib, 'LABELED_BUCKET_BYTES', 64 * 64)  # A 64-row floor (the default's is 16 MiB).
  rng = np.random.default_rng(0)
  raw = rng.integers(0, 256, (4096, 8, 8, 1), dtype=np.uint8)
  labels = (raw[:, 2:6, 2:6, 0].mean(axis=(1, 2)) > 127).astype(np.int32)
  np.save(tmp_path / 'pool.npy', raw)
  pool = _CountingPool(str(tmp_path / 'pool.npy'))
  mask = np.zeros(len(raw), bool)
  mask[rng.choice(len(raw), 40, replace=False)] = True
  stats = normalization_stats(raw)
  placed = []
  device_put = jax.device_put
  monkeypatch.setattr(jax, 'device_put', lambda x, *a, **k: placed.append(np.shape(x)) or device_put(x, *a, **k))
  streamed = train(_model(), TINY, pool, labels, jax.random.key(0), mask, normalization=stats)
  monkeypatch.undo()
  assert pool.rows_read == [40]
  assert placed and all(not shape or shape[0] != len(raw) for shape in placed)
  assert max(shape[0] for shape in placed if shape) == train_lib.bucket_size(40, len(raw), 64, min_bytes=64 * 64) == 64
  in_memory = normalize(Dataset(raw, labels, 2), *stats).images
  reference = train(_model(), TINY, in_memory, labels, jax.random.key(0), mask)
  chex.assert_trees_all_close(streamed.state.params, reference.state.params, atol=1e-5)


def test_a_growing_labelled_set_compiles_once_per_bucket(tiny_problem, monkeypatch):
  images, labels = tiny_problem
  images, labels = np.tile(images, (8, 1, 1, 1)), np.tile(labels, 8)  # 512 items.
  monkeypatch.setattr(train_lib, 'LABELED_BUCKET_BYTES', 64 * 256)  # A 64-row floor for 8x8x1 float32 rows.
  traces = []
  step = train_lib.train_step
  monkeypatch.setattr(train_lib, 'train_step', lambda *a, **k: traces.append(1) or step(*a, **k))
  train_lib._compiled_step.cache_clear()
  model = _model(width=3)  # A model no other test compiled.
  sizes = range(30, 330, 30)  # Ten rounds: 30 -> 300 labels.
  for size in sizes:
    mask = np.zeros(len(labels), bool)
    mask[:size] = True
    train(model, dataclasses.replace(TINY, epochs=1, augment=AugmentConfig()), images, labels,
          jax.random.key(size), mask)
  train_lib._compiled_step.cache_clear()
  assert len(traces) == len({train_lib.bucket_size(n, len(labels), 256) for n in sizes}) == 4  # 64 ... 512.


def test_fraction_truncates_the_schedule(tiny_problem):
  images, labels = tiny_problem
  config = dataclasses.replace(TINY, epochs=4)
  result = train(_model(), config, images, labels, jax.random.key(0), schedule_fraction=0.25)
  assert int(result.state.step[0]) == config.total_steps // 4
  assert result.history[0][-1]['epoch'] == 1


def test_optimizer_decays_conv_kernels_only_and_steps_lr():
  config = TrainConfig(epochs=4, examples_per_epoch=8, batch_size=8, learning_rate=1.0, momentum=0.0,
                       weight_decay=0.1, nesterov=False)
  tx = train_lib.make_optimizer(config, total_steps=4)
  assert train_lib.make_optimizer(config, total_steps=4) is tx  # Cached: jitted steps are reused.
  params = {'conv': {'kernel': jnp.ones((3, 3, 1, 1))}, 'dense': {'kernel': jnp.ones((2, 2))},
            'bn': {'scale': jnp.ones(2)}}
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  state = tx.init(params)
  lrs = []
  for _ in range(4):
    updates, state = tx.update(zeros, state, params)
    lrs.append(-float(updates['conv']['kernel'].ravel()[0]) / 0.1)
    assert float(jnp.abs(updates['dense']['kernel']).max()) == 0.0
    assert float(jnp.abs(updates['bn']['scale']).max()) == 0.0
  np.testing.assert_allclose(lrs, [1.0, 1.0, 0.1, 0.01], rtol=1e-5)


def test_predict_is_chunked_and_matches_one_pass(tiny_problem):
  images, _ = tiny_problem
  model = _model(classes=3)
  variables = model.init(jax.random.key(0), images[:1])
  full = model.apply(variables, images)
  chunked = predict(model, variables, images[:50], batch_size=16)  # 16 + 16 + 16 + 2 (padded).
  chex.assert_shape(chunked.logits, (50, 3))
  chex.assert_shape(chunked.embeddings, (50, 4))
  chex.assert_trees_all_close(chunked.logits, full.logits[:50], atol=1e-5)
  chex.assert_trees_all_close(chunked.embeddings, full.embedding[:50], atol=1e-5)
  chex.assert_trees_all_close(chunked.probs, jax.nn.softmax(full.logits[:50]), atol=1e-6)
  chex.assert_trees_all_close(chunked.probs.sum(-1), jnp.ones(50), atol=1e-5)


def test_evaluate_reports_accuracy_and_loss(tiny_problem):
  images, labels = tiny_problem
  model = _model()
  variables = model.init(jax.random.key(0), images[:1])
  scores = evaluate(model, variables, images, labels)
  logits = model.apply(variables, images).logits
  assert scores['accuracy'] == pytest.approx(float(jnp.mean(jnp.argmax(logits, -1) == labels)))
  assert scores['loss'] == pytest.approx(
      float(optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()), rel=1e-5)


def test_raw_uint32_keys_are_accepted(tiny_problem):
  images, labels = tiny_problem
  result = train(_model(), TINY, images, labels, jax.random.PRNGKey(0))
  assert result.num_seeds == 1


@pytest.mark.parametrize('mutate, message', [
    (lambda x, y, m: (x[0], y, m), r'images must be \[N, H, W, C\]'),
    (lambda x, y, m: (x, y[:-1], m), 'one per image'),
    (lambda x, y, m: (x, y.astype(np.float32), m), 'labels must be integers'),
    (lambda x, y, m: (x, y, np.zeros_like(m)), 'selects no example'),
    (lambda x, y, m: (x, np.where(m, 7, y), m), r'labels of labelled items must lie in \[0, 2\)'),
    (lambda x, y, m: (x, y, m[:-1]), 'labeled_mask must be a bool'),
])
def test_bad_training_input_is_rejected(tiny_problem, mutate, message):
  images, labels = tiny_problem
  mask = np.ones(len(labels), bool)
  images, labels, mask = mutate(images, labels, mask)
  with pytest.raises(ValueError, match=message):
    train(_model(), TINY, images, labels, jax.random.key(0), mask)


def test_bad_config_is_rejected():
  with pytest.raises(ValueError, match='examples_per_epoch >= batch_size'):
    TrainConfig(examples_per_epoch=10, batch_size=16)
  with pytest.raises(ValueError, match="'auto', 'vmap' or 'sequential'"):
    TrainConfig(seed_parallelism='parallel')
