"""On-device data augmentation (active-iNAS §5.1): horizontal flip, pad-and-crop shift, optional rotation.

Pure functions of (images, rng); shapes are preserved so they fuse into the jitted train step.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Which augmentations to apply (hashable: a static argument of the jitted step).

  Attributes:
    flip: random horizontal flip with probability 1/2.
    shift: pad by `shift` pixels (zeros, i.e. the mean after normalisation) and crop back at a random offset.
    rotation: random rotation, uniform in [-rotation, rotation] degrees, bilinear; 0 disables it.
  """

  flip: bool = True
  shift: int = 4
  rotation: float = 0.0


def random_flip(images: jax.Array, rng: jax.Array) -> jax.Array:
  """Flips each [N, H, W, C] image left-right with probability 1/2."""
  flip = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1, :], images)


def random_shift(images: jax.Array, rng: jax.Array, shift: int) -> jax.Array:
  """Translates each [N, H, W, C] image by up to `shift` pixels in each direction, filling with zeros."""
  n, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
  offsets = jax.random.randint(rng, (n, 2), 0, 2 * shift + 1)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

  return jax.vmap(crop)(padded, offsets)


def random_rotation(images: jax.Array, rng: jax.Array, max_degrees: float) -> jax.Array:
  """Rotates each [N, H, W, C] image about its centre by a uniform angle in [-max_degrees, max_degrees]."""
  n, h, w, _ = images.shape
  angles = jax.random.uniform(rng, (n,), minval=-max_degrees, maxval=max_degrees) * (math.pi / 180)
  rows, cols = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2, indexing='ij')

  def rotate(image, angle):
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    src_rows = cos * rows - sin * cols + (h - 1) / 2
    src_cols = sin * rows + cos * cols + (w - 1) / 2
    sample = lambda channel: jax.scipy.ndimage.map_coordinates(
        channel, [src_rows, src_cols], order=1, mode='constant', cval=0.0
    )
    return jax.vmap(sample, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(rotate)(images, angles)


def augment(images: jax.Array, rng: jax.Array, config: AugmentConfig) -> jax.Array:
  """Applies the augmentations `config` enables to a [N, H, W, C] batch."""
  flip_rng, shift_rng, rotation_rng = jax.random.split(rng, 3)
  if config.rotation:
    images = random_rotation(images, rotation_rng, config.rotation)
  if config.shift:
    images = random_shift(images, shift_rng, config.shift)
  if config.flip:
    images = random_flip(images, flip_rng)
  return images
