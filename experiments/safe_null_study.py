r"""How often the safe search's paired t clears a threshold when no architecture can be better: labels that are
coin flips (the null), so every move is a false alarm. The measurement behind `nas.evidence`'s default.

  python experiments/safe_null_study.py --seeds=8 > docs/results/safe_null_study.md

Per seed: 150 8x8 images of Gaussian noise with random binary labels, the safe search over a 2 x 2 space with
every move disabled (so each round compares the same candidates), 5 rounds of 40 -> 80 labels, 2 folds, tiny
training. Prints every t and, per threshold, the share of comparisons and of rounds whose largest t clears it.
"""

import argparse

import numpy as np

from jal import data, inas, loop, nas
from jal.models import ModelConfig
from jal.search_space import SearchSpace
from jal.train import TrainConfig


def null_ts(seed: int, folds: int, score: str = 'correct') -> list[list[float]]:
  """The t of every candidate against the current one, per round, on coin-flip labels."""
  rng = np.random.default_rng(1000 + seed)
  images = rng.normal(size=(150, 8, 8, 1)).astype(np.float32)
  labels = rng.integers(0, 2, 150).astype(np.int32)
  splits = data.make_splits(data.from_arrays(images[:120], labels[:120]),
                            data.from_arrays(images[120:], labels[120:]))
  config = loop.LoopConfig(loop.BudgetSchedule(40, 10, 80),
                           TrainConfig(epochs=3, examples_per_epoch=32, batch_size=16), ModelConfig(width=4))
  policy = nas.safe_policy(inas.INASConfig(space=SearchSpace(2, 2), candidate_fraction=1.0), folds=folds,
                           evidence=float('inf'), score=score)
  history = loop.run(splits, config, 'random', policy, seed=seed).history
  return [[v for k, v in row.items() if k.startswith('nas/oof/') and k.endswith('/t')] for row in history]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--seeds', type=int, default=8)
  parser.add_argument('--folds', type=int, default=2)
  parser.add_argument('--score', default='correct', help="the per-item score: 'correct' or 'probability'")
  args = parser.parse_args()
  rounds = [ts for seed in range(args.seeds) for ts in null_ts(seed, args.folds, args.score)]
  flat = [t for ts in rounds for t in ts]
  print(f'# The safe search under the null: {args.seeds} seeds x 5 rounds, {len(flat)} comparisons, '
        f'{args.folds} folds, score {args.score!r}\n')
  print('| threshold | comparisons with t above | rounds whose largest t is above (a false move) |')
  print('|---|---|---|')
  for threshold in (1.5, 2.0, 2.5, 3.0, 3.5):
    share = np.mean([t > threshold for t in flat])
    moves = np.mean([max(ts) > threshold for ts in rounds])
    print(f'| {threshold:.1f} | {share:.3f} | {moves:.3f} |')
  print(f'\nEvery t, by round: {[[round(t, 2) for t in ts] for ts in rounds]}')


if __name__ == '__main__':
  main()
