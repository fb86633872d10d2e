"""`yibao run` / `yibao reports` on the terminal: one line per step and the night's summary; Airflow's
whole output in a log file whose path is printed; `-v` shows it all; a failure names the step, its
first error lines and the log file. Real DAG runs on the worked example (docs/worked-example.md)."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("e2e")

FIXTURES = Path(__file__).parent / "fixtures"
HOSP = "H41070200001"
NIGHT_STEPS = ["load", "validate_raw", "transform", "validate_marts", "publish"]
STEP_LINE = re.compile(r"^  (\S+)\s+(success|failed|upstream_failed)\s+(\d+\.\ds|-)(\s|$)")


def _budgets(landing: Path, weights: list[str]) -> None:
    with open(landing / "reference" / "fund_budgets.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["year", "hospital_code", "insurance_type", "annual_budget"] + [f"m{m:02d}_weight" for m in range(1, 13)])
        w.writerow(["2025", HOSP, "310", "1200000.00"] + weights)


def _cli(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    from yibao.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def _log_path(lines: list[str], prefix: str) -> Path:
    found = [m.group(1) for line in lines for m in [re.search(prefix + r"\s*(\S+\.log)", line)] if m]
    assert found, lines
    return Path(found[-1])


@pytest.fixture(scope="module")
def landing(module_warehouse, tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("we", FIXTURES / "make_worked_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = tmp_path_factory.mktemp("cli") / "landing"
    mod.main(path)
    return path


def test_run_prints_one_line_per_step_and_the_summary(landing, capsys):
    code, out, err = _cli(capsys, "run", "--landing", str(landing), "--through", "2025-01-31")
    assert code == 0, err
    steps = [STEP_LINE.match(line) for line in out]
    assert [m.group(1) for m in steps if m] == NIGHT_STEPS, out
    assert all(m.group(2) == "success" for m in steps if m)
    load_line = next(line for line in out if line.startswith("  load "))
    # 11 rows of the worked example's files and the 15,113 rules of the packaged national library
    assert f"{11 + 15_113:,} rows loaded" in load_line and "0 quarantined" in load_line, load_line
    assert re.search(r"\d+ models, \d+ tests, \d+ warnings", next(line for line in out if line.startswith("  transform ")))
    assert re.search(r"0 errors, \d+ warnings", next(line for line in out if line.startswith("  validate_marts ")))
    assert any(line.startswith("=== night through 2025-01-31") for line in out), out
    assert "Published marts as of 2025-01-31:" in out
    assert any("marts.fct_settlement_monthly" in line for line in out)
    # none of Airflow's own lines on the terminal, and the whole thing fits on a screen
    assert not [line for line in out if "[info" in line or "[DAG TEST]" in line], out
    assert len(out) < 45, "\n".join(out)
    log = _log_path(out, "Airflow log:")
    text = log.read_text(encoding="utf-8")
    assert "[DAG TEST] end task task_id=publish" in text and "Marking run" in text


def test_failed_night_names_the_step_the_error_and_the_log(landing, capsys):
    _budgets(landing, ["0.08"] * 12)  # weights summing to 0.96: an error-level reference defect
    code, out, err = _cli(capsys, "run", "--landing", str(landing), "--through", "2025-02-28")
    assert code == 1
    states = {m.group(1): m.group(2) for m in map(STEP_LINE.match, out) if m}
    assert states == {"load": "success", "validate_raw": "failed", "transform": "upstream_failed",
                      "validate_marts": "upstream_failed", "publish": "upstream_failed"}, out
    text = "\n".join(err)
    assert "failed at validate_raw" in text, text
    assert "QualityGateFailed" in text and "fund_budget_weights_sum_to_one" in text, text
    log = _log_path(err, "full log:")
    assert "Traceback (most recent call last)" in log.read_text(encoding="utf-8")
    assert len(out) + len(err) < 30


def test_verbose_run_shows_airflow_and_reports_print_their_steps(landing, capsys):
    _budgets(landing, ["0.08"] * 11 + ["0.12"])  # corrected: the night publishes
    # the failed night a moment ago walked every folder (its last full walk was 28 nights before);
    # this one would list only the late-file window's folders, but --full-walk lists them all
    code, out, err = _cli(capsys, "run", "-v", "--full-walk", "--landing", str(landing), "--through", "2025-02-28")
    assert code == 0, err
    assert any("[DAG TEST] end task task_id=publish" in line for line in out)
    assert len(out) > 100  # everything Airflow said
    assert [m.group(1) for m in map(STEP_LINE.match, out) if m] == NIGHT_STEPS
    assert "Published marts as of 2025-02-28:" in out
    from yibao import db

    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("select through::text, walked_from from raw.landing_walk order by walked_at")
        assert cur.fetchall() == [("2025-01-31", None), ("2025-02-28", None), ("2025-02-28", None)]

    code, out, err = _cli(capsys, "reports", "--month", "2025-01")
    assert code == 0, err
    steps = [m.group(1) for m in map(STEP_LINE.match, out) if m]
    assert steps == ["months_to_render", "render[0]"], out
    assert any("months: 2025-01" in line for line in out), out
    assert any(re.search(r"render\[0\].*2025-01: \d+ files, 1 hospitals", line) for line in out), out
    assert len(out) < 10, out
    assert _log_path(out, r"Airflow log:").exists()
