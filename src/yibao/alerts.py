"""Failure notification: one message naming the night, the step and the first failing check.

``notify_failure`` is the Airflow ``on_failure_callback`` of every task of both DAGs (wired in
``dags/``). It runs once a task has failed for good (after its retries), in the task's process, and

* always logs the message at ERROR (logger ``yibao.alerts``: the task log, and ``yibao run``'s
  terminal);
* if a webhook URL is configured — Airflow Variable ``yibao_alert_webhook`` (or
  ``AIRFLOW_VAR_YIBAO_ALERT_WEBHOOK``), else the environment variable ``YIBAO_ALERT_WEBHOOK`` — POSTs
  it as JSON (:func:`payload`): ``text`` is the message (what Slack, Mattermost and most chat
  gateways display), the other keys are for machines.

A notification that cannot be delivered is logged as a warning; it never changes the task's outcome.
Only the standard library is imported here (the DAG files import this module at parse time).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import urllib.request
from typing import Any

log = logging.getLogger("yibao.alerts")

WEBHOOK_VARIABLE = "yibao_alert_webhook"
WEBHOOK_ENV = "YIBAO_ALERT_WEBHOOK"
TIMEOUT_SECONDS = 10


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _night(context: dict) -> str:
    """The business date the run is for: the ``through`` param, else the day before the run's
    logical date (or, for a run without one, its run-after moment) in Asia/Shanghai."""
    params = context.get("params") or {}
    if params.get("through"):
        return str(params["through"])
    if params.get("month"):
        return f"month {params['month']}"
    moment = context.get("logical_date") or _get(context.get("dag_run"), "run_after")
    if moment is None:
        return "unknown date"
    try:
        import pendulum

        return pendulum.instance(moment).in_timezone("Asia/Shanghai").subtract(days=1).to_date_string()
    except Exception:  # noqa: BLE001 - a message with less detail beats no message
        return str(moment)


def _original(exception: BaseException | None) -> BaseException | None:
    """The error behind a fail-fast wrapper (``yibao.pipeline.task_errors`` raises AirflowFailException
    from the step's own error, e.g. QualityGateFailed), so the message names what actually failed."""
    if exception is not None and type(exception).__name__ == "AirflowFailException" and exception.__cause__:
        return exception.__cause__
    return exception


def first_failure(exception: BaseException | None) -> str:
    """The first failing check (a quality gate), the first failing dbt node, or the error's first line."""
    exception = _original(exception)
    if exception is None:
        return "no exception recorded (see the task log)"
    lines = [line.strip() for line in str(exception).splitlines() if line.strip()]
    kind = type(exception).__name__
    if kind in ("QualityGateFailed", "TransformError") and len(lines) > 1:
        return lines[1]  # line 0 is the header ("1 error-level … failed", "dbt build … failed")
    return f"{kind}: {lines[0]}" if lines else kind


def message(context: dict) -> str:
    ti = context.get("ti") or context.get("task_instance")
    dag_id = _get(ti, "dag_id") or _get(context.get("dag"), "dag_id", "?")
    task_id = _get(ti, "task_id", "?")
    map_index = _get(ti, "map_index", -1)
    step = task_id if map_index in (None, -1) else f"{task_id}[{map_index}]"
    night = _night(context)
    what = night if night.startswith(("month", "unknown")) else f"night through {night}"
    run_id = context.get("run_id") or _get(context.get("dag_run"), "run_id", "?")
    return (f"yibao {dag_id}: {what} FAILED at step {step} — {first_failure(context.get('exception'))}"
            f" (run {run_id}, try {_get(ti, 'try_number', '?')})")


def payload(context: dict) -> dict:
    ti = context.get("ti") or context.get("task_instance")
    exception = _original(context.get("exception"))
    night = _night(context)
    return {
        "text": message(context),
        "dag_id": _get(ti, "dag_id"),
        "task_id": _get(ti, "task_id"),
        "map_index": _get(ti, "map_index"),
        "run_id": context.get("run_id") or _get(context.get("dag_run"), "run_id"),
        "night": night,
        "first_failure": first_failure(exception),
        "exception_type": type(exception).__name__ if exception is not None else None,
        "try_number": _get(ti, "try_number"),
        "sent_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def webhook_url() -> str | None:
    """The Airflow Variable ``yibao_alert_webhook``, else ``$YIBAO_ALERT_WEBHOOK``; None when neither is set."""
    url = None
    if "airflow.sdk.execution_time.task_runner" in sys.modules:  # inside a task: Variables are reachable
        try:
            from airflow.sdk import Variable

            url = Variable.get(WEBHOOK_VARIABLE, default=None)
        except Exception:  # noqa: BLE001 - the Variable cannot be read: fall back to the environment
            url = None
    return (url or os.environ.get(WEBHOOK_ENV) or "").strip() or None


def post(url: str, body: dict) -> int:
    data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - operator's URL
        return response.status


def notify_failure(context: dict) -> None:
    """Airflow ``on_failure_callback``: log the message; POST it to the webhook when one is configured."""
    body = payload(context)
    log.error("%s", body["text"])
    url = webhook_url()
    if not url:
        return
    try:
        status = post(url, body)
        log.info("failure notification sent to the webhook (HTTP %s)", status)
    except Exception as exc:  # noqa: BLE001 - never let the notification hide the failure itself
        log.warning("failure notification could not be sent to the webhook: %s", exc)
