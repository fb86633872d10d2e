"""Access control: every role logs in for real and we check what it can and cannot read or write.

A private database (``yibao_roles``) on the session's embedded PostgreSQL is bootstrapped with
infra/sql, LOGIN users are created by infra/bootstrap_roles.py, the transformer builds the §7 marts
sample (infra/fixtures/marts_sample.sql) in ``marts_build`` and publishes it (schema swap +
audit.apply_marts_security) exactly as the nightly publish does. Two counties: 410702 (hospitals
H41070200001, H41070200002) and 410703 (H41070300001, H41070300002).

The embedded server trusts loopback connections (no password check), so these tests prove
privileges and row-level security, not authentication; password storage is checked separately.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

pytestmark = pytest.mark.xdist_group("roles")

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "infra" / "fixtures" / "marts_sample.sql"
DB = "yibao_roles"
HOSPITALS = {
    "410702": {"H41070200001", "H41070200002"},
    "410703": {"H41070300001", "H41070300002"},
}
LOGINS = (
    "t_load:yibao_loader t_dbt:yibao_transformer t_bi:bi_reader "
    "t_hq:county_410702 t_wb:county_410703"
)
DENIED = psycopg2.errors.InsufficientPrivilege


def _bootstrap_roles_module():
    spec = importlib.util.spec_from_file_location(
        "bootstrap_roles", ROOT / "infra" / "bootstrap_roles.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


br = _bootstrap_roles_module()


class Warehouse:
    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self._conns: dict[str, psycopg2.extensions.connection] = {}

    def login(self, user: str):
        """A real login session as ``user`` (autocommit, so a denied statement does not poison the next)."""
        conn = self._conns.get(user)
        if conn is None or conn.closed:
            conn = psycopg2.connect(
                self.admin_url, user=user, password="unused-by-trust-auth"
            )
            conn.autocommit = True
            self._conns[user] = conn
        return conn

    def admin(self):
        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        return conn

    def close(self):
        for conn in self._conns.values():
            conn.close()


def q(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def build_sample(conn) -> set[str]:
    """As the transformer: build the sample into a fresh marts_build; returns the mart schemas present before."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select nspname from pg_namespace where nspname in ('marts', 'marts_build')"
        )
        present = {r[0] for r in cur.fetchall()}
        if "marts_build" in present:
            cur.execute("drop schema marts_build cascade")
        cur.execute("create schema marts_build")
        cur.execute("set local search_path = marts_build")
        cur.execute(FIXTURE.read_text(encoding="utf-8"))
        cur.execute(
            "create view marts_build.v_budget_red as select hospital_code, insurance_type, as_of_date, pace"
            " from marts_build.fct_budget_consumption where alert_level = 'red'"
        )
    return present


def swap_sample(conn, present: set[str]) -> None:
    """The publish transaction (same statements as yibao.pipeline.publish): swap and secure."""
    with conn, conn.cursor() as cur:
        if "marts" in present:
            cur.execute("alter schema marts rename to marts_previous")
        cur.execute("alter schema marts_build rename to marts")
        if "marts" in present:
            cur.execute("alter schema marts_previous rename to marts_build")
        cur.execute("select audit.apply_marts_security('marts')")


