"""DAG integrity: every DAG file imports cleanly, is documented, tagged, retried, acyclic, and does
no heavy work at parse time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

DAGS = Path(__file__).resolve().parents[1] / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = ["pandas", "dbt", "great_expectations", "psycopg2", "openpyxl", "matplotlib",
         "weasyprint", "yibao.loader", "yibao.transform", "yibao.quality", "yibao.reports"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    return bag


def test_dag_files_exist():
    names = {p.stem for p in DAG_FILES}
    assert {"nightly_ingest"} <= names


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "nightly_ingest" in dagbag.dags


def test_dags_are_documented_tagged_owned_and_retried(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} needs doc_md"
        assert dag.tags, f"{dag_id} needs tags"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} needs an owner"
            assert t.retries >= 1, f"{dag_id}.{t.task_id} needs retries"


def _assert_acyclic(dag) -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(task_id: str) -> None:
        assert state.get(task_id) != 1, f"cycle through {dag.dag_id}.{task_id}"
        if state.get(task_id) == 2:
            return
        state[task_id] = 1
        for down in dag.get_task(task_id).downstream_task_ids:
            visit(down)
        state[task_id] = 2

    for t in dag.tasks:
        visit(t.task_id)


def test_dags_have_no_cycles(dagbag):
    for dag in dagbag.dags.values():
        _assert_acyclic(dag)


def test_nightly_ingest_shape(dagbag):
    dag = dagbag.dags["nightly_ingest"]
    order = ["load", "validate_raw", "transform", "validate_marts", "publish"]
    assert set(order) <= set(dag.task_ids)
    for up, down in zip(order, order[1:]):
        assert down in dag.get_task(up).downstream_task_ids or down in {
            t for t in dag.get_task(up).get_flat_relative_ids(upstream=False)
        }
    outlets = [str(o.uri) for o in dag.get_task("publish").outlets]
    assert "yibao://marts/published" in outlets


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_no_heavy_imports_at_parse_time(dag_file):
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(dag_file)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"print(json.dumps([h for h in {HEAVY!r} if h in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{dag_file.name} imports {loaded} at parse time"
