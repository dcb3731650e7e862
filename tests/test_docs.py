"""The README and docs/ hold true: links and anchors resolve, commands name what exists, every config field is
documented, the README's numbers come from committed summaries, and its numpy recipe runs."""

import csv
import importlib.util
import os
import re
import shlex

import numpy as np
import pytest
import tomllib

from jal import configs, experiment
from jal import oracle as oracle_lib
from jal.configs import autoal as autoal_config
from jal.configs import train as train_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ['README.md'] + sorted(os.path.join('docs', f) for f in os.listdir(os.path.join(ROOT, 'docs'))
                              if f.endswith('.md'))
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')


def _read(path):
  with open(os.path.join(ROOT, path), encoding='utf-8') as f:
    return f.read()


def _without_code(text):
  return re.sub(r'```.*?```', '', text, flags=re.S)


def _anchors(text):
  """GitHub's heading anchors: lower case, punctuation dropped but hyphens, spaces as hyphens."""
  headings = re.findall(r'^#{1,6} (.+)$', _without_code(text), flags=re.M)
  return {re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-') for h in headings}


def _code_blocks(text, language):
  return re.findall(rf'```{language}\n(.*?)```', text, flags=re.S)


def test_the_readme_is_a_page_not_a_manual():
  assert len(_read('README.md').splitlines()) <= 250


@pytest.mark.parametrize('path', DOCS)
def test_every_relative_link_and_image_exists(path):
  text = _without_code(_read(path))
  folder = os.path.dirname(path)
  for target in LINK.findall(text):
    if target.startswith(('http://', 'https://', 'mailto:')):
      continue
    file, _, anchor = target.partition('#')
    resolved = os.path.normpath(os.path.join(folder, file)) if file else path
    assert os.path.exists(os.path.join(ROOT, resolved)), f'{path}: {target} does not exist'
    if anchor and resolved.endswith('.md'):
      assert anchor in _anchors(_read(resolved)), f'{path}: no heading #{anchor} in {resolved}'


def test_every_committed_table_and_figure_is_linked_from_the_results_guide():
  text = _read(os.path.join('docs', 'results.md'))
  root = os.path.join(ROOT, 'docs', 'results')
  for directory, folders, files in os.walk(root):
    folders[:] = [f for f in folders if f not in ('checkpoints', 'parts')]
    for name in files:
      if name.endswith(('.md', '.png')):
        relative = os.path.relpath(os.path.join(directory, name), os.path.join(ROOT, 'docs'))
        assert f']({relative})' in text, (f'docs/results.md does not link {relative}: run '
                                          'python experiments/results_index.py')


def _commands(block):
  """Each shell command of a bash block: continuations joined, comments dropped, split at && ; |."""
  text = re.sub(r'\\\n\s*', ' ', block)
  for line in text.splitlines():
    line = line.split(' #')[0].strip()
    if not line or line.startswith('#'):
      continue
    for command in re.split(r'&&|;|\|', line):
      words = shlex.split(command.replace('$(command -v sudo)', ''))
      while words and '=' in words[0] and not words[0].startswith('-'):
        words = words[1:]  # Environment assignments.
      if words:
        yield words


def _scripts():
  with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
    return tomllib.load(f)['project']['scripts']


def _check_config(value, where):
  name = value.partition(':')[0]
  if name.endswith('.py'):
    assert os.path.exists(os.path.join(ROOT, name)), f'{where}: config file {name} does not exist'
  elif name not in ('NAME', '...'):
    assert name in configs.names(), f'{where}: no installed config {name!r}'


@pytest.mark.parametrize('path', DOCS)
def test_every_command_names_files_scripts_and_configs_that_exist(path):
  scripts = _scripts()
  for block in _code_blocks(_read(path), 'bash'):
    for words in _commands(block):
      where = f'{path}: {" ".join(words)}'
      program = words[0]
      if program.startswith('jal-'):
        assert program in scripts, f'{where}: {program} is not a console script'
      elif program in ('python', 'python3') and len(words) > 1:
        if words[1] == '-m':
          local = os.path.join(ROOT, words[2].replace('.', os.sep))
          assert (os.path.exists(local + '.py') or os.path.isdir(local)
                  or importlib.util.find_spec(words[2]) is not None), f'{where}: no module {words[2]}'
        elif words[1].endswith('.py'):
          assert os.path.exists(os.path.join(ROOT, words[1])), f'{where}: {words[1]} does not exist'
      for word in words:
        if word.startswith('--config='):
          _check_config(word[len('--config='):], where)
        elif re.fullmatch(r'(experiments|benchmarks|notebooks|tests)/[\w/.-]+\.(py|ipynb)', word):
          assert os.path.exists(os.path.join(ROOT, word)), f'{where}: {word} does not exist'


def _fields(config, prefix=''):
  for key, value in config.items():
    if isinstance(value, dict):
      yield from _fields(value, f'{prefix}{key}.')
    else:
      yield prefix + key


def test_every_config_field_is_documented():
  documented = _read(os.path.join('docs', 'configuration.md'))
  fields = set(_fields(experiment.base_config().to_dict()))
  fields |= set(_fields(autoal_config.get_config().to_dict())) | set(_fields(train_config.get_config().to_dict()))
  missing = sorted(f for f in fields if f'`--config.{f}`' not in documented)
  assert not missing, f'docs/configuration.md lacks {missing}'


def test_the_readme_results_come_from_committed_summaries():
  readme = _read('README.md')
  section = readme[readme.index('## Results'):readme.index('## Limits')]
  summaries = ''
  for directory, _, files in os.walk(os.path.join(ROOT, 'docs', 'results')):
    summaries += ''.join(_read(os.path.join(directory, f)) for f in files if f == 'summary.md')
  numbers = re.findall(r'[+−-]?\d\.\d{4} ± \d\.\d{4}', section)
  assert len(numbers) >= 10
  for number in numbers:
    assert number.replace('−', '-') in summaries, f'README number {number} is in no docs/results/*/summary.md'


def test_every_number_with_an_error_bar_in_the_docs_is_in_a_committed_report():
  """Guides quote 'mean ± SE' from the reports under docs/results (summaries and study tables); a grid that grows
  rewrites its report, and a guide still quoting the old figure fails here instead of drifting."""
  reports = ''
  for directory, _, files in os.walk(os.path.join(ROOT, 'docs', 'results')):
    reports += ''.join(_read(os.path.join(directory, f)) for f in files if f.endswith('.md'))
  normal = lambda number: number.replace('−', '-').lstrip('+')  # noqa: E731
  reports = re.sub(r'(?<![\d.])\+(?=\d\.\d{4} ±)', '', reports.replace('−', '-'))
  for path in DOCS:
    for number in re.findall(r'[+−-]?\d\.\d{4} ± \d\.\d{4}', _without_code(_read(path))):
      assert normal(number) in reports, f'{path} quotes {number}, which no docs/results/**/*.md holds: re-read it'


def _true_labels(query_dir, truth):
  with open(os.path.join(query_dir, 'index.csv')) as f:
    return [[r['item_id'], str(truth[int(r['pool_index'])])] for r in csv.DictReader(f)]


def test_the_readme_numpy_recipe_runs_round_by_round(tmp_path, monkeypatch, tiny_problem):
  """The README's recipe as written, on tiny arrays: it asks for round 0's query, takes the filled-in CSV, resumes
  from its checkpoint and asks for round 1's."""
  (recipe,) = [b for b in _code_blocks(_read('README.md'), 'python') if 'HumanOracle' in b]
  images, labels = tiny_problem
  rng = np.random.default_rng(0)
  pool_images = np.concatenate([images, images[:, ::-1], images[:, :, ::-1], images[:, ::-1, ::-1]])
  pool_labels = np.concatenate([labels] * 4)
  namespace = {'x_seed': pool_images[:10], 'y_seed': pool_labels[:10], 'x_pool': pool_images[10:],
               'x_test': images + rng.normal(0, 0.1, images.shape).astype(np.float32), 'y_test': labels}
  for size, tiny in (('num_classes=10', 'num_classes=2'), ('per_round=50', 'per_round=8'),
                     ('total=len(y_seed) + 200', 'total=len(y_seed) + 16'),
                     ('epochs=80, examples_per_epoch=1024', 'epochs=2, examples_per_epoch=128')):
    assert size in recipe
    recipe = recipe.replace(size, tiny)  # Only the sizes shrink.
  monkeypatch.chdir(tmp_path)
  with pytest.raises(oracle_lib.LabelsRequested, match="Round 0's query needs 8 labels from you"):
    exec(recipe, dict(namespace))  # noqa: S102 - the README's own code.
  query = tmp_path / 'work' / 'arrays' / 'queries' / 'round_0'
  with open(tmp_path / 'answers.csv', 'w', newline='') as f:
    csv.writer(f).writerows([['item_id', 'label'], *_true_labels(query, pool_labels)])
  answered = recipe.replace('labels_file=None', f"labels_file={str(tmp_path / 'answers.csv')!r}")
  with pytest.raises(oracle_lib.LabelsRequested, match="Round 1's query needs 8 labels from you"):
    exec(answered, dict(namespace))  # noqa: S102


def test_every_committed_grid_summary_is_what_jal_report_writes_from_its_rows(tmp_path, monkeypatch):
  """A summary.md quoted by the guides is the report of its committed rows as they stand, not of an earlier set
  of rows (figures are not drawn here; the tables are compared byte for byte)."""
  from jal import plots
  for name in [n for n in dir(plots) if not n.startswith('_') and callable(getattr(plots, n))]:
    monkeypatch.setattr(plots, name, lambda *args, **kwargs: None)
  results = os.path.join(ROOT, 'docs', 'results')
  grids = sorted(n for n in os.listdir(results) if os.path.exists(os.path.join(results, n, 'grid.json')))
  assert len(grids) >= 10
  for name in grids:
    copy = tmp_path / name
    copy.mkdir()
    for f in ('grid.json', 'rounds.jsonl'):
      copy.joinpath(f).write_bytes(open(os.path.join(results, name, f), 'rb').read())
    experiment.report_workdir(str(copy))
    assert copy.joinpath('summary.md').read_text() == _read(os.path.join('docs', 'results', name, 'summary.md')), (
        f'docs/results/{name}/summary.md is not what its rows give: run jal-report --results=docs/results')