def publish_sample(wh: Warehouse) -> None:
    """As the transformer: build the sample into marts_build, then swap and secure in one transaction."""
    conn = psycopg2.connect(wh.admin_url, user="t_dbt")
    try:
        swap_sample(conn, build_sample(conn))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def wh(warehouse):
    from yibao import db

    admin = psycopg2.connect(warehouse.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"drop database if exists {DB} with (force)")
        cur.execute(f"create database {DB}")
    admin.close()
    url = warehouse.rsplit("/", 1)[0] + "/" + DB
    conn = psycopg2.connect(url)
    db.bootstrap(conn)
    db.bootstrap(conn)  # idempotent
    logins = br.parse_logins(LOGINS)
    br.ensure_logins(conn, logins, {login.user: f"pw-{login.user}" for login in logins})
    with conn.cursor() as cur:
        # a reference snapshot the loader wrote (two loads; the latest is the truth)
        cur.execute(
            "insert into raw.load_ledger (file_kind, source_file, sha256, status)"
            " values ('reference:hospitals', 'reference/hospitals.csv', 'a', 'loaded'),"
            "        ('reference:hospitals', 'reference/hospitals.csv', 'b', 'loaded') returning load_id"
        )
        first, latest = (r[0] for r in cur.fetchall())
        cur.execute(
            "insert into raw.ref_hospitals (load_id, source_row, hospital_code, hospital_name, county_code)"
            " values (%(a)s, 1, 'H41070200001', 'x', '410703'),"
            "        (%(b)s, 1, 'H41070200001', 'x', '410702'), (%(b)s, 2, 'H41070200002', 'x', '410702'),"
            "        (%(b)s, 3, 'H41070300001', 'x', '410703'), (%(b)s, 4, 'H41070300002', 'x', '410703')",
            {"a": first, "b": latest},
        )
    conn.commit()
    conn.close()
    w = Warehouse(url)
    publish_sample(w)
    yield w
    w.close()


def mart_tables(wh) -> list[tuple[str, bool]]:
    """(table, has hospital_code) for every table and view in marts."""
    rows = q(
        wh.admin(),
        "select c.relname, exists (select 1 from pg_attribute a where a.attrelid = c.oid"
        "   and a.attname = 'hospital_code' and not a.attisdropped)"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'marts' and c.relkind in ('r', 'v') order by 1",
    )
    assert len(rows) >= 11
    return rows


# --- the roles themselves -----------------------------------------------------------------------


def test_group_roles_cannot_log_in_and_logins_are_plain(wh):
    rows = dict(
        q(
            wh.admin(),
            "select rolname, rolcanlogin from pg_roles where rolname = any(%s)",
            (
                [
                    "yibao_loader",
                    "yibao_transformer",
                    "bi_reader",
                    "yibao_county",
                    "county_410702",
                ],
            ),
        )
    )
    assert rows == dict.fromkeys(rows, False) and len(rows) == 5
    attrs = q(
        wh.admin(),
        "select rolname, rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolpassword"
        " from pg_authid where rolname like 't\\_%' order by 1",
    )
    assert [a[0] for a in attrs] == ["t_bi", "t_dbt", "t_hq", "t_load", "t_wb"]
    for name, canlogin, superuser, bypass, createrole, password in attrs:
        assert canlogin and not superuser and not bypass and not createrole, name
        assert password.startswith("SCRAM-SHA-256$"), (
            name
        )  # a verifier, never the clear text
        assert "pw-" not in password


def test_county_roles_are_registered(wh):
    assert q(
        wh.admin(),
        "select role_name::text, county_code from audit.county_role order by 1",
    ) == [("county_410702", "410702"), ("county_410703", "410703")]
    member_of = q(
        wh.admin(), "select pg_has_role('county_410702', 'yibao_county', 'MEMBER')"
    )[0][0]
    assert member_of


# --- loader -------------------------------------------------------------------------------------


def test_loader_writes_raw(wh):
    c = wh.login("t_load")
    assert (
        q(c, "select current_user")[0][0] == "yibao_loader"
    )  # SET ROLE at login: objects owned by the group
    (load_id,) = q(
        c,
        "insert into raw.load_ledger (file_kind, hospital_code, business_date, source_file, sha256,"
        " status) values ('purchase', 'H41070200001', '2025-01-31', 'x.csv', 'loader-test', 'loaded')"
        " returning load_id",
    )[0]
    q(
        c,
        "insert into raw.purchase (load_id, business_date, source_file, source_row, purchase_line_id,"
        " hospital_code) values (%s, '2025-01-31', 'x.csv', 1, 'P1', 'H41070200001')",
        (load_id,),
    )
    q(
        c,
        "insert into raw.quarantine (load_id, file_kind, source_file, source_row, reason_code)"
        " values (%s, 'purchase', 'x.csv', 2, 'bad_date')",
        (load_id,),
    )
    assert (
        q(c, "select count(*) from raw.purchase where load_id = %s", (load_id,))[0][0]
        == 1
    )
    q(
        c, "delete from raw.purchase where load_id = %s", (load_id,)
    )  # a retried load replaces its rows
    q(c, "insert into audit.run_log (run_id, step, status) values ('t', 'load', 'ok')")


