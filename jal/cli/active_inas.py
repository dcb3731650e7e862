r"""active-iNAS: active learning that searches for the architecture while it learns (Algorithm 2 with iNAS).

  jal-active-inas --workdir=workdir/active_inas
  jal-active-inas --workdir=... --config.strategies=coreset
  jal-active-inas --config=active_inas:paper --workdir=...

Logs the architecture iNAS chose, every candidate's validation error and the test accuracy per round; writes
rounds.jsonl / rounds.csv, summary.md, learning_curve.png and architectures.png to the workdir.
"""

from jal.cli import launch

_CONFIG, _WORKDIR, _LABELS = launch.define_flags('active_inas')


def main():
  launch.run(launch.main_for(_CONFIG, _WORKDIR, _LABELS))


if __name__ == '__main__':
  main()
