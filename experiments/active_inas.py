r"""active-iNAS: active learning that searches for the architecture while it learns (Algorithm 2 with iNAS).

  python experiments/active_inas.py --workdir=workdir/active_inas
  python experiments/active_inas.py --workdir=... --config.strategies=coreset
  python experiments/active_inas.py --config=experiments/configs/active_inas.py:paper --workdir=...

Logs the architecture iNAS chose, every candidate's validation error and the test accuracy per round; writes
rounds.jsonl / rounds.csv, summary.md, learning_curve.png and architectures.png to the workdir.
"""

import launch
from absl import app

_CONFIG, _WORKDIR, _LABELS = launch.define_flags('active_inas.py')

if __name__ == '__main__':
  app.run(launch.main_for(_CONFIG, _WORKDIR, _LABELS))
