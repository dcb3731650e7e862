r"""Recomputes every table and figure of committed results from their rows: the command behind README's numbers.

  python experiments/report.py --results=docs/results

For each folder under --results: a comparison grid (rounds.jsonl + grid.json) gets summary.md, summary.json,
rounds.csv and its figures again; the schedule study (schedule.jsonl) gets schedule.md and schedule_curves.png.
Nothing is trained.
"""

import os

from absl import app, flags

from jal import experiment, report

_RESULTS = flags.DEFINE_string('results', 'docs/results', 'Folder of result folders.')


def main(argv):
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


if __name__ == '__main__':
  app.run(main)
