"""The production deployment files, validated as far as this machine allows (no Docker engine, no
Kubernetes): the compose file against the Compose specification's JSON schema, every command the
containers run against the locked Airflow's own CLI parser, the Airflow settings against Airflow's
configuration description, the Helm values against the chart's keys, and the database bootstrap
in production mode (YIBAO_DATABASE_URL set) with the same infra/sql files as the embedded server.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / "infra" / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / "env.example"
HELM_VALUES = ROOT / "infra" / "helm" / "values-production.yaml"
HELM_SCHEMA = ROOT / "infra" / "helm" / "chart-values.subset.schema.json"
DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"
SCALE_OUT_DOC = ROOT / "docs" / "scale-out.md"

VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|PSEUDONYM_KEY")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${V}, ${V:-default}, ${V-default}, ${V:?err}, ${V?err}, $$."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op in (":-", "-"):
            return value if (value if op == ":-" else value is not None) else arg
        if op in (":?", "?") and not (value if op == ":?" else value is not None):
            raise KeyError(f"{name}: {arg}")
        return value or ""

    return VAR.sub(sub, text)


def _strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _map_strings(node, fn):
    if isinstance(node, dict):
        return {
            fn(k) if isinstance(k, str) else k: _map_strings(v, fn)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_map_strings(v, fn) for v in node]
    return fn(node) if isinstance(node, str) else node


def raw_compose() -> dict:
    """The compose file as YAML, before interpolation (comments are not interpolated)."""
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def load_compose(env: dict[str, str]) -> dict:
    return _map_strings(raw_compose(), lambda s: interpolate(s, env))


def compose_vars() -> dict[str, tuple[str | None, str | None]]:
    """Every variable the compose file reads: name -> (operator, argument)."""
    found = {}
    for text in _strings(raw_compose()):
        for m in VAR.finditer(text):
            if m.group(1):
                found[m.group(1)] = (m.group(2), m.group(3))
    return found


def sample_env() -> dict[str, str]:
    """A filled-in .env: env.example with every empty secret set to a dummy, URL-safe value."""
    env = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip() or f"dummy{len(env):02d}"
    return env


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose(sample_env())


@pytest.fixture(scope="module")
def compose_validator():
    schema = json.loads((COMPOSE_DIR / "compose-spec.json").read_text(encoding="utf-8"))
    checker = jsonschema.FormatChecker()

    @checker.checks("duration")
    def _go_duration(
        value,
    ) -> bool:  # Compose durations are Go durations ("10s", "1m30s")
        return (
            not isinstance(value, str)
            or re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", value) is not None
        )

    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema, format_checker=checker)


@pytest.fixture(scope="module")
def airflow_cli():
    from airflow.cli.cli_parser import get_parser

    return get_parser()


@pytest.fixture(scope="module")
def airflow_options() -> dict[str, dict]:
    from airflow.configuration import retrieve_configuration_description

    return {
        s: v["options"]
        for s, v in retrieve_configuration_description(include_providers=True).items()
    }


def _import(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


# --- docker-compose -------------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_spec(compose, compose_validator):
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}"
        for e in compose_validator.iter_errors(compose)
    ]
    assert errors == []


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (
            lambda c: c["services"]["airflow-scheduler"].update(
                comand=["airflow", "scheduler"]
            ),
            "comand",
        ),
        (
            lambda c: c["services"]["warehouse-db"]["healthcheck"].update(
                interval="10 seconds"
            ),
            "duration",
        ),
        (
            lambda c: c["services"]["airflow-scheduler"]["depends_on"][
                "airflow-init"
            ].update(condition="done"),
            "condition",
        ),
        (lambda c: c.update(volums={}), "volums"),
        (
            lambda c: c["services"]["airflow-triggerer"].update(restart=["always"]),
            "restart",
        ),
    ],
)
def test_compose_schema_catches_mistakes(compose, compose_validator, mutate, expected):
    broken = copy.deepcopy(compose)
    mutate(broken)
    messages = " ".join(e.message for e in compose_validator.iter_errors(broken))
    assert messages and (
        expected in messages
        or expected
        in str([list(e.path) for e in compose_validator.iter_errors(broken)])
    )


def test_compose_runs_the_airflow_3_components_and_the_bootstrap(compose):
    services = compose["services"]
    commands = {name: s.get("command") for name, s in services.items()}
    assert commands["airflow-api-server"][:2] == ["airflow", "api-server"]
    assert commands["airflow-scheduler"] == ["airflow", "scheduler"]
    assert commands["airflow-dag-processor"] == ["airflow", "dag-processor"]
    assert commands["airflow-triggerer"] == ["airflow", "triggerer"]
    assert commands["airflow-init"] == ["airflow", "db", "migrate"]
    assert commands["warehouse-init"] == ["python", "infra/bootstrap_roles.py"]
    assert services["warehouse-db"]["image"].startswith(
        "postgres:16"
    )  # same major as the embedded server
    for name in (
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    ):
        s = services[name]
        assert s["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert (
            s["depends_on"]["warehouse-init"]["condition"]
            == "service_completed_successfully"
        )
        assert (
            s["depends_on"]["airflow-init"]["condition"]
            == "service_completed_successfully"
        )
        mounts = {v.split(":")[1]: v for v in s["volumes"]}
        assert (
            mounts["/data/landing"].endswith(":ro") and "/data/yibao/reports" in mounts
        )
    # the image is built from this repository with the locked dependencies
    assert (
        services["airflow-scheduler"]["build"]["dockerfile"]
        == "infra/docker/Dockerfile"
    )
    assert (
        COMPOSE_DIR / services["airflow-scheduler"]["build"]["context"]
    ).resolve() == ROOT


def test_every_container_command_exists_in_the_locked_dependencies(
    compose, airflow_cli
):
    checked = []
    for name, service in compose["services"].items():
        argvs = []
        if service.get("command"):
            argvs.append(service["command"])
        test = service.get("healthcheck", {}).get("test")
        if test and test[0] == "CMD-SHELL":
            argvs.append(shlex.split(test[1]))
        elif test and test[0] == "CMD":
            argvs.append(test[1:])
        for argv in argvs:
            if argv[0] == "airflow":
                airflow_cli.parse_args(
                    argv[1:]
                )  # exits (SystemExit 2) on an unknown command or option
            elif argv[0] == "python":
                if argv[1] == "-c":
                    compile(argv[2], f"{name} healthcheck", "exec")
                else:
                    assert (ROOT / argv[1]).is_file(), (
                        f"{name}: {argv[1]} is not in the image"
                    )
            elif argv[0] in ("postgres", "pg_isready"):
                assert service["image"].startswith("postgres:")
            else:
                pytest.fail(f"{name}: unexpected command {argv}")
            checked.append(argv[0])
    assert checked.count("airflow") >= 7


def test_the_parser_rejects_commands_that_do_not_exist(airflow_cli):
    """So the check above can fail: Celery needs a provider that is not in uv.lock (docs/scale-out.md)."""
    for argv in (
        ["celery", "worker"],
        ["webserver"],
        ["scheduler", "--no-such-option"],
    ):
        with pytest.raises(SystemExit):
            airflow_cli.parse_args(argv)


def test_secrets_come_only_from_the_environment(compose):
    text = COMPOSE.read_text(encoding="utf-8")
    variables = compose_vars()
    secrets = {
        name: spec for name, spec in variables.items() if SECRET_NAME.search(name)
    }
    assert len(secrets) >= 8
    for name, (op, _) in secrets.items():
        assert op == ":?", f"${{{name}}} must be required (:?) with no default"
    # no literal password in any URL
    for url in re.findall(r"[a-z+]+://[^\s\"']+", text):
        userinfo = url.split("://", 1)[1].split("@", 1)
        if len(userinfo) == 2 and ":" in userinfo[0]:
            assert userinfo[0].split(":", 1)[1].startswith("${"), url
    # every variable is documented in env.example, and no secret has a value there
    example = sample_env()
    documented = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert set(variables) <= documented
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if not line.startswith("#") and SECRET_NAME.search(key):
            assert value == "", f"env.example must not carry a value for {key}"
    # compose refuses to start without them
    missing = dict(example)
    del missing["AIRFLOW_JWT_SECRET"]
    with pytest.raises(KeyError, match="AIRFLOW_JWT_SECRET"):
        load_compose(missing)


def test_every_login_of_the_example_has_a_password_variable():
    spec = importlib.util.spec_from_file_location(
        "bootstrap_roles_cfg", ROOT / "infra" / "bootstrap_roles.py"
    )
    br = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = br
    spec.loader.exec_module(br)
    env = sample_env()
    logins = br.parse_logins(env["YIBAO_DB_LOGINS"])
    assert {"yibao_etl", "yibao_load", "yibao_dbt", "superset"} <= {
        x.user for x in logins
    }
    assert br.passwords_for(logins, env)  # raises if one is missing
    # the Airflow connections and the pipeline URL use logins that the init job creates
    compose = load_compose(env)
    environment = compose["services"]["airflow-scheduler"]["environment"]
    users = {
        re.match(r"postgresql://([^:]+):", environment[k]).group(1)
        for k in (
            "AIRFLOW_CONN_YIBAO_LOADER",
            "AIRFLOW_CONN_YIBAO_TRANSFORMER",
            "YIBAO_DATABASE_URL",
        )
    }
    assert users <= {x.user for x in logins}


def _check_airflow_options(
    section_options: dict[str, dict[str, str]],
    airflow_options,
    not_installed: frozenset[str] = frozenset(),
) -> int:
    """Check option names and types; sections of providers that are not installed are skipped."""
    n = 0
    for section, options in section_options.items():
        if section in not_installed:
            continue
        assert section in airflow_options, f"unknown Airflow config section [{section}]"
        for key, value in options.items():
            spec = airflow_options[section].get(key)
            assert spec is not None, f"unknown Airflow option [{section}] {key}"
            value = str(value)
            if spec.get("type") == "integer":
                int(value)
            elif spec.get("type") == "float":
                float(value)
            elif spec.get("type") == "boolean":
                assert value.lower() in ("true", "false", "t", "f", "1", "0"), (
                    f"[{section}] {key}={value}"
                )
            n += 1
    return n


def _airflow_env_sections(environment: dict) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    for name, value in environment.items():
        m = re.fullmatch(r"AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)", name)
        if m:
            sections.setdefault(m.group(1).lower(), {})[m.group(2).lower()] = value
    return sections


def test_airflow_settings_are_valid_for_the_locked_airflow(compose, airflow_options):
    from airflow.executors.executor_loader import ExecutorLoader
    from airflow.models import Connection

    environment = compose["services"]["airflow-scheduler"]["environment"]
    sections = _airflow_env_sections(environment)
    assert _check_airflow_options(sections, airflow_options) >= 15
    assert _import(ExecutorLoader.executors[sections["core"]["executor"]])
    assert sections["database"]["sql_alchemy_conn"].startswith(
        "postgresql+psycopg2://airflow:"
    )
    assert sections["core"]["execution_api_server_url"].startswith(
        "http://airflow-api-server:8080/"
    )
    for conn_id in ("yibao_loader", "yibao_transformer"):
        conn = Connection(
            conn_id=conn_id, uri=environment[f"AIRFLOW_CONN_{conn_id.upper()}"]
        )
        assert (conn.conn_type, conn.host, conn.port, conn.schema) == (
            "postgres",
            "warehouse-db",
            5432,
            "yibao",
        )
        assert conn.password
    with pytest.raises(AssertionError, match="unknown Airflow option"):
        _check_airflow_options({"core": {"no_such_option": "1"}}, airflow_options)


def test_airflow_reads_the_compose_configuration(compose, airflow_options, monkeypatch):
    """Airflow's own configuration parser, given the containers' environment, reads back every
    option with its typed getter (getint, getboolean, …) and sees our values, not its defaults."""
    from airflow.configuration import conf

    environment = compose["services"]["airflow-scheduler"]["environment"]
    for name in list(os.environ):
        if name.startswith("AIRFLOW__"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    getters = {
        "integer": conf.getint,
        "boolean": conf.getboolean,
        "float": conf.getfloat,
    }
    for section, options in _airflow_env_sections(environment).items():
        for key, value in options.items():
            kind = airflow_options[section][key].get("type")
            got = getters.get(kind, conf.get)(section, key)
            expected = {
                "integer": int,
                "boolean": lambda v: v.lower() == "true",
                "float": float,
            }.get(kind, str)(value)
            assert got == expected, (
                f"[{section}] {key}: Airflow reads {got!r}, compose sets {value!r}"
            )
    assert conf.get("core", "executor") == "LocalExecutor"


def test_initdb_script_is_valid_bash():
    for script in (COMPOSE_DIR / "initdb").glob("*.sh"):
        assert os.access(script, os.X_OK), f"{script.name} must be executable"
        subprocess.run(["bash", "-n", str(script)], check=True)


# --- image ---------------------------------------------------------------------------------------


def test_dockerfile_installs_exactly_the_lock():
    text = DOCKERFILE.read_text(encoding="utf-8")
    syncs = re.findall(r"uv sync ([^\n\\&]+)", text)
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)
    base = re.search(r"^FROM python:(\d+\.\d+)", text, re.MULTILINE).group(1)
    assert (
        base == f"{sys.version_info.major}.{sys.version_info.minor}"
    )  # the development interpreter
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]["requires-python"]
    lo, hi = re.findall(r"(\d+\.\d+)", requires)[:2]
    assert (
        tuple(map(int, lo.split(".")))
        <= tuple(map(int, base.split(".")))
        < tuple(map(int, hi.split(".")))
    )
    for src in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for name in src.split():
            assert (ROOT / name).exists(), f"COPY {name}: not in the repository"
    ignore = (
        (DOCKERFILE.parent / "Dockerfile.dockerignore")
        .read_text(encoding="utf-8")
        .split()
    )
    assert {".venv", ".yibao", ".git"} <= set(ignore)


# --- Helm --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def helm_validator():
    schema = json.loads(HELM_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_helm_values_use_keys_of_the_official_chart(helm_values, helm_validator):
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}"
        for e in helm_validator.iter_errors(helm_values)
    ]
    assert errors == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: v.update(webserver={"replicas": 2}),  # Airflow 2 name of apiServer
        lambda v: v.update(webserverSecretKeySecretName="x"),  # Airflow 2 secret
        lambda v: v["workers"].update(replica=3),
        lambda v: v.update(executor="SequentialExecutor"),
        lambda v: v["secret"].append({"envName": "X"}),
    ],
)
def test_helm_subset_schema_catches_mistakes(helm_values, helm_validator, mutate):
    broken = copy.deepcopy(helm_values)
    mutate(broken)
    assert list(helm_validator.iter_errors(broken))


def test_helm_values_match_the_locked_airflow(helm_values, airflow_options):
    import airflow

    assert helm_values["airflowVersion"] == airflow.__version__
    lock = (ROOT / "uv.lock").read_text(encoding="utf-8")
    assert re.search(
        r'name = "apache-airflow"\nversion = "' + re.escape(airflow.__version__) + '"',
        lock,
    )
    assert helm_values["images"]["airflow"]["tag"] == helm_values["defaultAirflowTag"]
    # [celery] belongs to the Celery provider, which the scale-out image adds (docs/scale-out.md)
    assert (
        _check_airflow_options(
            helm_values["config"], airflow_options, frozenset({"celery"})
        )
        >= 5
    )
    bundle = helm_values["dagProcessor"]["dagBundleConfigList"][0]
    assert _import(bundle["classpath"])
    compose = load_compose(sample_env())
    assert (
        bundle["kwargs"]["path"]
        == compose["services"]["airflow-scheduler"]["environment"][
            "AIRFLOW__CORE__DAGS_FOLDER"
        ]
    )
    names = {s["envName"] for s in helm_values["secret"]}
    assert {
        "AIRFLOW_CONN_YIBAO_LOADER",
        "AIRFLOW_CONN_YIBAO_TRANSFORMER",
        "AIRFLOW_VAR_YIBAO_PSEUDONYM_KEY",
    } <= names


def test_scale_out_executor_names_the_provider_it_needs(helm_values):
    """The Helm executor is not in uv.lock's core; docs/scale-out.md must say which provider to add."""
    from airflow.executors.executor_loader import ExecutorLoader

    path = ExecutorLoader.executors[helm_values["executor"]]
    try:
        _import(path)
    except ModuleNotFoundError:
        provider = "apache-airflow-providers-" + path.split(".")[2]
        assert provider in SCALE_OUT_DOC.read_text(encoding="utf-8")


