r"""Architecture policies compared on paired seeds: active-iNAS against fixed A(1,2) and ResNet-18 (§5.2-5.4)
by default, or any grid of policies and strategies (e.g. --config=compare_nas for the NAS strategies).

  jal-compare --workdir=workdir/compare_inas
  jal-compare --config=compare_nas --workdir=workdir/compare_nas

Writes the AUBC table with paired differences (summary.md), learning_curves.png (one panel per query function),
architectures.png (the searches' trajectories) and auc_gain.png (AUC-GAIN against random per architecture).
"""

from jal.cli import launch

_CONFIG, _WORKDIR, _LABELS = launch.define_flags('compare_inas')


def main():
  launch.run(launch.main_for(_CONFIG, _WORKDIR, _LABELS))


if __name__ == '__main__':
  main()
