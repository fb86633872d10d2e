"""dbt's order of the ready nodes: the longest path of work left first, each node weighed by its
time in the warehouse's previous run (yibao.transform)."""

from __future__ import annotations

from types import SimpleNamespace

import networkx as nx
import pytest

from yibao.transform import NodeTimings, _schedule_longest_path_first, longest_path_scores

ICWD = "model.yibao.int_claims_with_deductions"
IES = "model.yibao.int_evaluation_settlements"
IQT = "model.yibao.int_evaluation_quarter_totals"
FEQ = "model.yibao.fct_evaluation_quarterly"
DAILY = "model.yibao.int_settlement_daily_totals"
MONTHLY = "model.yibao.fct_settlement_monthly"
CLAIM_RULES = "model.yibao.int_audit_claim_rules"
FINDINGS = "model.yibao.fct_audit_findings"
SUMMARY = "model.yibao.fct_audit_summary_monthly"
TEST = "test.yibao.fct_audit_summary_monthly_amounts"

# measured on the night on the 30 M-claim year (docs/scale-out.md §6), rounded
NIGHT_SECONDS = {ICWD: 3.6, IES: 2.2, IQT: 0.7, FEQ: 0.2, DAILY: 0.4, MONTHLY: 0.3, CLAIM_RULES: 0.3,
                 FINDINGS: 0.8, SUMMARY: 0.2, TEST: 0.1}


def _night_shape() -> nx.DiGraph:
    """After int_claims_with_deductions: R10's chain (three long models) beside two branches with
    more nodes but less work, whose heads sort first by name."""
    return nx.DiGraph([
        (ICWD, IES), (IES, IQT), (IQT, FEQ),
        (ICWD, DAILY), (DAILY, MONTHLY),
        (ICWD, CLAIM_RULES), (CLAIM_RULES, FINDINGS), (FINDINGS, SUMMARY), (SUMMARY, TEST),
    ])


def test_scores_are_the_longest_path_of_measured_seconds():
    scores = longest_path_scores(_night_shape(), NIGHT_SECONDS)
    assert scores[IES] == pytest.approx(-(2.2 + 0.7 + 0.2))
    assert scores[CLAIM_RULES] == pytest.approx(-(0.3 + 0.8 + 0.2 + 0.1))
    assert scores[ICWD] == pytest.approx(-(3.6 + 3.1))
    ready = [DAILY, CLAIM_RULES, IES]
    assert min(ready, key=lambda n: (scores[n], n)) == IES


def test_a_node_never_timed_weighs_the_default_of_its_type():
    # counted in nodes (a model 1 s, a test 0.1 s), the four-node audit branch is the longest;
    # measured, R10's chain is: the case that fixed weights got wrong on the 30 M year
    scores = longest_path_scores(_night_shape())
    assert scores[CLAIM_RULES] == pytest.approx(-3.1)
    assert scores[IES] == pytest.approx(-3.0)
    assert longest_path_scores(_night_shape(), {IES: 5.0})[IES] == pytest.approx(-7.0)


def _ran(seconds: dict[str, float]) -> SimpleNamespace:
    """What dbtRunner returns, as far as NodeTimings.record reads it."""
    return SimpleNamespace(results=[SimpleNamespace(node=SimpleNamespace(unique_id=k), execution_time=v)
                                    for k, v in seconds.items()])


def test_dbts_queue_hands_out_the_longest_path_first(clean_warehouse):
    """On the dbt this project locks, the queue its threads take nodes from uses these scores; its
    own (depth, then name) would hand out int_audit_claim_rules first. Fails if dbt renames
    GraphQueue._get_scores: the order then falls back to dbt's (with a warning)."""
    from dbt.graph.queue import GraphQueue

    timings = NodeTimings(clean_warehouse)
    timings.record(_ran(NIGHT_SECONDS))
    graph = _night_shape()
    graph.remove_node(ICWD)  # its children are ready together
    assert _schedule_longest_path_first()
    assert _schedule_longest_path_first()  # idempotent
    with timings.scheduling():
        queue = GraphQueue(graph, None, set(graph.nodes))
    first = [queue.inner.get()[1] for _ in range(3)]
    assert first == [IES, CLAIM_RULES, DAILY]
    # outside a run with timings (e.g. another thread's dbt call) the defaults weigh the nodes
    queue = GraphQueue(_night_shape(), None, set(_night_shape().nodes))
    assert queue._scores[CLAIM_RULES] < queue._scores[IES]


