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


SERIALIZE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models.serialized_dag import SerializedDagModel
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
out = {}
for dag_id, dag in sorted(bag.dags.items()):
    data = DagSerialization.to_dict(dag)
    out[dag_id] = {"hash": SerializedDagModel.hash(data),
                   "data": SerializedDagModel._sort_serialized_dag_dict(data)["dag"]}
    out[dag_id]["data"].pop("fileloc", None)
print("@@" + json.dumps(out, sort_keys=True, default=str))
"""


def test_every_parser_serialises_the_same_dags(tmp_path, monkeypatch):
    """The scheduler's dag-processor and `yibao run` parse the same files with different environments
    (the CLI's landing, retries, home): the serialised DAGs, and so Airflow's DAG versions, must not
    depend on it. Run settings are read when a task runs (conf, Variables), never at parse time."""
    from yibao.orchestrate import airflow_env

    def serialise(extra: dict) -> dict:
        monkeypatch.setenv("YIBAO_HOME", str(tmp_path / extra.pop("home")))
        env = airflow_env()
        env.update(extra)
        out = subprocess.run([sys.executable, "-c", SERIALIZE, str(DAGS)], env=env, capture_output=True,
                             text=True, timeout=600, check=False)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.split("@@", 1)[1])

    scheduler = serialise({"home": "scheduler"})
    cli = serialise({"home": "cli", "YIBAO_TASK_RETRIES": "0", "YIBAO_LANDING": str(tmp_path / "cli-landing"),
                     "AIRFLOW_VAR_YIBAO_LANDING": str(tmp_path / "elsewhere"), "TZ": "UTC"})
    assert set(scheduler) >= {"nightly_ingest", "monthly_settlement"}
    for dag_id in scheduler:
        assert cli[dag_id]["hash"] == scheduler[dag_id]["hash"], dag_id
        assert cli[dag_id]["data"] == scheduler[dag_id]["data"], dag_id