@pytest.mark.parametrize(
    "sql",
    [
        "select count(*) from marts.fct_settlement_monthly",
        "select count(*) from marts_build.fct_settlement_monthly",
        "select count(*) from audit.publish_log",
        "select count(*) from audit.county_role",
        "create table staging.loader_was_here (x int)",
        "create table raw.loader_was_here (x int)",
        "truncate raw.purchase",
    ],
)
def test_loader_cannot_leave_raw(wh, sql):
    with pytest.raises(DENIED):
        q(wh.login("t_load"), sql)


# --- transformer --------------------------------------------------------------------------------


def test_transformer_builds_in_its_schemas(wh):
    c = wh.login("t_dbt")
    assert q(c, "select current_user")[0][0] == "yibao_transformer"
    for schema in ("staging", "intermediate", "seeds", "marts_build"):
        q(c, f"drop table if exists {schema}.probe")
        q(
            c,
            f"create table {schema}.probe as select count(*) as n from raw.ref_hospitals",
        )
        q(c, f"insert into {schema}.probe values (1)")
        assert q(c, f"select count(*) from {schema}.probe")[0][0] == 2
        owner = q(
            c,
            f"select tableowner from pg_tables where schemaname = '{schema}' and tablename = 'probe'",
        )
        assert owner == [("yibao_transformer",)]
        q(c, f"drop table {schema}.probe")
    q(
        c,
        "create or replace view staging.stg_hospitals as select hospital_code from raw.ref_hospitals",
    )
    q(
        c,
        "insert into audit.run_log (run_id, step, status) values ('t', 'transform', 'ok')",
    )
    # it reads every mart in full (its own policy), e.g. for reports and mart validations
    assert q(c, "select count(*) from marts.dim_hospital")[0][0] == 4


@pytest.mark.parametrize(
    "sql",
    [
        "insert into raw.purchase (load_id, business_date, source_file, source_row) values (1, '2025-01-01', 'x', 1)",
        "delete from raw.quarantine",
        "update raw.load_ledger set status = 'rejected'",
        "insert into audit.county_role (role_name, county_code) values ('county_410703', '410702')",
        "delete from audit.county_role",
        "select audit.create_county_role('410799')",
        "create role sneaky",
    ],
)
def test_transformer_cannot_write_raw_or_the_county_mapping(wh, sql):
    with pytest.raises(DENIED):
        q(wh.login("t_dbt"), sql)


# --- bi_reader ----------------------------------------------------------------------------------


def test_bi_reader_reads_every_mart_in_full(wh):
    c = wh.login("t_bi")
    admin = wh.admin()
    for table, _ in mart_tables(wh):
        total = q(admin, f"select count(*) from marts.{table}")[0][0]
        assert total > 0, table
        assert q(c, f"select count(*) from marts.{table}")[0][0] == total, table


@pytest.mark.parametrize(
    "sql",
    [
        "select count(*) from raw.purchase",
        "select count(*) from raw.quarantine",
        "select count(*) from raw.load_ledger",
        "select count(*) from raw.ref_hospitals",
        "select count(*) from staging.stg_hospitals",
        "select count(*) from marts_build.fct_budget_consumption",
        "select count(*) from audit.publish_log",
        "select count(*) from audit.hospital_county",
        "select rls.visible_hospital_codes(current_user)",
        "insert into marts.dim_date values ('2030-01-01', 2030, 1, true)",
        "update marts.fct_settlement_monthly set paid_amount = 0",
        "delete from marts.fct_budget_consumption",
        "create table marts.bi_was_here (x int)",
    ],
)
def test_bi_reader_sees_marts_only(wh, sql):
    with pytest.raises(DENIED):
        q(wh.login("t_bi"), sql)


# --- county roles (row-level security) ----------------------------------------------------------


