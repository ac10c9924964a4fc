"""Reports people look at: ``nnperf compare`` (noise-aware A/B), the HTML report, documents.

:mod:`nnperf.report.documents` reads any nnperf JSON document into comparable runs,
:mod:`nnperf.report.compare` judges B against A from the raw samples (needs ``scipy``:
``pip install 'nnperf[report]'``), :mod:`nnperf.report.html` writes one self-contained HTML file
(needs ``plotly``).
"""

from __future__ import annotations

from nnperf.report.documents import Run, load_document, runs_of

__all__ = ["Run", "load_document", "runs_of"]
