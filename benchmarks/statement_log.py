"""Where a night's time goes, statement by statement: compare two nights' statements from the
server log of the embedded PostgreSQL, and replay one model's statements on a kept night database.

The benchmarks' pairs (audit_night.py, history_night.py) run the same night in two databases; the
server log tells which statements cost the difference. Log them first (every statement of 5 ms or
more, each line with its database), run the pair with --keep, then set the log back:

    psql "$(.venv/bin/yibao url)" -c "alter system set log_min_duration_statement = 5" \\
        -c "alter system set log_line_prefix = '%m [%p] %d '" -c "select pg_reload_conf()"
    wc -l < "$YIBAO_HOME/pgdata/server.log"        # the line to compare from
    ...  the pair, with --keep ...
    psql "$(.venv/bin/yibao url)" -c "alter system reset log_min_duration_statement" \\
        -c "alter system reset log_line_prefix" -c "select pg_reload_conf()"

    # the statements (dbt model, statement head) whose total grew most from A to B, then by model
    .venv/bin/python benchmarks/statement_log.py compare --from-line N \\
        yibao_audit_bench_night_empty yibao_audit_bench_night_history
    # one model's statements again on the kept database B, each statement of a hook timed alone,
    # EXPLAIN (ANALYZE, BUFFERS) of those matching --explain, in one transaction rolled back
    .venv/bin/python benchmarks/statement_log.py replay --from-line N \\
        yibao_audit_bench_night_history fct_audit_findings --explain "__night as"

A replay runs warm and on the consumed night: the watermarks are literals in the logged text, so
the model selects the same keys again, but what the night wrote is stored already. A database
whose model was first built in the same log (an empty template) replays from the statement after
the first match of --after (e.g. --after 'create\\s+table "yibao_audit_bench_night_empty"').
With log_min_duration_statement above 0 a statement under it is missing from the log: set it to 0
when a replay must include every statement. docs/scale-out.md §7.23 used both.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import time
from pathlib import Path

ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+ \[\d+\] (\S*) ?\w+:\s+duration: ([\d.]+) ms\s+"
                   r"(?:statement|execute [^:]*): ?(.*)$")
NEW_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
NODE = re.compile(r'"node_id": "[^"]*\.([^".]+)"')


def _entries(log: Path, from_line: int) -> list[tuple[str, float, str]]:
    """(database, milliseconds, statement text) of every logged duration from the given line on."""
    entries, current = [], None
    with log.open(errors="replace") as f:
        for number, line in enumerate(f):
            if number < from_line:
                continue
            m = ENTRY.match(line)
            if m:
                current = [m.group(1), float(m.group(2)), [m.group(3) + "\n"]]
                entries.append(current)
            elif NEW_LINE.match(line):
                current = None
            elif current is not None:  # a continuation line of the statement, indented by a tab
                current[2].append(line[1:] if line.startswith("\t") else line)
    return [(db, ms, "".join(text)) for db, ms, text in entries]


def _head(text: str, width: int = 90) -> str:
    """The statement without comments, database qualifiers and dbt's temporary-table suffixes."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"--[^\n]*", "", text)
    text = re.sub(r'"[\w]+"\.("\w+"\.)', r"\1", text)
    text = re.sub(r"__dbt_tmp\d+", "__dbt_tmp", text)
    text = re.sub(r'"(\w+)"', r"\1", text)
    return " ".join(text.split())[:width]


def compare(args) -> None:
    totals = {args.a: collections.Counter(), args.b: collections.Counter()}
    for db, ms, text in _entries(args.log, args.from_line):
        if db in totals:
            node = NODE.search(text)
            totals[db][(node.group(1) if node else "-", _head(text))] += ms
    a, b = totals[args.a], totals[args.b]
    keys = sorted(set(a) | set(b), key=lambda k: a[k] - b[k])
    print(f"{'A ms':>9} {'B ms':>9} {'B-A':>8}  model | statement   (A {args.a}, B {args.b})")
    for k in keys[:args.top]:
        print(f"{a[k]:9.0f} {b[k]:9.0f} {b[k] - a[k]:8.0f}  {k[0]} | {k[1]}")
    by_a, by_b = collections.Counter(), collections.Counter()
    for k in keys:
        by_a[k[0]] += a[k]
        by_b[k[0]] += b[k]
    print("\nby model (- : statements outside dbt, e.g. the benchmark's own)")
    for node in sorted(set(by_a) | set(by_b), key=lambda n: by_a[n] - by_b[n])[:args.top]:
        print(f"{by_a[node]:9.0f} {by_b[node]:9.0f} {by_b[node] - by_a[node]:8.0f}  {node}")
    print(f"{sum(by_a.values()):9.0f} {sum(by_b.values()):9.0f} {sum(by_b.values()) - sum(by_a.values()):8.0f}  all")


