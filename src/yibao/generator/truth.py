"""The generator's ground truth and summary (``<landing>/_generator/``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

GENERATOR_VERSION = 1


@dataclass
class CitySummary:
    """What generate_city wrote. ``rows`` counts data rows as written (defect rows and duplicate
    copies included, truncated files at full length)."""

    landing: str
    seed: int
    start: str
    end: str
    volume: float
    defect_rate: float
    hospitals: list[str]
    business_dates: int
    rows: dict[str, int]
    reference_rows: dict[str, int]
    files: dict[str, int]
    bytes: int
    defects: dict[str, int]

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def __str__(self) -> str:
        lines = [
            (f"synthetic city (seed {self.seed}) in {self.landing}: {len(self.hospitals)} hospitals, "
             f"{self.business_dates} business dates {self.start} … {self.end}"),
            "  rows: " + ", ".join(f"{k} {v:,}" for k, v in self.rows.items()) + f" (total {self.total_rows:,})",
            "  reference: " + ", ".join(f"{k} {v:,}" for k, v in self.reference_rows.items()),
            "  files: " + ", ".join(f"{k} {v:,}" for k, v in self.files.items()) + f"; {self.bytes / 1e6:,.1f} MB",
            "  defects: " + (", ".join(f"{k} {v:,}" for k, v in self.defects.items() if v) or "none"),
        ]
        return "\n".join(lines)


def write_truth(city, summary: CitySummary) -> None:
    """``_generator/defects.json`` (every injected defect) and ``summary.json`` (the counts and formats)."""
    gen = city.landing / "_generator"
    gen.mkdir(exist_ok=True)
    lines = [json.dumps(d, ensure_ascii=False) for d in city.defects]
    (gen / "defects.json").write_text("[\n" + ",\n".join(lines) + ("\n]\n" if lines else "]\n"), encoding="utf-8")
    data = asdict(summary)
    data.pop("landing")
    data["generator_version"] = GENERATOR_VERSION
    data["hospital_formats"] = {
        h.code: {"level": h.level, "ownership": h.ownership, **asdict(h.fmt)} for h in city.hospitals
    }
    if city.audit is not None:
        data["audit"] = city.audit
    (gen / "summary.json").write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
