"""Data-quality gates of a night, run with Great Expectations (GX Core 1.x).

Two stages, both validated by the file-based GX project in ``expectations/`` (suites are reviewed
JSON there; see ``expectations/README.md`` for what each suite checks):

* ``validate_night`` (stage ``raw``): the night's batch only (raw rows whose load_id is one of the
  night's loads), right after the loader: coding re-checks, data quality, deliveries, reference
  data, and the quarantine report (one named check per loader reason code).
* ``validate_marts`` (stage ``marts``): the marts build schema (e.g. ``marts_build``) before it is
  published: budgets and quotas, rates within bounds, one row per stated grain.

Every check is an ``UnexpectedRowsExpectation`` whose SQL runs inside PostgreSQL and returns one
row per failing hospital (``hospital_code``, ``failed``, ``detail``). Results are written to
``audit.dq_results`` (re-running a run_id and stage replaces its rows) and rendered as GX Data Docs
under ``expectations/uncommitted/data_docs/local_site/index.html``. Checks that judge one row at a
time carry their predicate in ``meta.row_check``: they are evaluated together, in one scan of each
extract's batch, before the checkpoint runs (``_row_checks``), and their expectations read the
failing groups from ``audit.dq_night_row_findings`` (GX runs every expectation's query twice, for
the row count and for the rows: one query per row check read the batch twice per check).

How a run is scoped: the run is registered in ``audit.dq_runs`` (load ids, or mart schema and
as-of date); the GX assets are views over it (``audit.dq_night_*``, ``audit.dq_marts_run``) that
show the run named by the session setting ``yibao.dq_run_id``, which GX's connection carries
(libpq ``options``). Mart tables are named without a schema in the suites: the marts stage
connects with ``search_path`` set to the schema validated.

GX is imported lazily (it takes seconds and logs a lot); nothing here runs at import time.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .config import PROJECT_ROOT

GX_ROOT = PROJECT_ROOT / "expectations"
DATA_DOCS_INDEX = GX_ROOT / "uncommitted" / "data_docs" / "local_site" / "index.html"
URL_VARIABLE = "YIBAO_GX_URL"  # great_expectations.yml: connection_string: ${YIBAO_GX_URL}
CHECKPOINTS = {"raw": "raw_night", "marts": "marts_candidate"}
MART_TABLES = (
    "fct_usage_pricing",
    "fct_procurement_compliance",
    "fct_supplier_payment",
    "fct_settlement_monthly",
    "fct_settlement_annual",
    "fct_budget_consumption",
    "fct_abnormal_use_alerts",
    "fct_evaluation_quarterly",
    "fct_settlement_deduction",
    "fct_audit_findings",
    "fct_exam_positive_rate_monthly",
    "fct_audit_summary_monthly",
)
# Mart tables whose checks read only the rows written since the last publish (their _batch_at
# after audit.publish_log's latest published_at; every row before the first publish): what was
# published passed those checks, and a row that fails keeps failing until fixed, since nothing is
# published meanwhile. One night's rows, not the history's: the findings (docs/scale-out.md §7.3)
# and the usage lines (counting every line of fct_usage_pricing for the evaluated figure read the
# whole mart each night, 25.5k pages on the 30 M-claim year, §6). The suites' queries filter with
# WRITTEN_SINCE_PUBLISH verbatim (tests/test_quality.py checks it), and the gate counts their
# evaluated rows with it.
MART_TABLES_CHECKED_SINCE_PUBLISH = ("fct_audit_findings", "fct_usage_pricing")
WRITTEN_SINCE_PUBLISH = (
    "_batch_at > coalesce((select max(published_at) from audit.publish_log), '-infinity'::timestamptz)"
    " and _batch_at < 'infinity'::timestamptz"
)
KEEP_RESULTS_DAYS = 35  # GX validation results and their Data Docs pages (audit.dq_results keeps all)
SEVERITIES = {"critical": "error", "warning": "warning", "info": "warning"}
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

log = logging.getLogger(__name__)


class QualityGateFailed(RuntimeError):
    """Raised by QualityReport.raise_if_errors: one line per failed error-level check."""


@dataclass(frozen=True)
class CheckResult:
    suite: str
    check: str
    severity: str  # 'error' | 'warning'
    hospital_code: str | None
    evaluated: int
    failed: int
    detail: str | None = None

    @property
    def name(self) -> str:
        return f"{self.suite}.{self.check}"

    def line(self) -> str:
        where = f"hospital {self.hospital_code}" if self.hospital_code else "all hospitals"
        text = f"{self.name} [{where}]: {self.failed} of {self.evaluated} failed"
        return f"{text} — {self.detail}" if self.detail else text


@dataclass
class QualityReport:
    results: list[CheckResult] = field(default_factory=list)
    stage: str = "raw"
    run_id: str = ""
    night_date: date | None = None
    seconds: float = 0.0
    data_docs: Path | None = None

    @property
    def errors(self) -> list[CheckResult]:
        """Failed error-level results (one per check and hospital)."""
        return [r for r in self.results if r.severity == "error" and r.failed > 0]

    @property
    def warnings(self) -> list[CheckResult]:
        """Failed warning-level results (one per check and hospital)."""
        return [r for r in self.results if r.severity == "warning" and r.failed > 0]

    @property
    def checks(self) -> int:
        return len({(r.suite, r.check) for r in self.results})

    def _title(self) -> str:
        when = "as of" if self.stage == "marts" else "night"
        return f"stage {self.stage}, {when} {self.night_date}, run {self.run_id}"

    def raise_if_errors(self) -> None:
        errors = self.errors
        if errors:
            lines = [f"{len(errors)} error-level data-quality result(s) failed ({self._title()}):"]
            lines += [r.line() for r in errors]
            if self.data_docs:
                lines.append(f"Data Docs: {self.data_docs}")
            raise QualityGateFailed("\n".join(lines))

    def summary_text(self) -> str:
        errors, warns = self.errors, self.warnings
        lines = [
            (
                f"GX {self._title()}: {self.checks} checks, {len(errors)} error result(s), "
                f"{len(warns)} warning result(s) in {self.seconds:.1f} s"
            )
        ]
        lines += [f"  ERROR   {r.line()}" for r in errors]
        lines += [f"  WARNING {r.line()}" for r in warns]
        if self.data_docs:
            lines.append(f"  Data Docs: {self.data_docs}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------- public API


def validate_night(url: str, business_date: date, load_ids: list[int], run_id: str) -> QualityReport:
    """Validate the night's batch (stage ``raw``): the raw rows, ledger rows and quarantine rows
    of ``load_ids``, plus deliveries and reference data for ``business_date``. Writes the results
    to audit.dq_results (replacing this run's raw results) and updates the Data Docs."""
    started = time.monotonic()
    ids = sorted({int(i) for i in load_ids})
    with _connect(url) as conn:
        _register_run(conn, run_id, "raw", business_date, load_ids=ids)
        populations = _populations(conn, _NIGHT_POPULATIONS, {"run_id": run_id})
        _row_checks(conn, run_id, CHECKPOINTS["raw"])
    gx_results = _run_checkpoint(_gx_url(url, run_id), CHECKPOINTS["raw"], run_id, "raw")
    report = _report(gx_results, populations, "raw", run_id, business_date)
    report.seconds = time.monotonic() - started
    with _connect(url) as conn:
        _store(conn, report)
    log.debug("%s", report.summary_text())
    return report


def validate_marts(url: str, schema: str, as_of: date, run_id: str) -> QualityReport:
    """Validate the mart tables in ``schema`` (stage ``marts``, e.g. ``marts_build``) as of
    ``as_of`` before they are published. Writes the results to audit.dq_results (replacing this
    run's marts results) and updates the Data Docs."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r}: expected a lower-case SQL identifier such as 'marts_build'")
    started = time.monotonic()
    with _connect(url) as conn:
        _register_run(conn, run_id, "marts", as_of, schema=schema)
        populations = _populations(conn, _mart_populations(conn, schema), {})
    gx_results = _run_checkpoint(_gx_url(url, run_id, search_path=schema), CHECKPOINTS["marts"], run_id, "marts")
    report = _report(gx_results, populations, "marts", run_id, as_of)
    report.seconds = time.monotonic() - started
    with _connect(url) as conn:
        _store(conn, report)
    log.debug("%s", report.summary_text())
    return report


# ----------------------------------------------------------------------------------- database


@contextlib.contextmanager
def _connect(url: str) -> Iterator[Any]:
    import psycopg2

    conn = psycopg2.connect(_libpq_url(url), application_name="yibao-quality")
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def _libpq_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


def _gx_url(url: str, run_id: str, search_path: str | None = None) -> str:
    """SQLAlchemy URL for GX (psycopg2 driver). Its sessions carry the run (yibao.dq_run_id, read
    by the audit.dq_* views) and, for the marts stage, search_path = the schema validated, so the
    suites need not know which schema that is."""
    from sqlalchemy.engine import make_url

    u = make_url(_libpq_url(url)).set(drivername="postgresql+psycopg2")
    query = dict(u.query)
    query["application_name"] = "yibao-quality-gx"
    options = [query.get("options", ""), f"-c yibao.dq_run_id={_libpq_option(run_id)}"]
    if search_path:
        options.append(f"-c search_path={search_path}")
    query["options"] = " ".join(o for o in options if o)
    return u.set(query=query).render_as_string(hide_password=False)


def _libpq_option(value: str) -> str:
    """Escape a value for libpq's options string (spaces and backslashes are backslash-escaped)."""
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def _register_run(conn, run_id: str, stage: str, night: date, load_ids: list[int] | None = None,
                  schema: str | None = None) -> None:
    ids = load_ids or []
    with conn.cursor() as cur:
        cur.execute(
            """
            insert into audit.dq_runs (run_id, stage, night_date, min_load_id, max_load_id, schema_name)
            values (%s, %s, %s, %s, %s, %s)
            on conflict (run_id, stage) do update set
                night_date = excluded.night_date, min_load_id = excluded.min_load_id,
                max_load_id = excluded.max_load_id, schema_name = excluded.schema_name, started_at = now()
            """,
            (run_id, stage, night, min(ids, default=None), max(ids, default=None), schema),
        )
        if stage == "raw":
            cur.execute("delete from audit.dq_run_loads where run_id = %s", (run_id,))
            cur.execute(
                "insert into audit.dq_run_loads (run_id, load_id) select %s, unnest(%s::bigint[])", (run_id, ids)
            )


def _suites(checkpoint: str) -> list[dict]:
    """The expectation suites (JSON, as GX reads them) of a checkpoint."""
    import json

    cp = json.loads((GX_ROOT / "checkpoints" / f"{checkpoint}.json").read_text(encoding="utf-8"))
    return [json.loads((GX_ROOT / "expectations" / f"{vd['name']}.json").read_text(encoding="utf-8"))
            for vd in cp["validation_definitions"]]


def row_check_statements(checkpoint: str, run_id_param: str = "%(run_id)s") -> dict[str, tuple[str, int]]:
    """One INSERT per GX asset that evaluates all its row checks in a single scan of the batch.

    A row check is an expectation with ``meta.row_check`` = {where, example, order_by}: the row
    fails when ``where`` is true (as in ``select ... from batch where <where>``); the failing rows
    are counted per hospital, with up to three examples (``example`` ordered by ``order_by``), as
    its own query did before it was folded in here. Returns {asset: (sql, number of checks)}.
    """
    by_asset: dict[str, list[tuple[str, dict]]] = {}
    for suite in _suites(checkpoint):
        for e in suite["expectations"]:
            rc = (e.get("meta") or {}).get("row_check")
            if rc:
                by_asset.setdefault(suite["meta"]["asset"], []).append((f"{suite['name']}.{e['meta']['check']}", rc))
    out = {}
    for asset, checks in by_asset.items():
        if not _SCHEMA_NAME.match(asset):
            raise ValueError(f"GX asset name {asset!r} is not an identifier")
        flags = ",\n       ".join(f"({rc['where']}) as _f{i}" for i, (_, rc) in enumerate(checks))
        any_failed = " or ".join(f"b._f{i}" for i in range(len(checks)))
        values = ",\n    ".join(
            f"({_quote(name)}, b._f{i}, ({rc['example']})::text, ({rc['order_by']})::text)"
            for i, (name, rc) in enumerate(checks)
        )
        sql = (
            "insert into audit.dq_row_findings (run_id, check_name, hospital_code, failed, detail)\n"
            f"select {run_id_param}, c.check_name, b.hospital_code, count(*),\n"
            "       'e.g. ' || array_to_string((array_agg(c.example order by c.sort_key))[1:3], ', ')\n"
            # offset 0: the flags are computed once per row, the examples only for failing rows
            f"from (select t.*,\n       {flags}\n      from audit.dq_{asset} as t offset 0) as b\n"
            f"cross join lateral (values\n    {values}\n) as c (check_name, failed, example, sort_key)\n"
            f"where ({any_failed}) and c.failed\n"
            "group by c.check_name, b.hospital_code"
        )
        out[asset] = (sql, len(checks))
    return out


def _row_checks(conn, run_id: str, checkpoint: str) -> None:
    """Compute the row checks of the run (one scan per asset) into audit.dq_row_findings."""
    with conn.cursor() as cur:
        cur.execute("select set_config('yibao.dq_run_id', %s, true)", (run_id,))
        cur.execute("delete from audit.dq_row_findings where run_id = %s", (run_id,))
        cur.execute("delete from audit.dq_row_checks_done where run_id = %s", (run_id,))
        for asset, (sql, n) in row_check_statements(checkpoint).items():
            started = time.monotonic()
            cur.execute(sql, {"run_id": run_id})
            cur.execute(
                "insert into audit.dq_row_checks_done (run_id, asset, checks, seconds) values (%s, %s, %s, %s)",
                (run_id, asset, n, round(time.monotonic() - started, 3)),
            )


# What a check "evaluated" (meta.evaluates of each expectation): rows, files or deliveries per
# hospital (hospital_code null for reference data). One round trip for all of them.
_LATEST = "where load_id = (select max(load_id) from raw.{t})"
_NIGHT_POPULATIONS = {
    "purchase": "select hospital_code, count(*) from audit.dq_night_purchase where run_id = %(run_id)s group by 1",
    "usage": "select hospital_code, count(*) from audit.dq_night_usage where run_id = %(run_id)s group by 1",
    "claim": "select hospital_code, count(*) from audit.dq_night_claim where run_id = %(run_id)s group by 1",
    "fee_detail": "select hospital_code, count(*) from audit.dq_night_fee_detail where run_id = %(run_id)s group by 1",
    "audit_rules": "select null::text, count(*) from audit.dq_night_audit_rules where run_id = %(run_id)s",
    "files": "select hospital_code, count(*) from audit.dq_night_loads where run_id = %(run_id)s group by 1",
    "rows_read": "select hospital_code, sum(rows_read) from audit.dq_night_loads where run_id = %(run_id)s"
    " and file_kind in ('purchase', 'usage', 'claim', 'fee_detail') group by 1",
    "id_rows_read": "select hospital_code, sum(rows_read) from audit.dq_night_loads where run_id = %(run_id)s"
    " and file_kind in ('usage', 'claim', 'fee_detail') group by 1",
    "deliveries": "select hospital_code, 3 from raw.ref_hospitals " + _LATEST.format(t="ref_hospitals")
    + " and hospital_code is not null group by 1",
    # three extracts per registered hospital and business date the run loads (and its as-of date)
    "delivery_nights": "select h.hospital_code, 3 * count(distinct d.business_date) from raw.ref_hospitals h"
    " cross join (select night_date as business_date from audit.dq_night where run_id = %(run_id)s"
    " union select business_date from audit.dq_night_loads where run_id = %(run_id)s"
    " and file_kind in ('purchase', 'usage', 'claim') and business_date is not null) as d"
    " where h.load_id = (select max(load_id) from raw.ref_hospitals) and h.hospital_code is not null group by 1",
    # fee_detail (optional): the nights of the run after a hospital's first fee_detail delivery;
    # each hospital's first delivery is one probe of the ledger's partial index
    # load_ledger_fee_detail_idx, hospital after hospital (the ledger grows every night)
    "fee_detail_nights": "with recursive f (hospital_code, first_date) as ("
    "(select hospital_code, business_date from raw.load_ledger where file_kind = 'fee_detail'"
    " and status = 'loaded' and business_date is not null order by hospital_code, business_date limit 1)"
    " union all select n.hospital_code, n.business_date from f cross join lateral"
    " (select hospital_code, business_date from raw.load_ledger where file_kind = 'fee_detail'"
    " and status = 'loaded' and business_date is not null and hospital_code > f.hospital_code"
    " order by hospital_code, business_date limit 1) as n)"
    " select f.hospital_code, count(distinct d.business_date) from f"
    " join (select night_date as business_date from audit.dq_night where run_id = %(run_id)s"
    " union select business_date from audit.dq_night_loads where run_id = %(run_id)s"
    " and file_kind in ('purchase', 'usage', 'claim', 'fee_detail') and business_date is not null) as d"
    " on d.business_date > f.first_date group by 1",
    **{
        f"ref_{name}": f"select null::text, count(*) from raw.ref_{name} " + _LATEST.format(t=f"ref_{name}")
        for name in ("hospitals", "consumable_catalog", "vbp_batches", "vbp_agreed_volumes", "fund_budgets",
                     "settlement_params")
    },
}


def _mart_populations(conn, schema: str) -> dict[str, str]:
    """What the marts checks evaluate: ``mart:<table>``, every row of a mart table, and for the
    tables of MART_TABLES_CHECKED_SINCE_PUBLISH ``mart_written:<table>``, the rows written since the
    last publish (what their checks read)."""
    from psycopg2 import sql

    out = {}
    with conn.cursor() as cur:
        for table in MART_TABLES:
            cur.execute(
                "select exists (select 1 from pg_attribute"
                " where attrelid = to_regclass(%s) and attname = 'hospital_code')",
                (f"{schema}.{table}",),
            )
            if not cur.fetchone()[0]:
                continue
            relation = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            if table in MART_TABLES_CHECKED_SINCE_PUBLISH:
                out[f"mart_written:{table}"] = (
                    sql.SQL("select hospital_code, count(*) from {} where " + WRITTEN_SINCE_PUBLISH + " group by 1")
                    .format(relation)
                    .as_string(conn)
                )
            else:
                out[f"mart:{table}"] = (
                    sql.SQL("select hospital_code, count(*) from {} group by 1").format(relation).as_string(conn)
                )
    return out


def _populations(conn, queries: dict[str, str], params: dict) -> dict[tuple[str, str | None], int]:
    if not queries:
        return {}
    union = " union all ".join(
        f"select {_quote(name)}::text, h::text, n::bigint from ({query}) as p{i} (h, n)"
        for i, (name, query) in enumerate(queries.items())
    )
    with conn.cursor() as cur:
        if "run_id" in params:  # the audit.dq_night_* views show the run named by this setting
            cur.execute("select set_config('yibao.dq_run_id', %s, true)", (params["run_id"],))
        cur.execute(union, params or None)
        out: dict[tuple[str, str | None], int] = {}
        for name, hospital, n in cur.fetchall():
            out[(name, hospital)] = out.get((name, hospital), 0) + int(n or 0)
    return out


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _store(conn, report: QualityReport) -> None:
    from psycopg2.extras import execute_values

    with conn.cursor() as cur:
        cur.execute("delete from audit.dq_results where run_id = %s and stage = %s", (report.run_id, report.stage))
        execute_values(
            cur,
            "insert into audit.dq_results (night_date, run_id, stage, suite, check_name, severity,"
            " hospital_code, evaluated, failed, detail) values %s",
            [
                (report.night_date, report.run_id, report.stage, r.suite, r.check, r.severity,
                 r.hospital_code, r.evaluated, r.failed, r.detail)
                for r in report.results
            ],
            page_size=1000,
        )


# ----------------------------------------------------------------------------------- GX


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """GX logs and warns a lot at import and run time: keep the task log to our own summary."""
    loggers = [logging.getLogger(n) for n in ("great_expectations", "great_expectations.core", "posthog")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _run_checkpoint(gx_url: str, checkpoint: str, run_id: str, stage: str):
    with _quiet():
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        context = gx.get_context(mode="file", context_root_dir=str(GX_ROOT),
                                 runtime_environment={URL_VARIABLE: gx_url})
        result = context.checkpoints.get(checkpoint).run(run_id=RunIdentifier(run_name=f"{stage}-{run_id}"))
        # Data Docs once per run (a checkpoint action would rebuild the site once per suite):
        # this run's validation pages, suite pages that are missing or older than their JSON, index.
        _prune_uncommitted()
        resources: list = list(result.run_results.keys())
        for key in result.run_results:
            name = key.expectation_suite_identifier.name
            page = DATA_DOCS_INDEX.parent / "expectations" / f"{name}.html"
            source = GX_ROOT / "expectations" / f"{name}.json"
            if not page.exists() or page.stat().st_mtime < source.stat().st_mtime:
                resources.append(ExpectationSuiteIdentifier(name=name))
        context.build_data_docs(resource_identifiers=resources)
    return result


def _prune_uncommitted(keep_days: int = KEEP_RESULTS_DAYS) -> None:
    """Drop stored validation results and their Data Docs pages older than keep_days (the index
    page reads every stored result it lists, so an unbounded history slows every night down)."""
    import shutil

    cutoff = time.time() - keep_days * 86400
    for base in (GX_ROOT / "uncommitted" / "validations", DATA_DOCS_INDEX.parent / "validations"):
        if not base.is_dir():
            continue
        for suite_dir in base.iterdir():
            if not suite_dir.is_dir():
                continue
            for run_dir in suite_dir.iterdir():
                if run_dir.is_dir() and run_dir.stat().st_mtime < cutoff:
                    shutil.rmtree(run_dir, ignore_errors=True)


def _report(checkpoint_result, populations: dict, stage: str, run_id: str, night: date) -> QualityReport:
    results: list[CheckResult] = []
    for suite_result in checkpoint_result.run_results.values():
        suite = suite_result.suite_name
        for r in suite_result.results:
            config = r.expectation_config
            meta = config.meta or {}
            check = meta.get("check") or config.id
            severity = SEVERITIES.get(str(getattr(config.severity, "value", config.severity)), "error")
            pop = meta.get("evaluates", "")
            total = sum(n for (name, _), n in populations.items() if name == pop)
            message = _exception_message(r.exception_info)
            if message is not None:
                # a check that cannot run cannot vouch for the data: an error whatever its severity
                results.append(CheckResult(suite, check, "error", None, total, 1, f"check could not run: {message}"))
                continue
            if r.success:
                results.append(CheckResult(suite, check, severity, None, total, 0, None))
                continue
            rows = ((r.result or {}).get("details") or {}).get("unexpected_rows") or []
            if not rows:
                results.append(CheckResult(suite, check, "error", None, total, 1,
                                           "check failed without saying where (no unexpected rows returned)"))
                continue
            for row in rows:
                hospital = row.get("hospital_code")
                evaluated = populations.get((pop, hospital), 0) if hospital else total
                failed = int(row.get("failed") or 0)
                detail = row.get("detail")
                results.append(CheckResult(suite, check, severity, hospital, max(evaluated, failed), failed,
                                           None if detail is None else str(detail)[:2000]))
            shown = len(rows)
            observed = int((r.result or {}).get("observed_value") or 0)
            if observed > shown:
                results.append(CheckResult(suite, check, severity, None, total, observed - shown,
                                           f"{observed - shown} more failing group(s) not listed by GX"))
    return QualityReport(results=results, stage=stage, run_id=run_id, night_date=night,
                         data_docs=DATA_DOCS_INDEX if DATA_DOCS_INDEX.exists() else None)


def _exception_message(info) -> str | None:
    """The first line of the error a check raised, if it raised one. GX reports an expectation's
    own error as {raised_exception, exception_message, ...} and a failed metric (e.g. SQL that does
    not run) as such a dict per metric id."""
    if not isinstance(info, dict):
        return None
    candidates = [info] + [v for v in info.values() if isinstance(v, dict)]
    for c in candidates:
        if c.get("raised_exception"):
            text = str(c.get("exception_message") or "unknown error").strip()
            return text.splitlines()[0] if text else "unknown error"
    return None