def _split(sql: str) -> list[str]:
    """The statements of a multi-statement string (hooks): split at semicolons outside quotes,
    dollar quotes and comments."""
    parts, buf, i, n = [], [], 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            j = sql.find(c, i + 1)
            j = n if j < 0 else j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i)
            j = n if j < 0 else j + 2
        elif m := re.match(r"\$\w*\$", sql[i:]):
            j = sql.find(m.group(0), i + len(m.group(0)))
            j = n if j < 0 else j + len(m.group(0))
        elif c == ";":
            parts.append("".join(buf))
            buf, i = [], i + 1
            continue
        else:
            j = i + 1
        buf.append(sql[i:j])
        i = j
    parts.append("".join(buf))
    return [p for p in parts if _head(p)]


def _of_model(text: str, model: str) -> bool:
    """Whether a logged statement is the model's: dbt's query comment names its node (the model's
    query reads other relations only, e.g. `create temporary table <model>__dbt_tmp as ...`);
    a statement without one (a hook's) when it names the model's relation."""
    node = NODE.search(text)
    return node.group(1) == model if node else f'."{model}"' in text


def replay(args) -> None:
    import psycopg2

    from yibao import pg

    statements = [(ms, text) for db, ms, text in _entries(args.log, args.from_line)
                  if db == args.database and _of_model(text, args.model)]
    if args.after:
        first = next((i for i, (_, text) in enumerate(statements) if re.search(args.after, text)), None)
        if first is None:
            raise SystemExit(f"no statement of {args.model} matches --after {args.after!r}")
        statements = statements[first + 1:]
    if not statements:
        raise SystemExit(f"no logged statement of {args.model} in {args.database} from line {args.from_line}")
    conn = psycopg2.connect(pg.url(database=args.database))
    total = 0.0
    try:
        with conn.cursor() as cur:
            for logged, text in statements:
                parts = _split(text)
                if len(parts) > 1:
                    print(f"-- {len(parts)} statements, logged together in {logged:.0f} ms")
                for part in parts:
                    head = _head(part, 110)
                    if re.match(r"(?i)(begin|commit|rollback)\b", head):
                        continue
                    explain = bool(args.explain and re.search(args.explain, head))
                    started = time.perf_counter()
                    try:
                        cur.execute(("explain (analyze, buffers) " if explain else "") + part)
                    except psycopg2.Error as e:
                        print(f"stopped: {str(e).splitlines()[0]}\n  at {head}")
                        return
                    ms = (time.perf_counter() - started) * 1000
                    total += ms
                    alone = f"(logged {logged:.0f}) " if len(parts) == 1 else ""
                    print(f"{ms:9.1f} ms  {alone}{head}")
                    if explain:
                        print("\n".join(row[0] for row in cur.fetchall()))
    finally:
        conn.rollback()
        conn.close()
        print(f"{total:9.0f} ms in all (rolled back)")


def main() -> None:
    default_log = Path(os.environ.get("YIBAO_HOME", ".yibao")) / "pgdata" / "server.log"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name, fn in (("compare", compare), ("replay", replay)):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        p.add_argument("--log", type=Path, default=default_log, help="the server log (default: %(default)s)")
        p.add_argument("--from-line", type=int, default=0, help="read the log from this line (0-based)")
    c = sub.choices["compare"]
    c.add_argument("a", help="database A (e.g. the night on nothing)")
    c.add_argument("b", help="database B (e.g. the night on the history)")
    c.add_argument("--top", type=int, default=30)
    r = sub.choices["replay"]
    r.add_argument("database")
    r.add_argument("model", help="the dbt model whose statements to replay (its relation name)")
    r.add_argument("--explain", help="EXPLAIN (ANALYZE, BUFFERS) the statements whose head matches this regex")
    r.add_argument("--after", help="replay from the statement after the first one matching this regex")
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