# --- the same bootstrap in production mode --------------------------------------------------------


def test_production_mode_runs_the_same_bootstrap(warehouse, tmp_path):
    """warehouse-init's command against an 'external' server (YIBAO_DATABASE_URL set): same SQL files,
    logins from the environment, and idempotent."""
    import psycopg2

    from yibao import db

    base = warehouse.rsplit("/", 1)[0]
    admin = psycopg2.connect(base + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("drop database if exists yibao_prod_mode with (force)")
        cur.execute("create database yibao_prod_mode")
    admin.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIBAO_DB_")}
    env.update(
        {
            "YIBAO_DATABASE_URL": base + "/yibao_prod_mode",
            "YIBAO_HOME": str(tmp_path),  # nothing embedded may start here
            "YIBAO_DB_LOGINS": "p_etl:yibao_loader+yibao_transformer p_bi:bi_reader p_cb:county_410799",
            "YIBAO_DB_PASSWORD_P_ETL": "a",
            "YIBAO_DB_PASSWORD_P_BI": "b",
            "YIBAO_DB_PASSWORD_P_CB": "c",
        }
    )
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "infra/bootstrap_roles.py"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
    assert "p_cb in county_410799" in out.stdout
    assert not (tmp_path / "pgdata").exists()
    conn = psycopg2.connect(base + "/yibao_prod_mode")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select nspname from pg_namespace where nspname in"
                " ('raw', 'staging', 'intermediate', 'seeds', 'marts', 'marts_build', 'audit', 'rls')"
            )
            assert len(cur.fetchall()) == 8
            cur.execute(
                "select count(*) from information_schema.tables where table_schema = 'raw'"
            )
            raw_prod = cur.fetchone()[0]
            cur.execute("select role_name::text from audit.county_role")
            assert cur.fetchall() == [("county_410799",)]
            cur.execute(
                "select pg_has_role('p_etl', 'yibao_transformer', 'MEMBER'),"
                " pg_has_role('p_etl', 'yibao_loader', 'MEMBER'), pg_has_role('p_bi', 'bi_reader', 'MEMBER')"
            )
            assert cur.fetchone() == (True, True, True)
    finally:
        conn.close()
    with (
        db.connect() as conn,
        conn.cursor() as cur,
    ):  # the embedded warehouse: same tables
        cur.execute(
            "select count(*) from information_schema.tables where table_schema = 'raw'"
        )
        assert cur.fetchone()[0] == raw_prod
