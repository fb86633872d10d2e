"""Create the deployment's LOGIN users of the warehouse from the environment (idempotent).

The group roles (yibao_loader, yibao_transformer, bi_reader, yibao_county and county_<code>) come
from infra/sql/040_roles.sql; passwords never appear in SQL or in the repository. This script
runs once per deployment, and again whenever a user or password changes, as the bootstrap
(administrator) role: in docker-compose it is the ``warehouse-init`` service.

Environment:

| variable | example | meaning |
|---|---|---|
| ``YIBAO_DATABASE_URL`` | ``postgresql://yibao_admin:…@warehouse-db:5432/yibao`` | an administrator (database owner or superuser); unset = embedded server |
| ``YIBAO_DB_LOGINS`` | ``yibao_load:yibao_loader yibao_dbt:yibao_transformer superset:bi_reader cb_410702:county_410702`` | ``user:group[+group…]`` pairs, separated by spaces or commas |
| ``YIBAO_DB_PASSWORD_<USER>`` | ``YIBAO_DB_PASSWORD_SUPERSET=…`` | the password of each user (upper case, non-alphanumerics as ``_``) |

A group ``county_<6-digit code>`` that does not exist yet is created with
``audit.create_county_role``. Passwords are sent to the server as SCRAM-SHA-256 verifiers computed
on the client, so the clear text never reaches the server's statement log. A login whose only
group is a pipeline role (yibao_loader or yibao_transformer) gets ``SET ROLE`` to that group at
login, so the objects it creates are owned by the group, not by the person.

    python infra/bootstrap_roles.py            # bootstrap the database, then the logins
    python infra/bootstrap_roles.py --check    # only parse the environment and report
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

GROUPS = ("yibao_loader", "yibao_transformer", "bi_reader")
PIPELINE_GROUPS = ("yibao_loader", "yibao_transformer")
COUNTY_GROUP = re.compile(r"^county_(\d{6})$")
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RESERVED = {"postgres", "yibao_admin", "yibao_county", "public"} | set(GROUPS)


class LoginSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Login:
    user: str
    groups: tuple[str, ...]

    @property
    def password_env(self) -> str:
        return password_env(self.user)


def password_env(user: str) -> str:
    return "YIBAO_DB_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


def parse_logins(spec: str) -> list[Login]:
    """``"alice:bi_reader bob:yibao_loader+yibao_transformer"`` → logins; raises LoginSpecError."""
    logins: dict[str, Login] = {}
    for item in re.split(r"[\s,]+", spec.strip()):
        if not item:
            continue
        user, sep, groups_text = item.partition(":")
        if not sep or not groups_text:
            raise LoginSpecError(
                f"YIBAO_DB_LOGINS item {item!r}: expected user:group[+group…]"
            )
        if not NAME.match(user):
            raise LoginSpecError(
                f"YIBAO_DB_LOGINS item {item!r}: user name must be lower-case letters, digits, _"
            )
        if user in RESERVED or COUNTY_GROUP.match(user):
            raise LoginSpecError(
                f"YIBAO_DB_LOGINS item {item!r}: {user!r} is a group or reserved name, not a login"
            )
        groups = tuple(g for g in groups_text.split("+") if g)
        for g in groups:
            if g not in GROUPS and not COUNTY_GROUP.match(g):
                raise LoginSpecError(
                    f"YIBAO_DB_LOGINS item {item!r}: unknown group {g!r} "
                    f"(one of {', '.join(GROUPS)} or county_<6-digit code>)"
                )
        if user in logins:
            raise LoginSpecError(f"YIBAO_DB_LOGINS: user {user!r} is listed twice")
        logins[user] = Login(user, groups)
    return list(logins.values())


def passwords_for(logins: list[Login], environ: Mapping[str, str]) -> dict[str, str]:
    missing = [
        login.password_env for login in logins if not environ.get(login.password_env)
    ]
    if missing:
        raise LoginSpecError("missing password variable(s): " + ", ".join(missing))
    return {login.user: environ[login.password_env] for login in logins}


def ensure_logins(conn, logins: list[Login], passwords: Mapping[str, str]) -> list[str]:
    """Create or update each login (attributes, password, memberships). Returns what was done."""
    from psycopg2 import sql
    from psycopg2.extensions import encrypt_password

    done: list[str] = []
    with conn.cursor() as cur:
        for login in logins:
            for group in login.groups:
                m = COUNTY_GROUP.match(group)
                if m:
                    cur.execute(
                        "select audit.create_county_role(%s, %s)", (m.group(1), group)
                    )
            cur.execute("select 1 from pg_roles where rolname = %s", (login.user,))
            verb = "alter" if cur.fetchone() else "create"
            cur.execute(
                sql.SQL(
                    "{} role {} login nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit"
                ).format(sql.SQL(verb), sql.Identifier(login.user))
            )
            verifier = encrypt_password(
                passwords[login.user], login.user, conn, "scram-sha-256"
            )
            cur.execute(
                sql.SQL("alter role {} password %s").format(sql.Identifier(login.user)),
                (verifier,),
            )
            # memberships: exactly the listed groups among the ones this script manages
            cur.execute(
                "select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid"
                " join pg_roles u on u.oid = m.member where u.rolname = %s",
                (login.user,),
            )
            current = {r[0] for r in cur.fetchall()}
            for group in sorted(current - set(login.groups)):
                if group in GROUPS or COUNTY_GROUP.match(group):
                    cur.execute(
                        sql.SQL("revoke {} from {}").format(
                            sql.Identifier(group), sql.Identifier(login.user)
                        )
                    )
            for group in login.groups:
                cur.execute(
                    sql.SQL("grant {} to {}").format(
                        sql.Identifier(group), sql.Identifier(login.user)
                    )
                )
            if len(login.groups) == 1 and login.groups[0] in PIPELINE_GROUPS:
                cur.execute(
                    sql.SQL("alter role {} set role = {}").format(
                        sql.Identifier(login.user), sql.Identifier(login.groups[0])
                    )
                )
            else:
                cur.execute(
                    sql.SQL("alter role {} reset role").format(
                        sql.Identifier(login.user)
                    )
                )
            done.append(f"{verb}d login {login.user} in {'+'.join(login.groups)}")
    conn.commit()
    return done


def main(
    argv: list[str] | None = None, environ: Mapping[str, str] | None = None
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="only parse the environment and report"
    )
    parser.add_argument(
        "--no-bootstrap", action="store_true", help="do not apply infra/sql first"
    )
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        logins = parse_logins(environ.get("YIBAO_DB_LOGINS", ""))
        passwords = passwords_for(logins, environ)
    except LoginSpecError as exc:
        print(f"bootstrap_roles: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for login in logins:
            print(
                f"{login.user}: {'+'.join(login.groups)} (password from {login.password_env})"
            )
        return 0
    from yibao import db

    conn = db.connect()
    try:
        if not args.no_bootstrap:
            db.bootstrap(conn)
        for line in ensure_logins(conn, logins, passwords):
            print(line)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
