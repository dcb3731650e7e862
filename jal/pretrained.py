"""Starting from pretrained variables: save them, load them, and fit them to a round's model.

A person with few labels usually starts from a network trained elsewhere (`--config.model.init_from=PATH`) and
often trains its head only (`--config.model.freeze=backbone`). Variables are Flax's {'params', 'batch_stats'}
trees, on disk as an Orbax checkpoint (a directory) or as Flax msgpack bytes (a file ending in `.msgpack`).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from flax import serialization, traverse_util

FREEZE = ('none', 'backbone')  # `--config.model.freeze`: what stays fixed while a round's model trains.
HEAD = 'head'  # The params subtree that trains when the backbone is frozen (`jal.models.ResNet`'s classifier).


def save_variables(path: str, variables: dict) -> None:
  """Writes {'params', 'batch_stats'} to `path`: Flax msgpack when it ends in '.msgpack', else an Orbax
  checkpoint directory (which must not exist yet)."""
  variables = jax.device_get({k: v for k, v in variables.items() if k in ('params', 'batch_stats')})
  if path.endswith('.msgpack'):
    with open(path, 'wb') as f:
      f.write(serialization.msgpack_serialize(variables))
    return
  import orbax.checkpoint as ocp  # Local: msgpack users need no Orbax import.

  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.abspath(path), variables)


def load_variables(path: str) -> dict:
  """Reads variables written by `save_variables` (or any Orbax checkpoint / msgpack file of a Flax variables dict
  with a 'params' entry) as numpy trees.

  Raises:
    ValueError: when nothing is at `path` or it holds no 'params'; the message says what to pass.
  """
  if not os.path.exists(path):
    raise ValueError(f'--config.model.init_from={path}: nothing there. Pass an Orbax checkpoint directory or a '
                     '.msgpack file of Flax variables (jal.pretrained.save_variables writes either).')
  try:
    if os.path.isdir(path):
      import orbax.checkpoint as ocp

      with ocp.StandardCheckpointer() as checkpointer:
        tree = checkpointer.restore(os.path.abspath(path))
    else:
      with open(path, 'rb') as f:
        tree = serialization.msgpack_restore(f.read())
  except Exception as error:  # Orbax and msgpack raise many kinds; the user needs one message.
    raise ValueError(f'--config.model.init_from={path}: not readable as an Orbax checkpoint or Flax msgpack '
                     f'variables ({type(error).__name__}: {str(error)[:200]}).') from error
  if not isinstance(tree, dict) or 'params' not in tree:
    keys = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
    raise ValueError(f"--config.model.init_from={path}: holds {keys}, not Flax variables with a 'params' entry "
                     "(save {'params': ..., 'batch_stats': ...}, e.g. with jal.pretrained.save_variables).")
  return jax.tree_util.tree_map(np.asarray, {k: tree[k] for k in ('params', 'batch_stats') if k in tree})


def fit_to(pretrained: dict, fresh: dict) -> tuple[dict, int, int]:
  """`fresh` (a model's initial variables) with every leaf whose path and shape `pretrained` holds replaced by
  the pretrained one: a backbone trained for another number of classes keeps its head fresh.

  Returns:
    (variables, pretrained leaves taken, leaves left fresh).

  Raises:
    ValueError: when no parameter outside the head fits (the file belongs to another architecture).
  """
  source = traverse_util.flatten_dict(pretrained)
  flat = traverse_util.flatten_dict(jax.device_get(fresh))
  taken = {k for k, v in flat.items() if k in source and np.shape(source[k]) == np.shape(v)}
  if not any(k[0] == 'params' and k[1] != HEAD for k in taken):
    raise ValueError('The pretrained variables fit none of this model\'s parameters outside its head: they belong '
                     'to another architecture or width. Use the architecture (--config.policies=fixed:A(i,j)) and '
                     '--config.model.width they were trained with.')
  merged = {k: (np.asarray(source[k], np.asarray(v).dtype) if k in taken else v) for k, v in flat.items()}
  return traverse_util.unflatten_dict(merged), len(taken), len(flat) - len(taken)


def freeze_labels(params: Any, freeze: str) -> Any:
  """Per parameter leaf 'train' or 'frozen' (for `optax.multi_transform`): with freeze='backbone' only the
  `HEAD` subtree trains."""
  if freeze not in FREEZE:
    raise ValueError(f'freeze must be one of {FREEZE}, got {freeze!r}.')
  return {k: jax.tree_util.tree_map(lambda _, k=k: 'train' if freeze == 'none' or k == HEAD else 'frozen', v)
          for k, v in params.items()}
