"""Data-parallel training and inference on an 8-device CPU mesh give the one-device results.

The devices are faked with XLA_FLAGS=--xla_force_host_platform_device_count=8, which must be set before JAX
starts, so the check runs in a fresh interpreter.
"""

import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent('''
    import jax, numpy as np, chex
    import jal
    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    images = rng.normal(size=(96, 8, 8, 1)).astype(np.float32)
    labels = (images[:, 2:6, 2:6, 0].mean(axis=(1, 2)) > 0).astype(np.int32)
    mask = np.arange(96) < 70
    model = jal.build_model(jal.Architecture(1, 2), 2, jal.ModelConfig(width=4))
    config = jal.TrainConfig(epochs=3, examples_per_epoch=64, batch_size=16, learning_rate=0.05,
                             augment=jal.AugmentConfig(flip=True, shift=1))
    runs = {}
    for name, devices in (('one', jax.devices()[:1]), ('eight', jax.devices())):
      mesh = jal.make_mesh(devices)
      result = jal.train(model, config, images, labels, jax.random.split(jax.random.key(0), 2), mask,
                         mesh=mesh)
      predictions = jal.predict(model, result.state_for_seed(0).variables, images, batch_size=24,
                                mesh=mesh)
      runs[name] = (result, predictions)
    one, eight = runs['one'], runs['eight']
    leaf = jax.tree_util.tree_leaves(eight[0].state.params)[0]
    assert len(leaf.sharding.device_set) == 8, leaf.sharding
    losses_one = [[e['train/loss'] for e in h] for h in one[0].history]
    losses_eight = [[e['train/loss'] for e in h] for h in eight[0].history]
    np.testing.assert_allclose(losses_eight, losses_one, rtol=1e-4)
    chex.assert_trees_all_close(eight[0].state.params, one[0].state.params, atol=1e-4, rtol=1e-4)
    chex.assert_trees_all_close(eight[1].logits, one[1].logits, atol=1e-4, rtol=1e-4)
    print('OK', losses_one[0])
''')


def test_eight_devices_match_one():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  completed = subprocess.run([sys.executable, '-c', _SCRIPT], env=env, capture_output=True, text=True,
                             timeout=600)
  assert completed.returncode == 0, completed.stderr[-4000:]
  assert 'OK' in completed.stdout
