r"""Compares query strategies on a fixed architecture over paired seeds (Algorithm 2 with a fixed policy).

  jal-active-learning --workdir=workdir/active_learning
  jal-active-learning --workdir=... --config.strategies=entropy,coreset --config.seeds=0,1

Writes rounds.jsonl / rounds.csv (one row per round), summary.json / summary.md (AUBC mean ± SE, paired
differences and AUC-GAIN against random) and learning_curve.png to the workdir; a restart resumes after the
last complete (strategy, seed) run.
"""

from jal.cli import launch

_CONFIG, _WORKDIR, _LABELS = launch.define_flags('active_learning')


def main():
  launch.run(launch.main_for(_CONFIG, _WORKDIR, _LABELS))


if __name__ == '__main__':
  main()
