"""Learning loss (Yoo & Kweon, CVPR 2019): a module that predicts a network's per-sample loss from its stage
features, and the margin ranking loss it learns by. AutoAL's SearchNet carries one (`jal.autoal`); a task model
built with `ModelConfig.loss_prediction` carries one too, and the `learning_loss` strategy queries the items of
highest predicted loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class LossModule(nn.Module):
  """Predicts a per-sample loss from stage features: per stage GAP -> Dense -> ReLU; concat -> Dense(1)."""

  features: int = 128

  @nn.compact
  def __call__(self, stages: Sequence[jax.Array]) -> jax.Array:
    pooled = [nn.relu(nn.Dense(self.features)(jnp.mean(stage.astype(jnp.float32), axis=(1, 2)))) for stage in stages]
    return nn.Dense(1)(jnp.concatenate(pooled, axis=-1))[:, 0]


def margin_ranking_loss(predicted: jax.Array, target: jax.Array, margin: float = 1.0) -> jax.Array:
  """Learning Loss's objective: pairs (i, B-1-i); the predicted order must match the target's by `margin`."""
  half = predicted.shape[0] // 2
  predicted_diff = (predicted - predicted[::-1])[:half]
  target_diff = jax.lax.stop_gradient((target - target[::-1])[:half])
  sign = jnp.where(target_diff > 0, 1.0, -1.0)
  return jnp.mean(jnp.maximum(0.0, margin - sign * predicted_diff))
