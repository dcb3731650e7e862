r"""Runs a grid whose policies include the iNAS studies ('inas_study', 'inheritance_study': inas_studies.py).

  python experiments/inas_study.py --workdir=docs/results/inas_study
  python experiments/inas_study.py --config=experiments/configs/inheritance_study.py --workdir=...

The same flags, outputs and resumption as `jal-compare`.
"""

import os

import inas_studies

from jal.cli import launch

_CONFIG, _WORKDIR, _LABELS = launch.define_flags(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'inas_validation_study.py'))

if __name__ == '__main__':
  inas_studies.register()
  launch.run(launch.main_for(_CONFIG, _WORKDIR, _LABELS))
