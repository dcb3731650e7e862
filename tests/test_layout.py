"""The house layout: which module may import which (README, "How the code is laid out"), checked on the source."""

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
    'plots': set(),
    'checkpoint': set(),
    'data': set(),
    'progress': set(),
    'models': {'search_space', 'layers', 'cpu_fusions'},
    'inherit': {'search_space'},
    'predict': {'cpu_fusions'},
    'train': {'augment', 'cpu_fusions', 'models', 'predict', 'progress'},
    'query': {'models', 'predict'},
    'oracle': {'data'},
    'loop': {'checkpoint', 'inherit', 'query', 'data', 'models', 'oracle', 'predict', 'progress', 'search_space',
             'train'},
    'inas': {'data', 'inherit', 'models', 'predict', 'progress', 'search_space', 'train'},
    'nas': {'inas', 'search_space'},
    'autoal': {'augment', 'query', 'data', 'models', 'predict', 'progress', 'search_space', 'train'},
    'report': {'metrics', 'plots'},
    'experiment': {'autoal', 'checkpoint', 'data', 'inas', 'loop', 'nas', 'query', 'report', 'augment', 'models',
                   'oracle', 'predict', 'progress', 'search_space', 'train'},
}


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
