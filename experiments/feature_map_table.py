r"""The feature-map bound's table, from the committed rows of the schedule study at 8x8, 14x14 and 28x28.

  python experiments/feature_map_table.py   # reads docs/results/feature_map_{8x8,14x14,28x28}/schedule.jsonl,
                                            # prints the table and writes it to docs/results/feature_map_bound.md

For each pair of architectures with the same blocks whose one more stack takes the last feature map from 2x2 to
1x1: validation accuracy mean ± SE over seeds, and the paired difference (1x1 − 2x2) with its SE and t.
"""

import json
import os

import numpy as np

FOLDERS = {8: 'feature_map_8x8', 14: 'feature_map_14x14', 28: 'feature_map_28x28'}


def main():
  lines = ['| input | last map 2x2 | last map 1x1 (one more stack) | seeds | 1x1 − 2x2, paired | t |',
           '|---|---|---|---|---|---|']
  pairs, below = 0, 0
  for size, folder in FOLDERS.items():
    path = os.path.join('docs', 'results', folder, 'schedule.jsonl')
    accuracy = {}
    for line in open(path, encoding='utf-8'):
      row = json.loads(line)
      accuracy.setdefault(row['arch'], {})[row['seed']] = row['val/accuracy']
    for arch in sorted(accuracy):
      blocks, stacks = (int(x) for x in arch[2:-1].split(','))
      if -(-size // 2**stacks) != 2 or f'A({blocks},{stacks + 1})' not in accuracy:
        continue
      small, deeper = accuracy[arch], accuracy[f'A({blocks},{stacks + 1})']
      seeds = sorted(set(small) & set(deeper))
      a, b = np.array([small[s] for s in seeds]), np.array([deeper[s] for s in seeds])
      d = b - a
      se = lambda x: x.std(ddof=1) / np.sqrt(len(x))  # noqa: E731
      pairs, below = pairs + len(d), below + int((d < 0).sum())
      lines.append(f'| {size}x{size} | {arch} {a.mean():.4f} ± {se(a):.4f} | A({blocks},{stacks + 1}) '
                   f'{b.mean():.4f} ± {se(b):.4f} | {len(seeds)} | {d.mean():+.4f} ± {se(d):.4f} | '
                   f'{d.mean() / se(d):.1f} |')
  lines.append(f'\nThe 1x1 network is below the 2x2 one in {below} of {pairs} seed pairs.')
  text = '\n'.join(lines) + '\n'
  print(text, end='')
  with open(os.path.join('docs', 'results', 'feature_map_bound.md'), 'w', encoding='utf-8') as f:
    f.write('# The feature-map bound: one more stack into a 1x1 map\n\n`python experiments/feature_map_table.py`, '
            'from the schedule study\'s rows (validation accuracy on 2,000 held-out training images).\n\n' + text)


if __name__ == '__main__':
  main()
