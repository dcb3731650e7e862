"""notebooks/active_inas.ipynb executed top to bottom at smoke scale, as Colab would run it (nbclient, a real
Jupyter kernel): every cell must run and the results cell must show the learning curve. It runs the README's main
job (the installed config `active_inas`) through `jal.experiment.run`, so this is also that job's smoke test (the
command around the same call is tested in test_experiments.py)."""

import json
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.usefixtures('fashion_mnist')
def test_the_colab_notebook_runs_top_to_bottom_at_smoke_scale(tmp_path, monkeypatch):
  monkeypatch.setenv('JAL_NOTEBOOK_SCALE', 'smoke')
  monkeypatch.setenv('JAL_NOTEBOOK_WORKDIR', str(tmp_path / 'workdir'))
  monkeypatch.setenv('JAL_SOURCE', ROOT)
  notebook = nbformat.read(os.path.join(ROOT, 'notebooks', 'active_inas.ipynb'), as_version=4)
  NotebookClient(notebook, timeout=300, kernel_name='python3',
                 resources={'metadata': {'path': os.path.join(ROOT, 'notebooks')}}).execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == 'code' for o in cell.get('outputs', [])]
  assert not [o for o in outputs if o.get('output_type') == 'error']
  assert any('image/png' in o.get('data', {}) for o in outputs)  # The learning curve, inline.
  text = ''.join(o.get('text', '') for o in outputs)
  assert 'smoke scale' in text and 'round 2:' in text
  with open(tmp_path / 'workdir' / 'rounds.jsonl') as f:
    rows = [json.loads(line) for line in f]
  assert all(r['policy'] == 'inas' and any(k.startswith('nas/step0/') for k in r) for r in rows)
  for seed in {r['seed'] for r in rows}:
    mine = [r for r in rows if r['seed'] == seed]
    assert [r['num_labeled'] for r in mine] == [20, 40, 60]
    depths = [r['arch/depth'] for r in mine]
    assert depths == sorted(depths)  # Capacity never shrinks.
  assert (tmp_path / 'workdir' / 'architectures.png').stat().st_size > 0
