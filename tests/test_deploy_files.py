"""The deployment files parse, run real `bridge` commands with real flags, and set only variables the
bridge reads: they cannot drift from the code unnoticed."""

from __future__ import annotations

import ast
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bridge.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]

# Variables for Python and pip in the image, not the bridge's.
RUNTIME_VARIABLES = {"PATH", "PYTHONUNBUFFERED", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_CACHE_DIR"}


def bridge_variables() -> set[str]:
    """Every environment variable name bridge/config.py, bridge/settings.py and the sources' configuration read."""
    names = set()
    for module in ("bridge/config.py", "bridge/settings.py", "bridge/sources/config.py"):
        for node in ast.walk(ast.parse((ROOT / module).read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.value):
                names.add(node.value)
    # The destinations' variables are read by prefix (named_by) as well as by name.
    return names


def check_command(command: str | list[str], where: str) -> None:
    """`command` is `bridge <subcommand> [flags]` that the bridge's own parser accepts."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if len(argv) == 1 and isinstance(command, list):
        argv = shlex.split(argv[0])
    assert argv[0] == "bridge", f"{where}: {command!r} does not run the bridge"
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{where}: `{command}` is not a bridge command the CLI accepts")


def check_variables(names: set[str], where: str) -> None:
    unknown = names - bridge_variables() - RUNTIME_VARIABLES
    assert not unknown, f"{where} sets variables the bridge does not read: {sorted(unknown)}"


def procfile() -> dict[str, str]:
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    return dict(tuple(part.strip() for part in line.split(":", 1)) for line in lines)  # type: ignore[misc]


def test_procfile_has_web_worker_and_release() -> None:
    processes = procfile()
    assert set(processes) == {"web", "worker", "release"}
    assert shlex.split(processes["release"]) == ["bridge", "migrate"]
    for name, command in processes.items():
        check_command(command, f"Procfile {name}")
    assert "--no-worker" in processes["web"]  # the worker process type delivers


def test_app_json_deploys_on_heroku_postgres() -> None:
    app = json.loads((ROOT / "app.json").read_text())
    assert any(addon["plan"].startswith("heroku-postgresql:") for addon in app["addons"])
    assert set(app["formation"]) <= set(procfile())
    check_variables(set(app["env"]), "app.json")
    for name, spec in app["env"].items():
        assert spec.get("description"), f"app.json {name}: no description"
    assert app["env"]["BRIDGE_ENV"]["value"] == "production"
    # Required by Heroku unless said otherwise: only what every shop needs is required.
    secrets = ("SHOPIFY_WEBHOOK_SECRET", "WOOCOMMERCE_WEBHOOK_SECRET", "OMNEO_WEBHOOK_SECRET",
               "OMNISEND_API_KEY", "OMETRIA_API_KEY")
    assert all(app["env"][name]["required"] is False for name in secrets)


def render() -> dict[str, Any]:
    return YAML(typ="safe").load((ROOT / "render.yaml").read_text())  # type: ignore[no-any-return]


def test_render_yaml_runs_a_web_service_and_a_worker_on_one_database() -> None:
    blueprint = render()
    services = {s["name"]: s for s in blueprint["services"]}
    databases = {d["name"] for d in blueprint["databases"]}
    assert sorted(s["type"] for s in services.values()) == ["web", "worker"]
    for service in services.values():
        where = f"render.yaml {service['name']}"
        assert service["buildCommand"] == "pip install -r requirements.txt"
        for key in ("startCommand", "preDeployCommand"):
            check_command(service[key], f"{where} {key}")
        keys = {v["key"] for v in service["envVars"]}
        check_variables(keys, where)
        assert "DATABASE_URL" in keys
        for var in service["envVars"]:
            if "fromDatabase" in var:
                assert var["fromDatabase"]["name"] in databases
            if "fromService" in var:
                source = services[var["fromService"]["name"]]
                assert var["fromService"]["envVarKey"] in {v["key"] for v in source["envVars"]}
    assert services["bridge-web"]["healthCheckPath"] == "/healthz"


def fly() -> dict[str, Any]:
    return tomllib.loads((ROOT / "fly.toml").read_text())


def test_fly_toml_runs_web_and_worker_machines_from_the_image() -> None:
    config = fly()
    check_command(config["deploy"]["release_command"], "fly.toml release_command")
    for name, command in config["processes"].items():
        check_command(command, f"fly.toml processes.{name}")
    check_variables(set(config["env"]), "fly.toml [env]")
    service = config["http_service"]
    assert set(service["processes"]) <= set(config["processes"])
    assert str(service["internal_port"]) == config["env"]["PORT"]
    assert [c["path"] for c in service["checks"]] == ["/healthz"]
    assert config["kill_timeout"] >= 30 and config["build"]["dockerfile"] == "Dockerfile"


def test_railway_json_runs_the_image_with_a_pre_deploy_migration() -> None:
    config = json.loads((ROOT / "railway.json").read_text())
    deploy = config["deploy"]
    check_command(deploy["startCommand"], "railway.json startCommand")
    check_command(deploy["preDeployCommand"], "railway.json preDeployCommand")
    assert deploy["healthcheckPath"] == "/healthz" and config["build"]["dockerfilePath"] == "Dockerfile"


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each line, continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def env_names(arguments: str) -> Iterator[str]:
    for match in re.finditer(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", arguments):
        yield match.group(1)


def test_dockerfile_is_slim_non_root_exec_form_and_holds_no_secret() -> None:
    lines = dockerfile()
    final = lines[max(i for i, (op, _) in enumerate(lines) if op == "FROM"):]
    assert all(re.fullmatch(r"python:[\d.]+-slim( AS \w+)?", args) for op, args in lines if op == "FROM")
    user = [args for op, args in final if op == "USER"]
    assert user and user[-1] not in ("root", "0")
    cmd = [args for op, args in final if op == "CMD"]
    assert len(cmd) == 1 and cmd[0].startswith("["), "CMD must be exec form, so the bridge gets SIGTERM itself"
    check_command(json.loads(cmd[0]), "Dockerfile CMD")
    names = {name for op, args in lines if op == "ENV" for name in env_names(args)}
    check_variables(names, "Dockerfile ENV")
    assert not [op for op, _ in lines if op == "ARG"]
    assert not [n for n in names if re.search(r"KEY|SECRET|TOKEN|PASSWORD|DATABASE_URL", n)]
    copied = [args.split()[0] for op, args in lines if op == "COPY" and not args.startswith("--from")]
    assert ".env" not in copied and "." not in copied  # only named files and folders go in
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "*.db", ".env"} <= set(ignored)


def test_python_version_is_one_the_project_and_the_image_take() -> None:
    version = (ROOT / ".python-version").read_text().strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = tuple(int(p) for p in project["requires-python"].removeprefix(">=").split("."))
    assert tuple(int(p) for p in version.split(".")) >= minimum
    assert all(args.startswith(f"python:{version}-slim") for op, args in dockerfile() if op == "FROM")


def requirement_name(line: str) -> str:
    return re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def test_requirements_pin_everything_and_install_the_project_with_postgres() -> None:
    """requirements.txt is compiled from requirements.in (`.[postgres]`): every package pinned, the
    project's dependencies and its postgres extra among them."""
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert "." in lines  # the project itself, installed by the builders with its pinned dependencies
    pins = {requirement_name(line): line for line in lines if line != "."}
    assert all(re.match(r"[A-Za-z0-9._-]+(\[[a-z, ]+\])?==[^=\s]+", line) for line in pins.values()), "every package pinned with =="
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["postgres"]]
    assert {requirement_name(r) for r in wanted} <= set(pins)
    assert {"psycopg-binary", "psycopg-pool"} <= set(pins)
    assert ".[postgres]" in (ROOT / "requirements.in").read_text().split()


def test_a_wrong_command_or_variable_is_caught() -> None:
    """The checks above can fail."""
    with pytest.raises(pytest.fail.Exception):
        check_command("bridge serve --no-wroker", "example")
    with pytest.raises(pytest.fail.Exception):
        check_command("bridge migrate --no-migrate", "example")
    with pytest.raises(AssertionError):
        check_command("uvicorn bridge.app:app", "example")
    with pytest.raises(AssertionError):
        check_variables({"BRIDGE_DATABSE_URL"}, "example")
    check_variables({"BRIDGE_SHUTDOWN_SECONDS", "OMETRIA_API_KEY", "PORT"}, "example")


def test_the_variants_in_docs_deploy_md_parse_and_run_real_commands() -> None:
    """The free Render service and Fly's volume, shown in docs/deploy.md rather than shipped as files."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```(yaml|toml)\n(.*?)```", text, flags=re.S)
    assert {kind for kind, _ in blocks} == {"yaml", "toml"}
    for kind, body in blocks:
        document = YAML(typ="safe").load(body) if kind == "yaml" else tomllib.loads(body)
        for service in document.get("services", []):
            check_command(service["startCommand"], f"docs/deploy.md {service['name']}")
            check_variables({v["key"] for v in service["envVars"]}, f"docs/deploy.md {service['name']}")
        if kind == "toml":  # the volume goes where the image keeps its SQLite file
            workdir = [args for op, args in dockerfile() if op == "WORKDIR"][-1]
            assert document["mounts"]["destination"] == workdir
