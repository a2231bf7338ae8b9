"""deploy/Dockerfile and deploy/compose.yaml against the CLI and the settings: a command, flag or
variable renamed in the code and not in the deployment files fails here, not at `docker compose up`.

No container engine runs here: the compose file's structure is checked as data, and with
`docker compose config` where the plugin exists."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslab import proc
from opslab.config import Settings
from opslab.docgen import variable_names

from .cli_commands import cli_root, problems

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROMETHEUS_YML = DEPLOY / "prometheus.yml"
MAKEFILE = ROOT / "Makefile"
SEED_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def opslab_services() -> dict[str, list[str]]:
    return {
        name: service["command"]
        for name, service in services().items()
        if isinstance(service.get("command"), list) and service["command"][:1] == ["opslab"]
    }


def setting_names() -> set[str]:
    return {n for name, info in Settings.model_fields.items() for n in variable_names(name, info)}


def option_default(argv: list[str], flag: str) -> object:
    """The default of ``flag`` of the command ``opslab ARGV`` names."""
    command = cli_root()
    for word in argv:
        if word.startswith("-"):
            break
        command = command.commands.get(word, command) if hasattr(command, "commands") else command
    return next(p.default for p in command.params if flag in getattr(p, "opts", ()))


def flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_the_services_run_the_cli_as_the_makefile_does() -> None:
    commands = opslab_services()
    assert commands["api"][:2] == ["opslab", "serve"]
    assert commands["worker"][:2] == ["opslab", "worker"]
    assert commands["sandbox"][:3] == ["opslab", "sandbox", "up"]
    assert "$(BIN)/opslab serve" in MAKEFILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("service", sorted(opslab_services()))
def test_every_service_command_and_flag_exists(service: str) -> None:
    assert problems(opslab_services()[service][1:]) == []


def test_every_opslab_service_variable_is_a_setting() -> None:
    known = setting_names()
    for name, command in opslab_services().items():
        env = services()[name].get("environment", {})
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        unknown = sorted(v for v in env if SEED_NAME.match(v) and v not in known)
        assert unknown == [], f"{name} sets {unknown}, which no setting reads ({command})"
        for value in env.values():
            assert not (isinstance(value, str) and value.strip() == ""), (
                f"{name}: an empty setting is refused"
            )


def test_variables_the_file_interpolates_are_not_mistaken_for_settings() -> None:
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text(encoding="utf-8")))
    assert {v for v in interpolated if v.startswith("OPSLAB_") and v not in setting_names()} == set()


def test_a_service_depends_only_on_services_that_exist_and_report_health() -> None:
    all_services = services()
    for name, service in all_services.items():
        depends = service.get("depends_on", {})
        items = depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)
        for other, how in items:
            assert other in all_services, f"{name} depends on missing {other}"
            if how.get("condition") == "service_healthy":
                check = all_services[other].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), f"{other} reports no health for {name}"
            if "profiles" not in service:
                assert "profiles" not in all_services[other], f"{name} needs {other}, an optional service"


def test_the_workers_wait_for_the_api_that_migrates_the_database() -> None:
    assert services()["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert services()["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_named_volume_is_declared_and_every_mounted_file_exists() -> None:
    declared = set(compose().get("volumes", {}))
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_published_ports_are_the_ports_the_commands_listen_on() -> None:
    commands = opslab_services()
    serve = commands["api"]
    api_port = flag_value(serve, "--port") or str(option_default(serve[1:], "--port"))
    assert any(p.endswith(f":{api_port}") for p in services()["api"]["ports"])
    sandbox = commands["sandbox"]
    published = {p.rsplit(":", 1)[-1] for p in services()["sandbox"]["ports"]}
    for flag in ("--port", "--chaos-port", "--actions-port"):
        port = flag_value(sandbox, flag) or str(option_default(sandbox[1:], flag))
        assert port in published, f"sandbox {flag} {port} is not published"
    env = services()["api"]["environment"]
    assert env["OPSLAB_RESPONDER_TARGET_URL"].endswith(f":{option_default(['sandbox', 'up'], '--port')}")
    assert env["OPSLAB_RESPONDER_ACTION_URL"].endswith(
        f":{option_default(['sandbox', 'up'], '--actions-port')}"
    )


def test_the_services_bind_beyond_the_container_loopback() -> None:
    for name, command in opslab_services().items():
        if "--host" in command or name in ("api", "sandbox", "autoops"):
            assert flag_value(command, "--host") == "0.0.0.0", f"{name} is unreachable from other containers"


def test_prometheus_scrapes_hosts_the_compose_file_defines() -> None:
    names: dict[str, dict[str, Any]] = {}
    for name, service in services().items():
        names[name] = service
        for network in (service.get("networks") or {}).values():
            for alias in (network or {}).get("aliases", []):
                names[alias] = service
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                assert host in names, f"{job['job_name']} scrapes {host}, no such service"
                command = names[host].get("command", [])
                ports = {p.rsplit(":", 1)[-1] for p in names[host].get("ports", [])}
                assert port in ports or flag_value(command, "--port") == port, f"{target}: nothing listens"


def test_grafana_gets_the_prometheus_datasource_and_the_autoops_dashboard() -> None:
    grafana = services()["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    datasource = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yaml").read_text(encoding="utf-8")
    )
    (prometheus,) = datasource["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "opslab.yaml").read_text(encoding="utf-8"))
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert mounts["./grafana/autoops-dashboard.json"].startswith(dashboards_dir + "/")
    dashboard = json.loads((DEPLOY / "grafana" / "autoops-dashboard.json").read_text(encoding="utf-8"))
    assert any(
        v["type"] == "datasource" and v["query"] == "prometheus" for v in dashboard["templating"]["list"]
    )
    assert {services()[s].get("profiles") == ["monitoring"] for s in ("prometheus", "grafana")} == {True}


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def test_the_image_builds_with_uv_in_two_stages_and_runs_unprivileged() -> None:
    instructions = dockerfile_instructions()
    stages = [arg for op, arg in instructions if op == "FROM"]
    assert len(stages) >= 2 and stages[-1].endswith("AS runtime")
    assert any(op == "RUN" and "uv sync --frozen --no-dev" in arg for op, arg in instructions)
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_the_image_runs_an_existing_command_and_checks_health() -> None:
    instructions = dict(dockerfile_instructions())
    argv = json.loads(instructions["CMD"])
    assert argv[:2] == ["opslab", "serve"] and problems(argv[1:]) == []
    assert "/healthz" in instructions["HEALTHCHECK"]
    assert argv[argv.index("--port") + 1] in instructions["EXPOSE"].split()


def compose_command() -> list[str] | None:
    """`docker compose` (the plugin), else the standalone `docker-compose`, else None."""
    docker = shutil.which("docker")
    if docker is not None and proc.run([docker, "compose", "version"], timeout_s=30).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is not None and proc.run([standalone, "version"], timeout_s=30).returncode == 0:
        return [standalone]
    return None


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no `docker compose` plugin nor `docker-compose` here to validate the file with")
    errors = tmp_path / "stderr.txt"
    result = proc.run(
        [*command, "-f", str(COMPOSE), "--profile", "monitoring", "config", "-q"],
        timeout_s=60,
        stderr=errors,
    )
    assert result.returncode == 0, errors.read_text(encoding="utf-8")


def test_only_the_api_is_published_beyond_the_host() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            if name != "api":
                assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_prometheus_gets_the_token_file_its_scrape_config_names() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    files = {
        job["authorization"]["credentials_file"]
        for job in config["scrape_configs"]
        if job["job_name"] in ("opslab", "autoops")
    }
    mounted = {s["target"]: s["source"] for s in services()["prometheus"]["secrets"]}
    assert files and files <= set(mounted)
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert all(compose["secrets"][mounted[f]] == {"environment": "OPSLAB_READ_TOKEN"} for f in files)
