"""Tests for jal.checkpoint: PyTrees by name, restored into abstract trees, guarded by the run's config."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jal import checkpoint, loop
from jal.models import ModelConfig, build_model
from jal.search_space import Architecture
from jal.train import TrainConfig, create_train_state, make_optimizer


def _state():
  model = build_model(Architecture(1, 1), 3, ModelConfig(width=4))
  tx = make_optimizer(TrainConfig(epochs=1, examples_per_epoch=8, batch_size=8), 1)
  return create_train_state(model, tx, jax.random.key(0), (8, 8, 1))


def test_a_tree_round_trips_into_its_abstract_template(tmp_path):
  tree = {'model': _state(), 'rng': jax.random.key(3), 'mask': np.array([True, False, True]), 'nothing': None}
  saver = checkpoint.Checkpointer(tmp_path, {'width': 4})
  saver.save(7, tree, {'round': 2})
  restored, meta = checkpoint.Checkpointer(tmp_path, {'width': 4}).restore(lambda meta: jax.eval_shape(lambda: tree))
  assert meta['round'] == 2 and meta['config'] == {'width': 4}
  assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(tree)
  for a, b in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(tree)):
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
      a, b = jax.random.key_data(a), jax.random.key_data(b)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_plain_orbax_finds_a_loop_checkpoint_by_name(tmp_path):
  pool_labels = np.arange(6) % 2
  state = loop.LoopState(pool_labels >= 0, pool_labels.astype(np.int32), jax.random.key(0), train_state=_state(),
                         round=1, arch=Architecture(1, 1))
  fingerprint = {'size': 6, 'ids_sha256': 'x', 'images_sha256': 'y'}
  loop.save(checkpoint.Checkpointer(tmp_path, {}), state, loop.RoundProgress(), fingerprint)
  step = 1 * len(loop.PHASES)
  arrays = ocp.StandardCheckpointer().restore(os.path.join(tmp_path, str(step), 'arrays'))
  np.testing.assert_array_equal(arrays['state']['labels'], pool_labels)
  kernel = arrays['state']['train_state']['params']['stem_conv']['kernel']
  np.testing.assert_array_equal(kernel, state.train_state.params['stem_conv']['kernel'])
  assert arrays['progress']['train_state'] is None


def test_a_shape_that_does_not_fit_the_template_is_refused_by_name(tmp_path):
  checkpoint.Checkpointer(tmp_path).save(0, {'a': np.zeros(3)}, {})
  with pytest.raises(checkpoint.CheckpointError, match=r'a has float64\[3\] where float64\[4\]'):
    checkpoint.Checkpointer(tmp_path).restore(lambda meta: {'a': jax.ShapeDtypeStruct((4,), np.float64)})
  with pytest.raises(checkpoint.CheckpointError, match=r"missing \['b'\]"):
    checkpoint.Checkpointer(tmp_path).restore(lambda meta: {'a': jax.ShapeDtypeStruct((3,), np.float64),
                                                            'b': jax.ShapeDtypeStruct((3,), np.float64)})


def test_a_damaged_step_is_refused_naming_the_directory_to_delete(tmp_path):
  saver = checkpoint.Checkpointer(tmp_path)
  saver.save(0, {'a': np.zeros(3)}, {})
  saver.save(1, {'a': np.ones(3)}, {})
  for root, _, files in os.walk(tmp_path / '1' / 'meta'):
    for name in files:
      with open(os.path.join(root, name), 'w') as f:
        f.write('{"trunc')
  with pytest.raises(checkpoint.CheckpointError, match=r'Delete .*/1 to resume from the previous checkpoint'):
    checkpoint.Checkpointer(tmp_path).restore(lambda meta: {'a': jax.ShapeDtypeStruct((3,), np.float64)})
  assert sorted(os.listdir(tmp_path)) == ['0', '1']  # Nothing deleted for the user.


def test_no_checkpoint_gives_none_and_writes_nothing(tmp_path):
  directory = tmp_path / 'absent'
  assert checkpoint.Checkpointer(directory).restore(lambda meta: None) is None
  assert not directory.exists()
