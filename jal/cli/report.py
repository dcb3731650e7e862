r"""Recomputes every table and figure of committed results from their rows: the command behind README's numbers.

  jal-report --results=docs/results

For each folder under --results: a comparison grid (rounds.jsonl + grid.json) gets summary.md, summary.json,
rounds.csv and its figures again; the schedule study (schedule.jsonl) gets schedule.md and schedule_curves.png;
a folder NAME_ablations of grids (one setting changed each, e.g. autoal_three_ablations/head_random) gets
ablations.md: each variant against the grid NAME beside it, on paired seeds. Nothing is trained.
"""

import json
import os

from absl import app, flags

from jal import checkpoint, experiment, report

_RESULTS = flags.DEFINE_string('results', 'docs/results', 'Folder of result folders.')


def _main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  for name in sorted(os.listdir(_RESULTS.value)):
    folder = os.path.join(_RESULTS.value, name)
    if os.path.exists(os.path.join(folder, 'grid.json')):
      summary = experiment.report_workdir(folder)
      print(f'{folder}: {len(summary["methods"])} methods -> summary.md, figures')
    elif os.path.exists(os.path.join(folder, 'schedule.jsonl')):
      rows = report.read_rows(os.path.join(folder, 'schedule.jsonl'))
      with open(os.path.join(folder, 'schedule.md'), 'w', encoding='utf-8') as f:
        f.write(report.schedule_table(rows))
      report.schedule_curves(rows, os.path.join(folder, 'schedule_curves.png'))
      print(f'{folder}: {len(rows)} trainings -> schedule.md, schedule_curves.png')
    elif name.endswith('_ablations') and os.path.isdir(folder):
      _ablations(folder, os.path.join(_RESULTS.value, name[:-len('_ablations')]))


def _ablations(folder: str, reference: str) -> None:
  """ablations.md: each variant grid under `folder` against the `reference` grid's AutoAL, paired by seed."""
  read_config = lambda path: json.load(open(os.path.join(path, 'config.json'), encoding='utf-8'))  # noqa: E731
  base = read_config(reference)
  variants, changes = {}, {}
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if os.path.exists(os.path.join(path, 'grid.json')):
      experiment.report_workdir(path)
      variants[name] = report.read_rows(os.path.join(path, 'rounds.jsonl'))
      changes[name] = [c for c in report.config_changes(base, read_config(path), absent=checkpoint.ADDED_FIELDS)
                       if not c.startswith('strategies')]
  table = report.ablation_table(report.read_rows(os.path.join(reference, 'rounds.jsonl')), variants, 'autoal',
                                changes)
  with open(os.path.join(folder, 'ablations.md'), 'w', encoding='utf-8') as f:
    f.write(f'# AutoAL ablations against {reference}\n\n' + table)
  print(f'{folder}: {len(variants)} ablations -> ablations.md')


def main():
  app.run(_main)


if __name__ == '__main__':
  main()