def _county_view(wh, user: str, county: str):
    c = wh.login(user)
    admin = wh.admin()
    for table, has_hospital in mart_tables(wh):
        if has_hospital:
            seen = {
                r[0] for r in q(c, f"select distinct hospital_code from marts.{table}")
            }
            present = {
                r[0]
                for r in q(admin, f"select distinct hospital_code from marts.{table}")
            }
            assert seen == HOSPITALS[county] & present, table
            assert seen, f"{table}: the sample has rows of county {county}"
            expected = q(
                admin,
                f"select count(*) from marts.{table} where hospital_code = any(%s)",
                (sorted(HOSPITALS[county]),),
            )[0][0]
            assert q(c, f"select count(*) from marts.{table}")[0][0] == expected, table
        else:  # not per hospital (dim_date): everything
            assert (
                q(c, f"select count(*) from marts.{table}")[0][0]
                == q(admin, f"select count(*) from marts.{table}")[0][0]
            )


@pytest.mark.parametrize("user,county", [("t_hq", "410702"), ("t_wb", "410703")])
def test_county_role_sees_exactly_its_hospitals_on_every_mart(wh, user, county):
    _county_view(wh, user, county)


def test_county_role_cannot_filter_its_way_out(wh):
    c = wh.login("t_hq")
    # asking for another county's rows explicitly returns nothing, and so does the view
    assert (
        q(
            c,
            "select count(*) from marts.fct_settlement_monthly where hospital_code = 'H41070300001'",
        )[0][0]
        == 0
    )
    assert {
        r[0] for r in q(c, "select hospital_code from marts.v_budget_red")
    } <= HOSPITALS["410702"]
    # the policy helper only answers for roles the session's user holds
    assert q(c, "select rls.visible_hospital_codes('county_410703')")[0][0] == []
    assert (
        set(q(c, "select rls.visible_hospital_codes(current_user)")[0][0])
        == HOSPITALS["410702"]
    )


@pytest.mark.parametrize(
    "sql",
    [
        "select count(*) from raw.claim",
        "select count(*) from marts_build.dim_hospital",
        "select count(*) from audit.hospital_county",
        "update marts.fct_budget_consumption set alert_level = 'green'",
        "insert into marts.dim_hospital values ('H41070200009', 'x', null, '410702', null)",
    ],
)
def test_county_role_is_a_reader_of_marts_only(wh, sql):
    with pytest.raises(DENIED):
        q(wh.login("t_hq"), sql)


def test_views_run_with_the_invokers_rights(wh):
    opts = q(
        wh.admin(),
        "select reloptions from pg_class where oid = 'marts.v_budget_red'::regclass",
    )[0][0]
    assert "security_invoker=true" in opts
    admin_rows = q(wh.admin(), "select count(*) from marts.v_budget_red")[0][0]
    hq = q(wh.login("t_hq"), "select count(*) from marts.v_budget_red")[0][0]
    wb = q(wh.login("t_wb"), "select count(*) from marts.v_budget_red")[0][0]
    assert 0 < hq < admin_rows and hq + wb == admin_rows


def test_every_mart_table_forces_row_level_security(wh):
    rows = q(
        wh.admin(),
        "select c.relname, c.relrowsecurity, c.relforcerowsecurity,"
        " (select count(*) from pg_policy p where p.polrelid = c.oid)"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'marts' and c.relkind in ('r', 'p')",
    )
    assert len(rows) >= 10
    assert all(
        enabled and forced and policies == 3 for _, enabled, forced, policies in rows
    ), rows


def test_table_owner_bypass_is_closed_by_force(wh):
    """Even a county role that owns a mart table sees only its hospitals; without FORCE it would see all."""
    admin = wh.admin()
    q(admin, "drop table if exists marts.owner_probe")
    q(
        admin,
        "create table marts.owner_probe as select * from marts.fct_settlement_monthly",
    )
    q(admin, "alter table marts.owner_probe owner to yibao_transformer")
    q(wh.login("t_dbt"), "select audit.apply_marts_security('marts')")
    q(admin, "alter table marts.owner_probe owner to county_410702")
    try:
        total = q(admin, "select count(*) from marts.owner_probe")[0][0]
        seen = {
            r[0]
            for r in q(
                wh.login("t_hq"), "select distinct hospital_code from marts.owner_probe"
            )
        }
        assert seen == HOSPITALS["410702"]
        q(admin, "alter table marts.owner_probe no force row level security")
        assert (
            q(wh.login("t_hq"), "select count(*) from marts.owner_probe")[0][0] == total
        )
    finally:
        q(admin, "drop table marts.owner_probe")


