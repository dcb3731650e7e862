r"""AutoAL against each of its candidates alone and random (SPEC §5).

  python experiments/autoal.py --workdir=results/autoal
  python experiments/autoal.py --config=experiments/configs/autoal.py:three --workdir=results/autoal_three
  python experiments/autoal.py --config=experiments/configs/autoal.py:paper --workdir=...   # GPU/TPU

Writes rounds.jsonl / rounds.csv, summary.md (AUBC mean ± SE, AutoAL minus each strategy on paired seeds, the
search and query overhead), learning_curve.png and strategy_weights.png (the paper's Figure 5) to the workdir.
Restarting with the same workdir skips the runs already complete.
"""

import launch
from absl import app

_CONFIG, _WORKDIR, _LABELS = launch.define_flags('autoal.py')

if __name__ == '__main__':
  app.run(launch.main_for(_CONFIG, _WORKDIR, _LABELS))
