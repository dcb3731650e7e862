"""Weight inheritance between architectures of the A(B, i, j) family (network morphisms; NAS survey §4).

A child architecture starts from a trained parent's weights instead of from scratch:

  deeper  A(i, j) -> A(i + 1, j): function-preserving. Every parent weight is copied to the same place; the new
          block at the end of each stack starts as the identity (its residual branch's last BatchNorm has scale
          and bias zero, so the block computes relu(x + 0) = x on the previous block's non-negative output). The
          child computes the parent's logits exactly, in eval mode and in train mode, before any step.
  wider   A(i, j) -> A(floor(i*j/(j+1)) + 1, j + 1), and any other pair (shallower, narrower): every leaf whose
          place (its path in the variables) and shape exist in the parent is copied (the stem, the blocks that
          survive, batch statistics included); the rest keeps its fresh initialisation: the new stack (its
          width differs from every parent stack) and the head when the embedding width changes. Not
          function-preserving: the new stack and head must learn.

Variables are Flax's {'params', 'batch_stats'} trees of `jal.models.ResNet`; a block type registered with
`jal.models.register_block` is function-preserving under `deeper` when `IDENTITY_NORMS` names the norm layer
that ends its residual branch. `KeptModel` is a trained model a search keeps for the next round to inherit from
(`jal.loop` checkpoints it).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct, traverse_util

from jal.search_space import Architecture

# Block type -> the name of the norm layer that ends its residual branch: zero scale and bias make it the identity.
IDENTITY_NORMS: dict[str, str] = {'basic': 'BatchNorm_1'}

_BLOCK = re.compile(r'stack(\d+)_block(\d+)')


@dataclasses.dataclass(frozen=True)
class Inheritance:
  """What a child took from its parent.

  Attributes:
    inherited: leaves copied from the parent (params and batch statistics).
    fresh: leaves left at their fresh initialisation.
    identity_blocks: new blocks started as the identity.
    function_preserving: the child computes the parent's function (every parent leaf used, every new block the
      identity, nothing else fresh).
  """

  inherited: int
  fresh: int
  identity_blocks: tuple[str, ...]
  function_preserving: bool


def inherit(parent: dict, parent_arch: Architecture, child: dict, child_arch: Architecture
            ) -> tuple[dict, Inheritance]:
  """The child's variables started from the parent's: see the module docstring.

  Args:
    parent: the parent's trained variables {'params', 'batch_stats'} (no seed axis).
    parent_arch: its architecture.
    child: freshly initialised variables of `child_arch` (`jal.models.init_variables`): the shapes, and the values
      of every leaf that cannot be inherited.
    child_arch: the child's architecture (the same block type).

  Returns:
    (the child's variables, what was inherited).
  """
  if parent_arch.block != child_arch.block:
    raise ValueError(f'Cannot inherit across block types: {parent_arch} -> {child_arch}.')
  parent_flat = traverse_util.flatten_dict(jax.device_get(parent))
  child_flat = traverse_util.flatten_dict(child)
  parent_blocks = {path[1] for path in parent_flat if len(path) > 1 and _BLOCK.fullmatch(path[1])}
  norm = IDENTITY_NORMS.get(child_arch.block)
  out, inherited, fresh, identity = {}, 0, [], set()
  for path, value in child_flat.items():
    source = parent_flat.get(path)
    if source is not None and source.shape == value.shape:
      out[path] = jnp.asarray(source, value.dtype)
      inherited += 1
      continue
    block = path[1] if len(path) > 1 and _BLOCK.fullmatch(path[1]) else None
    if (block is not None and block not in parent_blocks and norm is not None and _keeps_shape(block, child_arch)
        and path[0] == 'params' and path[2] == norm):
      out[path] = jnp.zeros_like(value)  # Scale and bias of the branch's last norm: the block is the identity.
      identity.add(block)
      continue
    out[path] = value
    fresh.append(path)
  new_blocks = {path[1] for path in child_flat if len(path) > 1 and _BLOCK.fullmatch(path[1])} - parent_blocks
  # A new identity block's other leaves are fresh but inert; the function is kept when nothing else is fresh and
  # every parent leaf found its place.
  preserving = (new_blocks == identity and all(path[1] in identity for path in fresh)
                and inherited == len(parent_flat))
  return traverse_util.unflatten_dict(out), Inheritance(inherited, len(fresh), tuple(sorted(identity)), preserving)


def _keeps_shape(block: str, arch: Architecture) -> bool:
  """Whether block `stack{s}_block{b}` maps its input to the same shape (no stride, no projection)."""
  stack, index = map(int, _BLOCK.fullmatch(block).groups())
  return index > 0 and index < arch.blocks and stack < arch.stacks


@struct.dataclass
class KeptModel:
  """A model a policy keeps for its next round, checkpointed with the loop (a search's winning candidate, which
  the next round's candidates inherit): its variables, the items it trained on and the items held out from it.

  Attributes:
    variables: {'params', 'batch_stats'} of `arch`.
    train_mask: [N] bool, the pool items it trained on.
    validation_mask: [N] bool, labelled items it never trained on (a search validated on them).
    arch: its architecture (static).
  """

  variables: Any
  train_mask: np.ndarray
  validation_mask: np.ndarray
  arch: Any = struct.field(pytree_node=False, default=None)
