"""Tests for jal.augment."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jal.augment import AugmentConfig, augment, random_flip, random_rotation, random_shift


def _images():
  return jnp.arange(2 * 6 * 6 * 1, dtype=jnp.float32).reshape(2, 6, 6, 1) + 1


def test_flip_is_either_identity_or_mirror():
  images = _images()
  flipped = random_flip(jnp.repeat(images, 16, 0), jax.random.key(0))
  for original, out in zip(jnp.repeat(images, 16, 0), flipped):
    assert jnp.array_equal(out, original) or jnp.array_equal(out, original[:, ::-1])
  assert not jnp.array_equal(flipped, jnp.repeat(images, 16, 0))


def test_shift_translates_with_zero_fill():
  images = jnp.repeat(_images(), 32, 0)
  shifted = random_shift(images, jax.random.key(0), 2)
  chex.assert_shape(shifted, images.shape)
  for original, out in zip(np.asarray(images), np.asarray(shifted)):
    matches = []
    for dy in range(-2, 3):
      for dx in range(-2, 3):
        padded = np.pad(original, ((2, 2), (2, 2), (0, 0)))
        window = padded[2 + dy:2 + dy + 6, 2 + dx:2 + dx + 6]
        matches.append(np.array_equal(window, out))
    assert any(matches)


def test_rotation_preserves_shape_and_zero_angle_is_identity():
  images = jax.random.normal(jax.random.key(0), (3, 8, 8, 2))
  chex.assert_trees_all_close(random_rotation(images, jax.random.key(1), 0.0), images, atol=1e-5)
  rotated = random_rotation(images, jax.random.key(1), 30.0)
  chex.assert_shape(rotated, images.shape)
  assert not jnp.allclose(rotated, images)


def test_augment_disabled_is_identity():
  images = _images()
  out = augment(images, jax.random.key(0), AugmentConfig(flip=False, shift=0, rotation=0.0))
  chex.assert_trees_all_equal(out, images)
