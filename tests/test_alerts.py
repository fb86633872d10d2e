"""Failure notification: a real failed night (an error-level quality gate) sends one message naming the
night, the step and the first failing check to a webhook (a local HTTP server), and logs it."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("e2e")

FIXTURES = Path(__file__).parent / "fixtures"
HOSP = "H41070200001"


class _Receiver:
    """An HTTP server on 127.0.0.1 (a free port) recording every POST: (path, JSON body)."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, self.headers.get("Content-Type"), json.loads(body.decode("utf-8"))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_failed_quality_gate_posts_one_message_to_the_webhook(module_warehouse, tmp_path, monkeypatch):
    from yibao.orchestrate import DagRunFailed, run_dag

    spec = importlib.util.spec_from_file_location("we", FIXTURES / "make_worked_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    landing = tmp_path / "landing"
    mod.main(landing)
    with open(landing / "reference" / "fund_budgets.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)  # monthly weights summing to 0.96: an error-level reference defect
        w.writerow(["year", "hospital_code", "insurance_type", "annual_budget"] + [f"m{m:02d}_weight" for m in range(1, 13)])
        w.writerow(["2025", HOSP, "310", "1200000.00"] + ["0.08"] * 12)

    with _Receiver() as hook:
        # the Airflow Variable (here from the environment, as a deployment may set it) wins over YIBAO_ALERT_WEBHOOK
        monkeypatch.setenv("AIRFLOW_VAR_YIBAO_ALERT_WEBHOOK", hook.url + "/from-variable")
        monkeypatch.setenv("YIBAO_ALERT_WEBHOOK", hook.url + "/from-env")
        through = dt.date(2025, 1, 31)
        with pytest.raises(DagRunFailed) as failed:
            run_dag("nightly_ingest", through, {"landing": str(landing), "through": through.isoformat()},
                    landing=landing)

    assert len(hook.received) == 1, hook.received  # one message: the downstream tasks never ran
    path, content_type, body = hook.received[0]
    assert path == "/from-variable" and content_type.startswith("application/json")
    assert body["night"] == "2025-01-31" and body["task_id"] == "validate_raw" and body["dag_id"] == "nightly_ingest"
    assert body["exception_type"] == "QualityGateFailed"
    assert body["first_failure"].startswith("raw_reference.fund_budget_weights_sum_to_one [hospital H41070200001]")
    text = body["text"]
    assert "night through 2025-01-31" in text and "step validate_raw" in text
    assert "fund_budget_weights_sum_to_one" in text
    # logged too: in the run's log and among the first error lines the CLI prints
    log_text = failed.value.result.log_file.read_text(encoding="utf-8")
    assert "yibao nightly_ingest: night through 2025-01-31 FAILED at step validate_raw" in log_text
    assert any("FAILED at step validate_raw" in line for line in failed.value.result.error_lines)


def test_callback_without_airflow_uses_the_environment_and_never_raises(monkeypatch, caplog):
    from yibao import alerts
    from yibao.quality import QualityGateFailed

    error = QualityGateFailed("2 error-level data-quality result(s) failed (stage marts, as of 2025-03-31, run r1):\n"
                              "marts_budget.quotas_sum_to_budget [hospital H41070200001]: 1 of 1 failed\n"
                              "marts_budget.rates_in_range [all hospitals]: 3 of 40 failed")
    context = {"params": {"through": "2025-03-31"}, "run_id": "r1", "exception": error,
               "ti": type("TI", (), {"dag_id": "nightly_ingest", "task_id": "validate_marts", "map_index": -1,
                                     "try_number": 3})()}
    caplog.set_level(logging.INFO, logger="yibao.alerts")
    with _Receiver() as hook:
        monkeypatch.setenv("YIBAO_ALERT_WEBHOOK", hook.url + "/hook")
        alerts.notify_failure(context)
    assert [(p, b["text"]) for p, _, b in hook.received] == [(
        "/hook",
        "yibao nightly_ingest: night through 2025-03-31 FAILED at step validate_marts — "
        "marts_budget.quotas_sum_to_budget [hospital H41070200001]: 1 of 1 failed (run r1, try 3)",
    )]
    assert any(r.levelno == logging.ERROR and "FAILED at step validate_marts" in r.getMessage() for r in caplog.records)

    # nobody listening: a warning, and the callback returns normally
    monkeypatch.setenv("YIBAO_ALERT_WEBHOOK", hook.url + "/gone")
    caplog.clear()
    alerts.notify_failure(context)
    assert any(r.levelno == logging.WARNING and "could not be sent" in r.getMessage() for r in caplog.records)

    # nothing configured: only the log line
    monkeypatch.delenv("YIBAO_ALERT_WEBHOOK")
    assert alerts.webhook_url() is None
