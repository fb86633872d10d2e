"""The embedded PostgreSQL: the configured port is the one it listens on, and a clash is named."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pwd
import subprocess

import psycopg2
import pytest


def test_the_configured_port_wins_over_the_one_written_at_initdb(tmp_path, free_port):
    from yibao import pg
    from yibao.config import Settings

    first = Settings(home=tmp_path / "home", database_url=None, pg_port=free_port())
    second = dataclasses.replace(first, pg_port=free_port())
    pg.start(first)
    try:
        assert pg.running_port(first) == first.pg_port
        with pytest.raises(pg.PostgresError, match=f"already running on port {first.pg_port}"):
            pg.start(second)  # same data directory, another port, while running: said plainly
        pg.stop(first)
        assert pg.running_port(first) is None

        url = pg.start(second)  # postgresql.conf still says the first port
        assert pg.running_port(second) == second.pg_port
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("show port")
            assert cur.fetchone()[0] == str(second.pg_port)
    finally:
        pg.stop(first)


_start_together = None


def _wait_for_the_others(barrier) -> None:
    global _start_together
    _start_together = barrier


def _system_user_in_a_fresh_process(name: str) -> tuple[int, int]:
    from yibao import pg

    pg.SYSTEM_USER = name
    _start_together.wait()  # all four at once: the race of a fresh machine, every time
    user = pg._system_user()
    return user.pw_uid, user.pw_gid


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as a system user only under root")
def test_concurrent_first_starts_create_one_system_user():
    """Test workers starting their servers at once on a fresh machine: one user, whom every process sees
    (two concurrent useradd rewrote /etc/passwd, and one worker ran initdb as a uid that was gone)."""
    name = f"yibao-pg-t{os.getpid()}"
    try:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(4, initializer=_wait_for_the_others, initargs=(ctx.Barrier(4),)) as pool:
            seen = pool.map(_system_user_in_a_fresh_process, [name] * 4)
        user = pwd.getpwnam(name)
        assert set(seen) == {(user.pw_uid, user.pw_gid)}
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as a system user only under root")
def test_a_data_directory_of_an_earlier_system_user_is_taken_over(tmp_path, free_port):
    """A machine rebuilt with the data kept: the system user is created again with another uid, and
    PostgreSQL refuses a data directory it does not own; start gives it to the current user."""
    from yibao import pg
    from yibao.config import Settings

    s = Settings(home=tmp_path / "home", database_url=None, pg_port=free_port())
    pg.start(s)
    pg.stop(s)
    nobody = pwd.getpwnam("nobody")
    for parent, dirs, files in os.walk(s.pgdata):
        for name in [parent, *(os.path.join(parent, n) for n in dirs + files)]:
            os.chown(name, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)
    try:
        url = pg.start(s)
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("select 1")
        assert (s.pgdata / "base").stat().st_uid == pwd.getpwnam(pg.SYSTEM_USER).pw_uid
    finally:
        pg.stop(s)


def test_shared_buffers_default_to_a_quarter_of_memory_within_bounds(monkeypatch):
    from yibao import pg

    monkeypatch.delenv("YIBAO_PG_SHARED_BUFFERS", raising=False)
    for memory, expected in [(24 << 30, "6144MB"), (64 << 30, "8192MB"), (256 << 20, "128MB"), (None, "512MB")]:
        monkeypatch.setattr(pg, "memory_limit_bytes", lambda m=memory: m)
        assert pg.shared_buffers() == expected
    monkeypatch.setenv("YIBAO_PG_SHARED_BUFFERS", "2GB")
    assert pg.shared_buffers() == "2GB"


def test_shared_buffers_reach_new_and_old_data_directories(tmp_path, free_port, monkeypatch):
    """The size is written at each start, so a data directory made before it existed gets it too
    (its postgresql.conf still says 512MB), and so does a change of YIBAO_PG_SHARED_BUFFERS."""
    from yibao import pg
    from yibao.config import Settings

    s = Settings(home=tmp_path / "home", database_url=None, pg_port=free_port())

    def shared_buffers() -> str:
        with psycopg2.connect(pg.url(s, "postgres")) as conn, conn.cursor() as cur:
            cur.execute("show shared_buffers")
            return cur.fetchone()[0]

    monkeypatch.setenv("YIBAO_PG_SHARED_BUFFERS", "160MB")
    pg.start(s)
    try:
        assert shared_buffers() == "160MB"
        pg.stop(s)
        # as an installation of before 2026-12-04 left it: the size in postgresql.conf, no include
        conf = s.pgdata / "postgresql.conf"
        conf.write_text(
            conf.read_text(encoding="utf-8").replace(f"include_if_exists = '{pg.MEMORY_CONF}'", "")
            + "shared_buffers = 512MB\n",
            encoding="utf-8",
        )
        (s.pgdata / pg.MEMORY_CONF).unlink()
        monkeypatch.setenv("YIBAO_PG_SHARED_BUFFERS", "144MB")
        pg.start(s)
        assert shared_buffers() == "144MB"
        assert conf.read_text(encoding="utf-8").count(f"include_if_exists = '{pg.MEMORY_CONF}'") == 1
    finally:
        pg.stop(s)


def test_flush_writes_checkpoints_the_server(warehouse):
    """pg.flush_writes, which the benchmarks call before a timed run: a checkpoint (the server's
    dirty pages written) before the operating system's sync."""
    from yibao import pg

    def checkpoints() -> int:
        with psycopg2.connect(warehouse) as conn, conn.cursor() as cur:
            cur.execute("select checkpoints_req from pg_stat_bgwriter")
            return cur.fetchone()[0]

    before = checkpoints()
    assert pg.flush_writes() >= 0
    assert checkpoints() == before + 1
