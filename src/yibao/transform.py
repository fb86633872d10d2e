"""Run the dbt project (``dbt_project/``) in-process.

``run_dbt`` is the one entry point: it points dbt at the project and its ``profiles.yml``, passes the
warehouse connection through the ``YIBAO_PG*`` environment variables the profile reads, sets the
vars (``as_of_date``, ``marts_schema``) and raises :class:`TransformError` naming every failing
node. dbt's log goes to a file (``<YIBAO_HOME>/logs/dbt/dbt.log``), not to stdout.

Parse once, run many: the project is parsed with only ``marts_schema`` as a var (so the saved
partial-parse state stays valid from one night to the next; a changed ``--vars`` would force a
full re-parse), and the command then runs on that manifest with the night's ``as_of_date``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .config import PROJECT_ROOT, settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
BACK_IN_TIME = (
    "an incremental build cannot go back in time"  # raised by macros/incremental.sql
)
# macros/incremental.sql ends every "this target cannot be built incrementally" error with it:
# going back in time, or a table written by an earlier non-incremental version of a model
FULL_REFRESH_NEEDED = "rebuild it with --full-refresh"
# an upgrade may reveal stale targets round by round (a model downstream of a failed one is skipped)
UPGRADE_ROUNDS = 3
log = logging.getLogger(__name__)
_ENV_LOCK = threading.Lock()
_FAILED = {"error", "fail", "runtime error"}


@dataclass
class NodeFailure:
    name: str
    unique_id: str
    status: str
    message: str


class TransformError(RuntimeError):
    """A dbt command failed; ``failures`` lists the failing nodes and their messages."""

    def __init__(
        self, command: list[str], failures: list[NodeFailure], detail: str = ""
    ):
        self.command = command
        self.failures = failures
        lines = [f"dbt {' '.join(command)} failed"]
        lines += [f"  {f.name} [{f.status}]: {f.message}" for f in failures]
        if detail:
            lines.append(f"  {detail}")
        super().__init__("\n".join(lines))


@dataclass
class NodeResult:
    name: str
    resource_type: str  # model, seed, test, snapshot, unit_test
    status: str  # success, pass, warn, skipped, …
    seconds: float
    rows: int | None = None  # rows affected, when the adapter reports them
    message: str = ""


@dataclass
class DbtRun:
    """What a successful ``run_dbt`` did (node name -> status, per-node results), for logs and tests."""

    command: list[str]
    statuses: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    nodes: list[NodeResult] = field(default_factory=list)
    # build(): the models rebuilt with --full-refresh before this run succeeded (["*"]: all of them)
    full_refreshed: list[str] = field(default_factory=list)
    # build(): the `dbt run --full-refresh` invocations of those models, in order (their time is the night's too)
    refresh_runs: list[DbtRun] = field(default_factory=list)

    def model_seconds(self) -> dict[str, float]:
        """Seconds per model over this run and the refresh runs before it (a model rebuilt alone
        and then built again by the night's build counts both)."""
        seconds: dict[str, float] = {}
        for run in (*self.refresh_runs, self):
            for n in run.nodes:
                if n.resource_type == "model":
                    seconds[n.name] = seconds.get(n.name, 0.0) + n.seconds
        return seconds

    @property
    def warnings(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status == "warn"]

    def summary_text(self, slowest: int = 5) -> str:
        """dbt's per-run summary for the task log: counts per node type and status, the slowest
        models, and every test that warned (with its message)."""
        counts: dict[str, dict[str, int]] = {}
        for n in self.nodes:
            per_type = counts.setdefault(n.resource_type, {})
            per_type[n.status] = per_type.get(n.status, 0) + 1
        parts = [
            f"{sum(c.values())} {kind}s ("
            + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
            + ")"
            for kind, c in sorted(counts.items())
        ]
        lines = [f"dbt {' '.join(self.command[:1])}: {'; '.join(parts) or 'nothing ran'} in {self.seconds:.1f} s"]
        models = sorted((n for n in self.nodes if n.resource_type in ("model", "seed", "snapshot")),
                        key=lambda n: n.seconds, reverse=True)[:slowest]
        if models:
            lines.append("  slowest: " + ", ".join(
                f"{n.name} {n.seconds:.1f}s" + (f" ({n.rows:,} rows)" if n.rows is not None else "") for n in models))
        for n in self.warnings:
            first = (n.message.splitlines() or [""])[0]
            lines.append(f"  WARN {n.name}: {first}")
        return "\n".join(lines)


def connection_env(url: str) -> dict[str, str]:
    """The profile's environment variables for a ``postgresql://user:pw@host:port/db`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://…")
    return {
        "YIBAO_PGHOST": parts.hostname or "127.0.0.1",
        "YIBAO_PGPORT": str(parts.port or 5432),
        "YIBAO_PGUSER": unquote(parts.username or "postgres"),
        "YIBAO_PGPASSWORD": unquote(parts.password or ""),
        "YIBAO_PGDATABASE": unquote(parts.path.lstrip("/")) or "yibao",
    }


def log_dir() -> Path:
    return Path(os.environ.get("DBT_LOG_PATH") or settings().home / "logs" / "dbt")


@contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the duration of a dbt call (dbt reads os.environ)."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old


def _common_args(vars_: dict[str, str]) -> list[str]:
    return [
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--vars",
        json.dumps(vars_, sort_keys=True),
    ]


def _log_args() -> list[str]:
    # stdout: errors only; the full log goes to a file
    return [
        "--quiet",
        "--log-path",
        str(log_dir()),
        "--log-level-file",
        "info",
        "--no-use-colors",
    ]


def _failures(result) -> list[NodeFailure]:
    out = []
    for r in getattr(result, "results", None) or []:
        status = str(getattr(r.status, "value", r.status))
        if status in _FAILED:
            node = r.node
            out.append(
                NodeFailure(
                    node.name, node.unique_id, status, (r.message or "").strip()
                )
            )
    return out


def run_dbt(
    args: list[str],
    *,
    as_of: dt.date | None = None,
    marts_schema: str = "marts",
    url: str | None = None,
) -> DbtRun:
    """Run one dbt command (e.g. ``["build"]``, ``["test", "--select", "test_type:unit"]``).

    ``as_of`` is the latest loaded business date (required by every command that runs SQL);
    ``marts_schema`` the schema the marts are built into; ``url`` the warehouse (default: the
    configured one, ``yibao.pg.url()``). Raises :class:`TransformError` on failure.
    """
    import time

    from dbt.cli.main import dbtRunner

    from . import pg

    if not args:
        raise ValueError("run_dbt needs a dbt command, e.g. ['build']")
    started = time.perf_counter()
    url = url or pg.url()
    env = connection_env(url)
    log_dir().mkdir(parents=True, exist_ok=True)
    parse_vars = {"marts_schema": marts_schema}
    run_vars = dict(parse_vars)
    if as_of is not None:
        run_vars["as_of_date"] = as_of.isoformat()
    command = list(args)
    timings = NodeTimings(url)

    _schedule_longest_path_first()
    with _environment(env), timings.scheduling():
        manifest = None
        if command[0] not in ("parse", "deps", "clean", "debug", "init"):
            parsed = dbtRunner().invoke(
                ["parse", *_common_args(parse_vars), *_log_args()]
            )
            if not parsed.success:
                raise TransformError(["parse"], [], _exception_text(parsed))
            manifest = parsed.result
        invocation = [*command, *_common_args(run_vars), *_log_args()]
        try:
            result = dbtRunner(manifest=manifest).invoke(invocation)
        finally:
            del manifest
            _release_dbt_locks()

    failures = _failures(result.result)
    if not result.success or failures:
        raise TransformError(
            command, failures, "" if failures else _exception_text(result)
        )
    run = DbtRun(command, seconds=time.perf_counter() - started)
    timings.record(result.result)
    for r in getattr(result.result, "results", None) or []:
        status = str(getattr(r.status, "value", r.status))
        run.statuses[r.node.name] = status
        rows = getattr(getattr(r, "adapter_response", None), "get", lambda _k: None)("rows_affected")
        run.nodes.append(
            NodeResult(
                r.node.name,
                str(getattr(r.node.resource_type, "value", r.node.resource_type)),
                status,
                float(getattr(r, "execution_time", 0) or 0),
                rows if isinstance(rows, int) and rows >= 0 else None,
                (r.message or "").strip() if status == "warn" else "",
            )
        )
    return run


# --- the order of the ready nodes ---------------------------------------------------------------
#
# dbt hands the ready nodes to its threads by their depth in the graph, ties broken by name
# (dbt/graph/queue.py: GraphQueue._get_scores). When int_claims_with_deductions is done on a
# nightly build, int_evaluation_settlements (the head of the longest chain left: ->
# int_evaluation_quarter_totals -> fct_evaluation_quarterly) becomes ready beside shorter models
# of the same depth that sort first by name, and on two threads it waited 0.4-0.7 s a night for
# one (docs/scale-out.md §6, "The critical path first"). Here the ready node with the longest
# path of work behind it goes first, each node weighing its own time in this warehouse's previous
# run (NodeTimings, audit.dbt_node_seconds); a node never timed weighs DEFAULT_SECONDS for its
# type. Only the order of the ready nodes changes: what is ready is still dbt's decision.
DEFAULT_SECONDS = {"model": 1.0, "seed": 1.0, "snapshot": 1.0}
DEFAULT_OTHER_SECONDS = 0.1  # a test, a unit test, an operation
_WEIGHTS = threading.local()  # NodeTimings.scheduling() sets .seconds for the dbt call of its thread


def longest_path_scores(graph, seconds: dict[str, float] | None = None) -> dict[str, float]:
    """dbt's queue scores (lower is handed out first): minus the seconds of the longest path from
    each node to the end of the graph, the node's own included."""
    import networkx as nx

    seconds = seconds or {}
    remaining: dict[str, float] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        own = seconds.get(node)
        if own is None:
            own = DEFAULT_SECONDS.get(str(node).split(".", 1)[0], DEFAULT_OTHER_SECONDS)
        remaining[node] = own + max((remaining[child] for child in graph.successors(node)), default=0.0)
    return {node: -left for node, left in remaining.items()}


def _schedule_longest_path_first() -> bool:
    """Make dbt's queue (in this process) hand out the ready node with the longest path behind it
    first, and only when one of dbt's threads is free to run it. Idempotent; False, with a
    warning, if this dbt lacks what is patched (its own order is then kept).

    dbt's main loop takes every ready node off its priority queue at once and hands it to the
    thread pool, whose own queue is first in, first out: a node that becomes ready later waits
    behind all of them, whatever its score (on the 30 M-claim year the test that
    int_audit_rules waits for queued 1 s behind fifteen staging models). So the queue's ``get``
    also waits until fewer nodes are running than dbt has threads (``config.threads``, set on the
    queue by the task's ``run_queue``): the choice is then made when a thread takes a node.
    """
    from dbt.graph import queue
    from dbt.task.runnable import GraphRunnableTask

    graph_queue = queue.GraphQueue
    missing = [name for name in ("_get_scores", "get") if not hasattr(graph_queue, name)]
    if missing or not hasattr(GraphRunnableTask, "run_queue"):
        log.warning("dbt's GraphQueue or GraphRunnableTask changed: keeping dbt's order of the ready nodes")
        return False
    if getattr(graph_queue._get_scores, "_yibao_longest_path", False):
        return True
    dbt_get, dbt_run_queue = graph_queue.get, GraphRunnableTask.run_queue

    def _get_scores(self, graph):
        return longest_path_scores(graph, getattr(_WEIGHTS, "seconds", None))

    def get(self, block: bool = True, timeout: float | None = None):
        slots = getattr(self, "_yibao_slots", None)
        if slots:
            with self.lock:  # in_progress only shrinks meanwhile: this (dbt's main) thread alone adds to it
                while len(self.in_progress) >= slots:
                    self.some_task_done.wait(1.0)
        return dbt_get(self, block, timeout)

    def run_queue(self, pool):
        if self.job_queue is not None:
            self.job_queue._yibao_slots = max(1, int(getattr(self.config, "threads", 1) or 1))
        return dbt_run_queue(self, pool)

    _get_scores._yibao_longest_path = True
    graph_queue._get_scores = _get_scores
    graph_queue.get = get
    GraphRunnableTask.run_queue = run_queue
    return True


class NodeTimings:
    """Each dbt node's seconds in the last run that ran it, kept in the warehouse
    (``audit.dbt_node_seconds``): the weights of the order above. A hint only: a warehouse without
    the table (not bootstrapped) or unreachable gives the default weights, and a failed write is a
    warning, never a failed night."""

    def __init__(self, url: str):
        self.url = url

    @contextmanager
    def _table(self):
        """A cursor in one transaction on the warehouse, None when it has no audit.dbt_node_seconds."""
        import psycopg2

        with closing(psycopg2.connect(self.url)) as conn, conn, conn.cursor() as cur:
            cur.execute("select to_regclass('audit.dbt_node_seconds') is not null")
            yield cur if cur.fetchone()[0] else None

    def seconds(self) -> dict[str, float]:
        import psycopg2

        try:
            with self._table() as cur:
                if cur is None:
                    return {}
                cur.execute("select unique_id, seconds from audit.dbt_node_seconds")
                return dict(cur.fetchall())
        except psycopg2.Error as exc:
            log.warning("dbt's node times could not be read (%s): default weights", str(exc).strip())
            return {}

    @contextmanager
    def scheduling(self):
        """While dbt runs in this thread, its queue weighs the nodes by these timings."""
        _WEIGHTS.seconds = self.seconds()
        try:
            yield
        finally:
            _WEIGHTS.seconds = None

    def record(self, result) -> None:
        """Remember the execution time of every node a dbt command ran (other nodes keep theirs)."""
        import psycopg2
        from psycopg2.extras import execute_values

        measured = {}
        for r in getattr(result, "results", None) or []:
            node = getattr(r, "node", None)
            seconds = getattr(r, "execution_time", None)
            if node is not None and isinstance(seconds, (int, float)) and seconds > 0:
                measured[node.unique_id] = round(float(seconds), 3)
        if not measured:
            return
        try:
            with self._table() as cur:
                if cur is not None:
                    execute_values(
                        cur,
                        "insert into audit.dbt_node_seconds (unique_id, seconds) values %s on conflict (unique_id)"
                        " do update set seconds = excluded.seconds, measured_at = now()",
                        sorted(measured.items()),
                    )
        except psycopg2.Error as exc:
            log.warning("dbt's node times could not be recorded (%s)", str(exc).strip())


def _release_dbt_locks() -> None:
    """Let go of dbt's process-shared locks once a command is done.

    dbt creates its locks (the adapter's connection lock, each manifest's lock) from a *spawn*
    multiprocessing context: each is a named POSIX semaphore registered with multiprocessing's
    resource tracker, and unregistered only when the lock is garbage-collected. An Airflow task
    process ends with ``os._exit`` (no garbage collection), so the tracker found the semaphores
    still registered and printed ``resource_tracker: There appear to be 2 leaked semaphore
    objects`` on stderr, which the task log shows as an ERROR on a successful task. Dropping dbt's
    adapter registry and collecting here closes them while the task is still running.
    """
    import gc

    from dbt.adapters.factory import reset_adapters

    reset_adapters()
    gc.collect()


def _exception_text(result) -> str:
    exc = getattr(result, "exception", None)
    return (
        f"{type(exc).__name__}: {exc}"
        if exc
        else "see the dbt log in " + str(log_dir())
    )


def build(
    as_of: dt.date,
    marts_schema: str = "marts",
    url: str | None = None,
    *,
    full_refresh: bool = False,
    unit_tests: bool = False,
    select: list[str] | None = None,
) -> DbtRun:
    """``dbt build`` through ``as_of``: seeds, models and data tests (and unit tests if asked).

    Incremental models catch up on everything newer than what their target holds. A build
    through a date earlier than an incremental target already holds cannot be incremental
    (rows of later business dates would stay): the build is retried once as a full refresh of
    everything. A table an earlier, non-incremental version of a model wrote (no lineage columns:
    the first night after an upgrade made the model incremental) is rebuilt alone with
    ``--full-refresh`` and the night's build runs again (up to ``UPGRADE_ROUNDS`` rounds, for stale
    models downstream of stale ones, which the first build skipped), so an upgrade costs the
    changed models' full build, not the whole warehouse's. ``full_refreshed`` of the result names
    them (``["*"]``: everything).
    Unit tests do not depend on the data; CI runs them (``unit_tests=True`` or
    ``run_dbt(["test", "--select", "test_type:unit"], as_of=...)``).
    """
    args = ["build"]
    if select:
        args += ["--select", *select]
    if not unit_tests:
        args += ["--exclude", "test_type:unit"]
    if full_refresh:
        run = run_dbt(args + ["--full-refresh"], as_of=as_of, marts_schema=marts_schema, url=url)
        run.full_refreshed = ["*"]
        return run
    refreshed: list[str] = []
    refresh_runs: list[DbtRun] = []
    for _ in range(UPGRADE_ROUNDS):
        try:
            run = run_dbt(args, as_of=as_of, marts_schema=marts_schema, url=url)
            run.full_refreshed, run.refresh_runs = refreshed, refresh_runs
            return run
        except TransformError as exc:
            if FULL_REFRESH_NEEDED not in str(exc):
                raise
            stale = _stale_models(exc)
            if not stale or BACK_IN_TIME in str(exc) or set(stale) <= set(refreshed):
                break  # back in time (every incremental target is ahead), or no progress: rebuild all
            log.warning(
                "%s written by an earlier, non-incremental version of the project: rebuilding %s"
                " with --full-refresh through %s, then the night's build again",
                ", ".join(stale), "it" if len(stale) == 1 else "them", as_of,
            )
            refresh_runs.append(
                run_dbt(["run", "--full-refresh", "--select", *stale], as_of=as_of, marts_schema=marts_schema, url=url)
            )
            refreshed += [m for m in stale if m not in refreshed]
    log.warning("rebuilding everything through %s with --full-refresh", as_of)
    run = run_dbt(args + ["--full-refresh"], as_of=as_of, marts_schema=marts_schema, url=url)
    run.full_refreshed, run.refresh_runs = ["*"], refresh_runs
    return run


def _stale_models(exc: TransformError) -> list[str]:
    """The failed models that only need a full refresh (macros/incremental.sql ends their error
    with FULL_REFRESH_NEEDED); empty when another node failed too (then everything is rebuilt)."""
    if any(FULL_REFRESH_NEEDED not in f.message for f in exc.failures):
        return []
    return [f.name for f in exc.failures]
