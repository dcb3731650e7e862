r"""Rewrites the "## Every committed result" section that ends docs/results.md: every folder under docs/results/
with links to its tables and images, and every single-file output (tests/test_docs.py fails when one is missing).

  python experiments/results_index.py
"""

import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs')
HEADING = '## Every committed result'
INTRO = ('Each folder under `docs/results/` with its tables and figures (`jal-report --results=docs/results` '
         'rebuilds\nthem from the rows); the single-file benchmark and study outputs, discussed in '
         '[performance](performance.md),\n[scaling](scaling.md) and [architecture search](architecture_search.md), '
         'are ')


def _title(name: str) -> str:
  return os.path.splitext(name)[0].replace('_', ' ')


def index() -> str:
  results = os.path.join(ROOT, 'results')
  entries = sorted(os.listdir(results))
  files = [e for e in entries if e.endswith('.md') and os.path.isfile(os.path.join(results, e))]
  lines = [HEADING, '', INTRO + ', '.join(f'[{f}](results/{f})' for f in files) + '.', '']
  for folder in (e for e in entries if os.path.isdir(os.path.join(results, e))):
    path = os.path.join(results, folder)
    names = sorted(os.listdir(path))
    tables = [n for n in names if n.endswith('.md')]
    images = [n for n in names if n.endswith('.png')]
    subfolders = [n for n in names if os.path.isdir(os.path.join(path, n)) and n != 'checkpoints'
                  and any(f.endswith(('.md', '.png')) for f in os.listdir(os.path.join(path, n)))]
    if not tables:  # A grid still running: no table yet.
      continue
    lines.append(f'**{folder}**: ' + ', '.join(f'[{t}](results/{folder}/{t})' for t in tables))
    for sub in subfolders:
      inner = sorted((f for f in os.listdir(os.path.join(path, sub)) if f.endswith(('.md', '.png'))),
                     key=lambda f: (f.endswith('.png'), f))  # Tables first.
      lines.append(f'- {sub}: ' + ', '.join(f'[{f}](results/{folder}/{sub}/{f})' for f in inner))
    if images:
      lines.append('')
      lines += [f'![{folder}: {_title(i)}](results/{folder}/{i})' for i in images]
    lines.append('')
  return '\n'.join(lines)


def main():
  path = os.path.join(ROOT, 'results.md')
  with open(path) as f:
    text = f.read()
  head = text[:text.index(HEADING)] if HEADING in text else text.rstrip() + '\n\n'
  with open(path, 'w') as f:
    f.write(head + index())


if __name__ == '__main__':
  main()