def test_a_node_ready_later_goes_before_shorter_ones_ready_earlier():
    """dbt's main loop hands every ready node to its thread pool at once (first in, first out
    there). With the queue's get waiting for a free thread, the node that int_audit_rules' chain
    makes ready is chosen when a thread frees, ahead of the short nodes that were ready before it."""
    import threading

    from dbt.graph.queue import GraphQueue

    head, chain, short = "model.yibao.stg_audit_rules", "test.yibao.unique_stg_audit_rules_rule_id", []
    graph = nx.DiGraph([(head, chain), (chain, IES)])
    for i in range(3):
        short.append(f"model.yibao.stg_short_{i}")
        graph.add_node(short[-1])
    assert _schedule_longest_path_first()
    manifest = SimpleNamespace(expect=lambda unique_id: SimpleNamespace(unique_id=unique_id))
    queue = GraphQueue(graph, manifest, set(graph.nodes))
    queue._yibao_slots = 1  # one thread (run_queue sets dbt's config.threads)
    assert queue.get().unique_id == head  # the longest path first
    got: list[str] = []
    taker = threading.Thread(target=lambda: got.append(queue.get().unique_id))
    taker.start()
    taker.join(0.3)
    assert taker.is_alive() and got == []  # the one thread is busy: nothing is taken off the queue
    queue.mark_done(head)
    taker.join(5)
    assert got == [chain]  # ready after the three short nodes, taken before them
    queue._yibao_slots = None  # dbt's own behaviour: what is ready is taken at once
    assert {queue.get().unique_id for _ in range(3)} == set(short)


def test_node_timings_are_the_warehouses_latest_and_only_a_hint(clean_warehouse):
    from yibao import db

    timings = NodeTimings(clean_warehouse)
    assert timings.seconds() == {}
    timings.record(_ran({"model.yibao.a": 2.0, "model.yibao.b": 0.5}))
    timings.record(_ran({"model.yibao.b": 0.7, "model.yibao.c": 0.0}))  # b ran again; c took no time
    assert timings.seconds() == {"model.yibao.a": 2.0, "model.yibao.b": 0.7}
    with db.connect() as conn, conn.cursor() as cur:  # a warehouse bootstrapped before the table
        cur.execute("drop table audit.dbt_node_seconds")
    assert timings.seconds() == {}
    timings.record(_ran({"model.yibao.a": 1.0}))  # nothing to write to, nothing raised
    gone = NodeTimings(clean_warehouse.rsplit("/", 1)[0] + "/no_such_database")
    assert gone.seconds() == {}
    gone.record(_ran({"model.yibao.a": 1.0}))
    db.bootstrap()
    assert timings.seconds() == {}


def test_dbts_task_tells_the_queue_how_many_threads_it_has():
    from dbt.flags import set_from_args
    from dbt.graph.queue import GraphQueue
    from dbt.task.runnable import GraphRunnableTask

    assert _schedule_longest_path_first()
    set_from_args(SimpleNamespace(), None)
    task = SimpleNamespace(config=SimpleNamespace(threads=3), job_queue=GraphQueue(nx.DiGraph(), None, set()),
                           _raise_next_tick=None)
    task._raise_set_error = lambda: GraphRunnableTask._raise_set_error(task)
    GraphRunnableTask.run_queue(task, pool=None)  # nothing to run: returns at once
    assert task.job_queue._yibao_slots == 3
