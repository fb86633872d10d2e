"""Monthly settlement reports (结算单) for every hospital and the citywide overview for the bureau.

    from yibao.reports import render_month
    folder = render_month(url, date(2025, 1, 1), Path("reports"))   # -> reports/2025-01/

Reads only the ``marts`` schema (docs/marts.md). Writes per hospital an Excel statement and a PDF
summary, for the bureau an Excel ranking workbook and a PDF overview, and ``manifest.json``.
Needs the CJK font from Debian's ``fonts-noto-cjk``.
"""

from .publish import months_due, parse_month, record_rendered, require_published
from .render import render_month

__all__ = ["months_due", "parse_month", "record_rendered", "render_month", "require_published"]
