r"""active-iNAS against fixed A(1,2) and ResNet-18 for softmax response, MC-dropout and coreset (§5.2-5.4).

  python experiments/compare_inas.py --workdir=workdir/compare_inas

Writes the AUBC table with paired differences (summary.md), learning_curves.png (one panel per query function),
architectures.png (iNAS's trajectory) and auc_gain.png (AUC-GAIN against random per architecture).
"""

import launch
from absl import app

_CONFIG, _WORKDIR, _LABELS = launch.define_flags('compare_inas.py')

if __name__ == '__main__':
  app.run(launch.main_for(_CONFIG, _WORKDIR, _LABELS))
