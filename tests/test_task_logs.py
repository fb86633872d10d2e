"""What an operator reads in the task logs: no false ERROR line on a successful dbt task, dbt's
per-node summary, and no per-PDF progress chatter from WeasyPrint and fontTools."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

# An Airflow task process ends with os._exit: no garbage collection, so any multiprocessing lock
# still alive is reported by the resource tracker on stderr (Airflow logs stderr as ERROR).
_DBT_IN_A_TASK = textwrap.dedent(
    """
    import datetime as dt, os, sys
    from yibao.transform import run_dbt
    run = run_dbt(["build", "--select", "code_insurance_types", "code_medical_categories",
                   "--indirect-selection", "cautious"],
                  as_of=dt.date(2025, 1, 31), marts_schema="marts_build")
    print(run.summary_text(), flush=True)
    sys.stderr.flush()
    os._exit(0)
    """
)


def test_dbt_leaves_no_leaked_semaphore_and_summarises(warehouse):
    proc = subprocess.run([sys.executable, "-c", _DBT_IN_A_TASK], capture_output=True, text=True,
                          env=dict(os.environ), timeout=600)
    assert proc.returncode == 0, proc.stderr
    # the tracker process writes its warning after the task process is gone: it has exited by now,
    # since subprocess.run waits for the pipes to close and the tracker holds stderr open
    assert "leaked semaphore" not in proc.stderr, proc.stderr
    summary = proc.stdout.strip().splitlines()
    assert summary[0].startswith("dbt build: "), proc.stdout
    assert "2 seeds (success 2)" in summary[0], proc.stdout
    assert "tests (pass" in summary[0], proc.stdout
    assert summary[1].startswith("  slowest: ") and "code_insurance_types" in summary[1], proc.stdout


def test_dbt_summary_lists_warnings_and_slowest():
    from yibao.transform import DbtRun, NodeResult

    run = DbtRun(["build", "--exclude", "test_type:unit"], seconds=12.34, nodes=[
        NodeResult("fct_a", "model", "success", 3.0, 120),
        NodeResult("fct_b", "model", "success", 5.0, None),
        NodeResult("not_null_fct_a_x", "test", "pass", 0.1),
        NodeResult("assert_budget_rows", "test", "warn", 0.2, None, "Got 3 results, configured to warn if != 0\nmore"),
    ])
    text = run.summary_text().splitlines()
    assert text[0] == "dbt build: 2 models (success 2); 2 tests (pass 1, warn 1) in 12.3 s"
    assert text[1] == "  slowest: fct_b 5.0s, fct_a 3.0s (120 rows)"
    assert text[2] == "  WARN assert_budget_rows: Got 3 results, configured to warn if != 0"
    assert [n.name for n in run.warnings] == ["assert_budget_rows"]


def test_pdf_rendering_logs_no_progress_at_info(tmp_path, caplog):
    from yibao.reports.pdf import write_pdf

    caplog.set_level(logging.INFO)
    pages = write_pdf("<html><body><h1>医保基金月度结算单</h1><p>测试</p></body></html>", tmp_path / "x.pdf")
    assert pages == 1 and (tmp_path / "x.pdf").stat().st_size > 0
    chatty = [r for r in caplog.records if r.name.startswith(("weasyprint", "fontTools")) and r.levelno < logging.WARNING]
    assert not chatty, [f"{r.name}: {r.getMessage()}" for r in chatty]
