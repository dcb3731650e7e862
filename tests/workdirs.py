"""Helpers shared by the tests that drive the binaries' code in-process over a workdir."""

import os

from jal import experiment
from jal.configs import active_learning as active_learning_config


def smoke_config(**overrides):
  """The active-learning smoke config, one strategy (entropy) and one seed; 'section.field' keys override."""
  config = active_learning_config.get_config('smoke')
  config.strategies = ('entropy',)
  config.seeds = (0,)
  for key, value in overrides.items():
    section, _, field = key.rpartition('.')
    parent = config[section] if section else config
    if isinstance(parent.get(field), tuple) and isinstance(value, str):
      value = experiment.names(value)  # 'entropy,margin', as a flag would give it.
    parent[field] = value
  return config


def snapshot(directory):
  """Every file under `directory` with its bytes: what must not change when an input is refused. The `.lock`
  files are left out: they name the last process that held the workdir, not the session's data."""
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      if name == '.lock':
        continue
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out
