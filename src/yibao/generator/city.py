"""The city: its state, one pass over the business dates and hospitals, and the entry point."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from .claim import _Claims
from .common import _weighted
from .defects import DEFECT_CLASSES, _FolderDefects
from .fees import FEE_DEFECT_CLASSES, _FeeDetail
from .hospitals import make_hospitals
from .patients import _Patients
from .purchase import _Purchases
from .reference import _ReferenceData
from .truth import CitySummary, write_truth
from .usage import _Usage
from .workdays import _Calendar
from .world import (
    _INPATIENT_MIX,
    _OUTPATIENT_MIX,
    CHRONIC_DIAGNOSES,
    INPATIENT_DIAGNOSES,
    MAX_YEAR,
    OUTPATIENT_DIAGNOSES,
    SURGERY_DIAGNOSES,
    catalog_codes,
)
from .writers import _Sink


class _City(_ReferenceData, _Patients, _Purchases, _Usage, _Claims, _FeeDetail, _FolderDefects):
    """The whole city being generated; each extract's part is a mixin in its own module."""

    def __init__(self, landing: Path, seed: int, n_hospitals: int, start: dt.date, end: dt.date,
                 volume: float, defect_rate: float, fee_detail: float = 0.0, fee_lines: float = 4.0,
                 audit_rate: float = 0.03) -> None:
        self.landing = landing
        self.seed = seed
        self.start = start
        self.end = end
        self.volume = volume
        self.defect_rate = defect_rate
        self.cal = _Calendar()
        self._cache: dict[tuple, object] = {}
        if start.year < self.cal.min_year or end.year > MAX_YEAR:
            raise ValueError(f"the generator's holiday calendar covers {self.cal.min_year}-{MAX_YEAR}")
        self.rng = random.Random(f"yibao-city|{seed}")
        self.days = [start + dt.timedelta(i) for i in range((end - start).days + 1)]
        self.catalog_codes = catalog_codes()
        self.hospitals = make_hospitals(self.rng, n_hospitals)
        self.batches = self._make_batches()
        self.patients = self._make_patients()
        # pending work keyed by (hospital index, business date)
        self.pending_purchase: dict[tuple[int, dt.date], list[list[str]]] = {}
        self.pending_usage: dict[tuple[int, dt.date], list[list[str]]] = {}
        self.pending_claims: dict[tuple[int, dt.date], list[tuple]] = {}
        # outputs
        self.defects: list[dict] = []
        self.duplicates = 0  # duplicate_key pairs written (every other one gets a malformed copy)
        self.rows = {"purchase": 0, "usage": 0, "claim": 0}
        self.files = {"extract": 0, "manifest": 0, "reference": 0, "generator": 0}
        self.bytes = 0
        self.reference_rows: dict[str, int] = {}
        self._fee_setup(fee_detail, fee_lines, audit_rate)
        if self.fee_on:
            self.rows["fee_detail"] = 0
        self._fee_sink = None
        self._diag_tables = {
            "outpatient": _weighted((c, 1.0) for c in OUTPATIENT_DIAGNOSES),
            "chronic": _weighted((c, 1.0) for c in CHRONIC_DIAGNOSES),
            "inpatient": _weighted((c, 1.0) for c in INPATIENT_DIAGNOSES),
            **{k: _weighted(((c, drg, cat), w) for c, drg, cat, w in v) for k, v in SURGERY_DIAGNOSES.items()},
        }
        self._out_mix = _weighted(_OUTPATIENT_MIX)
        self._in_mix = _weighted(_INPATIENT_MIX)
        self._out_mix_no_ob = _weighted((c, w) for c, w in _OUTPATIENT_MIX if c != "51")
        self._in_mix_no_ob = _weighted((c, w) for c, w in _INPATIENT_MIX if c != "52")


    # -- one hospital-day ----------------------------------------------------------------------------

    def run(self) -> None:
        self.write_reference()
        if self.fee_on:
            self.write_audit_rules()
        dropped: set[str] = set()
        hospital_codes = [h.code for h in self.hospitals]
        missing = None  # (day, hospital index) whose claim file never arrives
        if self.defect_rate > 0 and len(self.days) >= 3:
            missing = (self.days[len(self.days) // 2],
                       random.Random(f"yibao-missing|{self.seed}").randrange(len(self.hospitals)))
        for day in self.days:
            folder = self.landing / f"{day:%Y%m%d}"
            for h in self.hospitals:
                hdir = folder / h.code
                hdir.mkdir(parents=True, exist_ok=True)
                rng = random.Random(f"yibao|{self.seed}|{h.code}|{day.isoformat()}")
                workday = self.cal.is_workday(day)
                others = [c for c in hospital_codes if c != h.code] or [f"H{h.county}99999"]
                sinks = {
                    e: _Sink(self, h, day, e, hdir, others)
                    for e in ("purchase", "usage", "claim")
                }
                self._purchases(rng, h, day, workday, sinks["purchase"])
                sinks["purchase"].close()
                self._usage_and_surgeries(rng, h, day, workday, sinks["usage"])
                sinks["usage"].close()
                if h.index in self.fee_index:  # written beside the claims (row defects drawn per visit, in .fees)
                    sinks["fee_detail"] = self._fee_sink = _Sink(self, h, day, "fee_detail", hdir, others, defects=False)
                    self._fee_rng = random.Random(f"yibao-fee|{self.seed}|{h.code}|{day.isoformat()}")
                    self._fee_drng = (random.Random(f"yibao-fee-defects|{self.seed}|{h.code}|{day.isoformat()}")
                                      if self.defect_rate > 0 else None)
                self._fee_h = h
                self._claim_file_missing = missing == (day, h.index)
                self._claims(rng, h, day, workday, sinks["claim"])
                sinks["claim"].close()
                if self._fee_sink is not None:
                    self._fee_sink.close()
                    self._fee_sink = None
                self._finish_folder(h, day, hdir, sinks)
                if missing == (day, h.index):
                    self._drop_file(hdir, sinks["claim"])
                    dropped.add(sinks["claim"].relpath)
        self.audit = self.write_audit_truth(dropped) if self.fee_on else None



def generate_city(
    landing: Path,
    *,
    seed: int = 42,
    hospitals: int = 6,
    start: dt.date,
    end: dt.date,
    volume: float = 1.0,
    defect_rate: float = 0.01,
    fee_detail: float = 0.0,
    fee_lines: float = 4.0,
    audit_rate: float = 0.03,
) -> CitySummary:
    """Write a synthetic city's landing zone under ``landing`` (see the module docstring).

    ``fee_detail`` is the share of hospitals that send ``fee_detail.csv`` (0: none, the city of the
    three extracts; with it, purchases and usage are the same bytes, claims gain the audit's planned
    readmissions and referrals), ``fee_lines`` the mean lines of an
    outpatient visit (an inpatient stay has about half of that a day), ``audit_rate`` the share of
    visits with a settled claim that get one injected smart-audit violation (see :mod:`.fees`).

    Same arguments → byte-identical files. ``landing`` must not exist or be empty (a city is
    written whole; mixing two cities in one landing zone would make neither ground truth right).
    """
    if not 1 <= hospitals <= 999:
        raise ValueError("hospitals must be in 1..999")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if volume <= 0:
        raise ValueError("volume must be > 0")
    if not 0 <= defect_rate < 1:
        raise ValueError("defect_rate must be in [0, 1)")
    if not 0 <= fee_detail <= 1 or not 0 <= audit_rate <= 1 or fee_lines < 1:
        raise ValueError("fee_detail and audit_rate must be in [0, 1], fee_lines >= 1")
    landing = Path(landing)
    if landing.exists() and any(landing.iterdir()):
        raise FileExistsError(f"{landing} is not empty: generate a city into a new or empty directory")
    landing.mkdir(parents=True, exist_ok=True)
    city = _City(landing, seed, hospitals, start, end, volume, defect_rate, fee_detail, fee_lines, audit_rate)
    city.run()
    counts = {cls: 0 for cls in DEFECT_CLASSES + (FEE_DEFECT_CLASSES if city.fee_on else ())}
    for d in city.defects:
        counts[d["class"]] += 1
    summary = CitySummary(
        landing=str(landing), seed=seed, start=start.isoformat(), end=end.isoformat(), volume=volume,
        defect_rate=defect_rate, hospitals=[h.code for h in city.hospitals], business_dates=len(city.days),
        rows=dict(city.rows), reference_rows=dict(city.reference_rows), files=dict(city.files),
        bytes=city.bytes, defects=counts,
    )
    summary.files["generator"] = 2 if city.audit is None else 4
    write_truth(city, summary)
    return summary
