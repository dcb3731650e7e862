"""The house layout: which module may import which (docs/development.md), checked on the source."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Module -> the jal modules it may import. Anything not listed here is a new module: add it with its arrows.
ALLOWED = {
    'search_space': set(),
    'layers': set(),
    'cpu_fusions': set(),
    'augment': set(),
    'metrics': set(),
    'mixture': set(),
    'plots': set(),
    'checkpoint': set(),
    'data': set(),
    'progress': set(),
    'loss_prediction': set(),
    'pretrained': set(),
    'models': {'search_space', 'layers', 'cpu_fusions', 'loss_prediction'},
    'inherit': {'search_space'},
    'predict': {'cpu_fusions'},
    'train': {'augment', 'cpu_fusions', 'loss_prediction', 'models', 'predict', 'pretrained', 'progress'},
    'query': {'models', 'predict'},
    'oracle': {'data'},
    'cold_start': {'query', 'data'},
    'loop': {'checkpoint', 'cold_start', 'inherit', 'query', 'data', 'models', 'oracle', 'predict', 'pretrained',
             'progress', 'search_space', 'train'},
    'inas': {'data', 'inherit', 'models', 'predict', 'progress', 'search_space', 'train'},
    'nas': {'inas', 'predict', 'progress', 'search_space', 'train'},
    'autoal': {'augment', 'loss_prediction', 'mixture', 'query', 'data', 'models', 'predict', 'progress',
               'search_space', 'train'},
    'albl': {'query'},
    'report': {'metrics', 'plots'},
    'experiment': {'albl', 'autoal', 'checkpoint', 'data', 'inas', 'loop', 'nas', 'query', 'report', 'augment',
                   'models', 'oracle', 'predict', 'pretrained', 'progress', 'search_space', 'train'},
}


# The face (jal/cli: the console scripts) and the configs by name (jal/configs) may import only these; no library
# module imports either, and only the face reads absl flags.
FACE = {'experiment', 'checkpoint', 'oracle', 'report', 'configs', 'cli'}
CONFIGS = {'experiment', 'configs'}


def _jal_imports(path):
  tree = ast.parse(open(path, encoding='utf-8').read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      if node.module == 'jal':
        found.update(alias.name for alias in node.names)
      elif node.module.startswith('jal.'):
        found.add(node.module.split('.')[1])
      elif node.module.split('.')[0] == 'experiments':
        found.add('experiments')
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.startswith('jal.'):
          found.add(alias.name.split('.')[1])
        elif alias.name.split('.')[0] == 'experiments':
          found.add('experiments')
  return found


def test_every_module_imports_only_what_the_layout_allows():
  modules = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, 'jal')) if f.endswith('.py') and f != '__init__.py')
  assert set(modules) == set(ALLOWED), 'a module was added or removed: update ALLOWED and the README layout'
  for module in modules:
    imported = _jal_imports(os.path.join(ROOT, 'jal', f'{module}.py')) - {module}
    assert imported <= ALLOWED[module], f'jal/{module}.py imports {sorted(imported - ALLOWED[module])}'


def test_nothing_manipulates_sys_path():
  for folder in ('jal', 'experiments', 'tests', 'benchmarks'):
    for directory, _, files in os.walk(os.path.join(ROOT, folder)):
      for name in files:
        if name.endswith('.py') and name != 'test_layout.py':
          text = open(os.path.join(directory, name), encoding='utf-8').read()
          assert 'sys.path' not in text, f'{folder}/{name} manipulates sys.path'


def test_the_face_and_the_configs_import_only_the_experiment_layer():
  for package, allowed in (('cli', FACE), ('configs', CONFIGS)):
    folder = os.path.join(ROOT, 'jal', package)
    for name in sorted(f for f in os.listdir(folder) if f.endswith('.py')):
      imported = _jal_imports(os.path.join(folder, name))
      assert imported <= allowed, f'jal/{package}/{name} imports {sorted(imported - allowed)}'
  for module in ALLOWED:
    assert not _jal_imports(os.path.join(ROOT, 'jal', f'{module}.py')) & {'cli', 'configs'}, module


def test_only_the_face_reads_flags():
  for directory, _, files in os.walk(os.path.join(ROOT, 'jal')):
    for name in files:
      path = os.path.join(directory, name)
      if name.endswith('.py') and os.path.basename(directory) != 'cli':
        text = open(path, encoding='utf-8').read()
        assert 'import flags' not in text and 'config_flags' not in text, f'{path} reads absl flags'
