"""notebooks/active_inas.ipynb executed top to bottom at smoke scale, as Colab would run it (nbclient, a real
Jupyter kernel): every cell must run and the results cell must show the learning curve."""

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
  assert os.path.exists(tmp_path / 'workdir' / 'rounds.jsonl')