def test_security_survives_reapply_and_republish(wh):
    c = wh.login("t_dbt")
    before = q(wh.admin(), "select count(*) from audit.marts_security_log")[0][0]
    assert q(c, "select audit.apply_marts_security('marts')")[0][0] >= 11
    assert q(c, "select audit.apply_marts_security('marts')")[0][0] >= 11
    publish_sample(wh)  # tomorrow night: a new build swapped in and re-secured
    assert (
        q(wh.admin(), "select count(*) from audit.marts_security_log")[0][0]
        == before + 3
    )
    test_every_mart_table_forces_row_level_security(wh)
    for user, county in (("t_hq", "410702"), ("t_wb", "410703")):
        _county_view(wh, user, county)
    # the swapped-out build schema (yesterday's marts) is not readable by anyone but the transformer
    for user in ("t_bi", "t_hq"):
        with pytest.raises(DENIED):
            q(wh.login(user), "select count(*) from marts_build.fct_budget_consumption")


def test_publish_waits_for_a_table_lock_instead_of_deadlocking(wh):
    """An autovacuum of a freshly built table must not deadlock the publish.

    The session below does what an autovacuum's ANALYZE does: it holds SHARE UPDATE EXCLUSIVE on a
    build table, then changes that table's pg_class row (autovacuum's in-place update of its
    statistics). If the publish changed the row first (a GRANT) and only then asked for the table's
    lock (ALTER TABLE), each would wait for the other and PostgreSQL would abort one. The publish
    locks every table before it changes anything, so it simply waits, and both go through.
    """
    dbt = psycopg2.connect(wh.admin_url, user="t_dbt")
    blocker = psycopg2.connect(wh.admin_url)
    outcome: dict[str, BaseException | None] = {}
    try:
        present = build_sample(dbt)
        with blocker.cursor() as cur:
            cur.execute("set statement_timeout = '60s'")
            cur.execute("lock table marts_build.dim_date in share update exclusive mode")

        def publish() -> None:
            try:
                swap_sample(dbt, present)
                outcome["publish"] = None
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                outcome["publish"] = exc

        swap = threading.Thread(target=publish)
        swap.start()
        admin = wh.admin()
        deadline = time.monotonic() + 30
        waiting: list = []
        while not waiting and time.monotonic() < deadline and swap.is_alive():
            waiting = q(
                admin,
                "select pid from pg_stat_activity where usename = 't_dbt'"
                " and wait_event_type = 'Lock' and %s = any(pg_blocking_pids(pid))",
                (blocker.get_backend_pid(),),
            )
            time.sleep(0.05)
        assert waiting, f"the publish never waited for the blocker's lock: {outcome}"
        with blocker.cursor() as cur:  # the blocker's own catalog change, as autovacuum's last step
            cur.execute("grant select on marts_build.dim_date to bi_reader")
        blocker.commit()
        swap.join(60)
        assert not swap.is_alive()
        assert outcome == {"publish": None}
        assert q(admin, "select count(*) from marts.dim_date")[0][0] > 0
        test_every_mart_table_forces_row_level_security(wh)
    finally:
        blocker.close()
        dbt.close()


def test_materialized_views_with_hospital_rows_go_to_bi_only(wh):
    c = wh.login("t_dbt")
    q(c, "drop materialized view if exists marts.mv_paid")
    q(
        c,
        "create materialized view marts.mv_paid as select hospital_code, sum(paid_amount) as paid"
        " from marts.fct_settlement_monthly group by 1",
    )
    try:
        q(c, "select audit.apply_marts_security('marts')")
        assert q(wh.login("t_bi"), "select count(*) from marts.mv_paid")[0][0] == 4
        with pytest.raises(DENIED):
            q(wh.login("t_hq"), "select count(*) from marts.mv_paid")
    finally:
        q(c, "drop materialized view marts.mv_paid")


