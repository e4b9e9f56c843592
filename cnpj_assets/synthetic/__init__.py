"""A synthetic CNPJ release: the real layout, realistic values, every real-world quirk.

It lets the pipeline and its tests run end to end on data of any size without downloading
6 GB, and tells them exactly what they should find (see report.ReleaseReport).
"""

from __future__ import annotations

from cnpj_assets.synthetic.release import write_release
from cnpj_assets.synthetic.report import FileReport, QuirkEntry, ReleaseReport

__all__ = ["FileReport", "QuirkEntry", "ReleaseReport", "write_release"]
