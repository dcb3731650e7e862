r"""AutoAL against each of its candidates alone and random (Wang et al., ICML 2025).

  jal-autoal --workdir=workdir/autoal
  jal-autoal --config=autoal:three --workdir=workdir/autoal_three
  jal-autoal --config=autoal:paper --workdir=...   # GPU/TPU

Writes rounds.jsonl / rounds.csv, summary.md (AUBC mean ± SE, AutoAL minus each strategy on paired seeds, the
search and query overhead), learning_curve.png and strategy_weights.png (the paper's Figure 5) to the workdir.
Restarting with the same workdir skips the runs already complete.
"""

from jal.cli import launch

_CONFIG, _WORKDIR, _LABELS = launch.define_flags('autoal')


def main():
  launch.run(launch.main_for(_CONFIG, _WORKDIR, _LABELS))


if __name__ == '__main__':
  main()