def test_hospital_county_falls_back_to_the_latest_hospital_reference(wh):
    """Without a dim_hospital in the published schema the mapping comes from the latest raw load."""
    c = wh.login("t_dbt")
    q(c, "alter table marts.dim_hospital rename to dim_hospital_renamed")
    try:
        q(c, "select audit.apply_marts_security('marts')")
        rows = q(
            wh.admin(),
            "select hospital_code, county_code from audit.hospital_county order by 1",
        )
        assert rows == [
            ("H41070200001", "410702"),
            ("H41070200002", "410702"),
            ("H41070300001", "410703"),
            ("H41070300002", "410703"),
        ]  # not the first load's 410703
        _county_view(wh, "t_hq", "410702")
    finally:
        q(c, "alter table marts.dim_hospital_renamed rename to dim_hospital")
        q(c, "select audit.apply_marts_security('marts')")


def test_hospitals_missing_from_the_mapping_are_hidden_from_counties(wh):
    admin = wh.admin()
    c = wh.login("t_dbt")
    q(
        c,
        "insert into marts.fct_abnormal_use_alerts values ('x', 'H41079900001', 'D9', '2025-03-01', 1, 1)",
    )
    try:
        for user in ("t_hq", "t_wb"):
            seen = {
                r[0]
                for r in q(
                    wh.login(user),
                    "select hospital_code from marts.fct_abnormal_use_alerts",
                )
            }
            assert "H41079900001" not in seen
        assert (
            q(
                wh.login("t_bi"),
                "select count(*) from marts.fct_abnormal_use_alerts"
                " where hospital_code = 'H41079900001'",
            )[0][0]
            == 1
        )
    finally:
        q(
            admin,
            "delete from marts.fct_abnormal_use_alerts where hospital_code = 'H41079900001'",
        )


# --- bootstrap_roles.py ---------------------------------------------------------------------------


def test_login_spec_parsing():
    logins = br.parse_logins(
        "a:bi_reader, etl:yibao_loader+yibao_transformer\n cb:county_410702"
    )
    assert [(x.user, x.groups) for x in logins] == [
        ("a", ("bi_reader",)),
        ("etl", ("yibao_loader", "yibao_transformer")),
        ("cb", ("county_410702",)),
    ]
    assert logins[2].password_env == "YIBAO_DB_PASSWORD_CB"
    for bad in (
        "a",
        "a:",
        "a:superuser",
        "A:bi_reader",
        "bi_reader:bi_reader",
        "county_410702:bi_reader",
        "a:county_4107",
        "a:bi_reader a:bi_reader",
    ):
        with pytest.raises(br.LoginSpecError):
            br.parse_logins(bad)


def test_missing_password_is_refused(capsys):
    env = {
        "YIBAO_DB_LOGINS": "superset:bi_reader cb:county_410702",
        "YIBAO_DB_PASSWORD_SUPERSET": "x",
    }
    assert br.main(["--check"], environ=env) == 2
    assert "YIBAO_DB_PASSWORD_CB" in capsys.readouterr().err
    env["YIBAO_DB_PASSWORD_CB"] = "y"
    assert br.main(["--check"], environ=env) == 0
    out = capsys.readouterr().out
    assert "cb: county_410702" in out and "y" not in out.replace("county", "").replace(
        "YIBAO", ""
    )


def test_login_memberships_follow_the_spec(wh):
    """Re-running with a changed spec moves a user between groups (no stale membership is left)."""
    conn = psycopg2.connect(wh.admin_url)
    try:
        br.ensure_logins(
            conn, br.parse_logins("t_mover:county_410702"), {"t_mover": "a"}
        )
        br.ensure_logins(
            conn, br.parse_logins("t_mover:county_410703"), {"t_mover": "b"}
        )
        groups = q(
            conn,
            "select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid"
            " join pg_roles u on u.oid = m.member where u.rolname = 't_mover'",
        )
        assert groups == [("county_410703",)]
        m = psycopg2.connect(wh.admin_url, user="t_mover")
        try:
            seen = {
                r[0]
                for r in q(
                    m, "select distinct hospital_code from marts.fct_settlement_monthly"
                )
            }
        finally:
            m.close()
        assert seen == HOSPITALS["410703"]
    finally:
        conn.close()
