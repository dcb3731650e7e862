"""The experiment configs by name (`ml_collections` files with `get_config(arg)`), installed with the package.

A command takes `--config=NAME[:arg]` (e.g. `--config=active_learning:smoke`), or a path to a config file of your
own (`--config=my_configs/grid.py:arg`). Arguments every config takes: '' (CPU scale), 'smoke' (seconds, for
tests) and 'paper' (the published protocol, for GPU/TPU); some take more (their docstrings say).
"""

import os

DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def names() -> tuple[str, ...]:
  """The configs installed with jal, by name."""
  return tuple(sorted(f[:-3] for f in os.listdir(DIRECTORY) if f.endswith('.py') and f != '__init__.py'))


def path(spec: str) -> str:
  """'NAME[:arg]' -> the installed config file's path with ':arg'; a path to a file ('x/y.py[:arg]') unchanged.

  Raises:
    ValueError: NAME is neither an installed config nor a file (the message lists the names).
  """
  name, colon, arg = spec.partition(':')
  if name.endswith('.py') or os.sep in name or os.path.exists(name):
    return spec
  if name not in names():
    raise ValueError(f'Unknown config {name!r}: use one of {", ".join(names())} (e.g. --config={names()[0]}:smoke), '
                     'or a path to a config file of your own.')
  return os.path.join(DIRECTORY, f'{name}.py') + colon + arg
