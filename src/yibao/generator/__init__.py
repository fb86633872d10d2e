"""A synthetic city: a landing zone laid out exactly as docs/extract-contract.md, deterministic from a seed.

    generate_city(landing, seed=42, hospitals=6, start=date(2025, 1, 1), end=date(2025, 3, 31))

writes ``<landing>/reference/*.csv`` (the bureau's eight reference files; ``workday_overrides``
only when the range reaches a year the bundled holiday calendar lacks), one folder per business
date and hospital with ``purchase`` / ``usage`` / ``claim`` extracts (and, for some hospitals, a
``_manifest.json``), plus the ground truth for tests under ``<landing>/_generator/`` (ignored by
the loader): ``defects.json`` lists every injected defect, ``summary.json`` the counts. With
``fee_detail`` > 0 a share of the hospitals also send ``fee_detail`` (every charged line of a visit),
the bureau's ``reference/audit_rules.csv`` is written, and ``audit_findings.json`` /
``exam_positive_rate.json`` list what the smart audit (R11-R22) must find (see :mod:`.fees` and
docs/generator.md).

The city (新乡市, region 4107xx) is built so that every rule R1-R10 has something to find: VBP
batches for coronary stents (C020202) and artificial joints (C031001) with selected and
non-selected products, agreed volumes that some hospitals complete and others fall behind on,
price violations, off-platform purchases, supplier payments on time / late / never, returns and
refunds, marked-up charges and charges above the payment standard, brand-loyal doctors and
outlier surgeries, reversals (冲正) that cross months and years, budgets that some hospitals
overrun, one hospital with monthly budget weights.

Formats vary per hospital and stay stable over time (hospital index → format):

| # | level | file format |
|---|---|---|
| 0 | 三级 public | UTF-8, English headers, ``YYYY-MM-DD``, Y/N, manifest |
| 1 | 三级 public | UTF-8 with BOM, ``YYYYMMDD``; its budget has monthly weights |
| 2 | 二级 public | GB18030, Chinese headers, CRLF, ``YYYY/MM/DD``, 是/否, manifest |
| 3 | 二级 private | usage as .xlsx (typed cells), ``YYYYMMDD``; marks up charges, price violations |
| 4 | 一级 public | all three as .csv.gz (gzip mtime 0), manifest, never fills UDI-DI |
| 5 | 基层 public | extra column ``备注`` (kept by the loader), padded headers, 是/否 |
| 6+ | mixed | UTF-8 variations (date styles, Chinese headers for some), manifest on even # |

Defects (``defect_rate`` of data rows, exactly one per corrupted row; plus file-level
``truncated_file`` / ``bad_manifest`` on files with a manifest) are drawn from a random stream of
their own, so a city with defects is the clean city of the same seed with the listed rows
changed (and duplicate rows inserted). With ``defect_rate=0`` the city is clean. Two cases are
placed on purpose: every other ``duplicate_key`` pair has a copy that is also malformed (its
defects.json entry carries the other defect under ``also``; the loader must still quarantine both
rows as duplicates), and a city of three or more business dates misses one claim file in the
middle of the range (``missing_file``: one hospital-night that never arrived, manifest entry
dropped too; its rows are not in ``summary.json``).

Sizing: at ``volume=1.0`` a working day brings about 600 claims from a 三级 hospital, 220 from
二级, 70 from 一级 and 35 from 基层 (rest days fewer), plus usage lines of about 3 % of the
claims; purchases stay at a few lines per hospital and day whatever the volume (see
:func:`estimate_rows_per_day`). Six hospitals at volume 1.0 make about 1,900 rows a working day,
~600,000 a year. A one-million-row night (about 20 s of CPU, 135 MB)::

    generate_city(out, hospitals=40, volume=volume_for_rows(1_000_000, 40), start=d, end=d)

Money is generated in integer cents (prices in 1/10000 yuan) and written as exact decimals.

The package, one module per concern (each fits in a reader's head):

| module | what |
|---|---|
| ``city`` | the city's state, the pass over dates × hospitals, :func:`generate_city` |
| ``world`` | static world: counties, levels, consumable catalog, diagnoses, money constants, sizing |
| ``hospitals`` | the hospitals (level, format, doctors, formulary, pricing behaviour) |
| ``patients`` | the patient pool |
| ``reference`` | reference data (VBP batches, prices, budgets) and ``reference/*.csv`` |
| ``purchase`` / ``usage`` / ``claim`` / ``fees`` | one module per extract (``fees``: fee_detail, injected violations, audit rules) |
| ``audit`` | the rule library and an exact evaluator of the smart-audit rules (the audit ground truth) |
| ``defects`` | injected row and file-level defects |
| ``writers`` | one extract file being written (CSV / gzip / xlsx) |
| ``formats`` / ``workdays`` / ``common`` | per-hospital file formats, working days, small helpers |
| ``truth`` | ground truth and summary under ``_generator/`` |
"""

from .city import generate_city
from .defects import DEFECT_CLASSES, FILE_DEFECT_CLASSES, ROW_DEFECT_CLASSES
from .formats import FileFormat
from .truth import GENERATOR_VERSION, CitySummary
from .world import (
    BRANDS,
    CATEGORIES,
    CHRONIC_DIAGNOSES,
    CITY_NAME,
    COUNTIES,
    COUNTY_CODES,
    DEPARTMENTS,
    INPATIENT_DIAGNOSES,
    JOINT_PREFIX,
    LEVEL_PROFILE,
    LEVELS,
    LONG_VARIANTS,
    MATERNITY_INPATIENT,
    MATERNITY_OUTPATIENT,
    MAX_YEAR,
    OUTPATIENT_DIAGNOSES,
    PRODUCT_BY_KEY,
    PRODUCTS,
    REST_FACTOR,
    STENT_PREFIX,
    SUPPLIER_USCC,
    SURGERY_DIAGNOSES,
    TRAUMA_DIAGNOSES,
    Product,
    estimate_rows_per_day,
    volume_for_rows,
)

__all__ = [
    "BRANDS",
    "CATEGORIES",
    "CHRONIC_DIAGNOSES",
    "CITY_NAME",
    "COUNTIES",
    "COUNTY_CODES",
    "DEFECT_CLASSES",
    "DEPARTMENTS",
    "FILE_DEFECT_CLASSES",
    "GENERATOR_VERSION",
    "INPATIENT_DIAGNOSES",
    "JOINT_PREFIX",
    "LEVELS",
    "LEVEL_PROFILE",
    "LONG_VARIANTS",
    "MATERNITY_INPATIENT",
    "MATERNITY_OUTPATIENT",
    "MAX_YEAR",
    "OUTPATIENT_DIAGNOSES",
    "PRODUCTS",
    "PRODUCT_BY_KEY",
    "REST_FACTOR",
    "ROW_DEFECT_CLASSES",
    "STENT_PREFIX",
    "SUPPLIER_USCC",
    "SURGERY_DIAGNOSES",
    "TRAUMA_DIAGNOSES",
    "CitySummary",
    "FileFormat",
    "Product",
    "estimate_rows_per_day",
    "generate_city",
    "volume_for_rows",
]
