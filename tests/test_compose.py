"""The production topology (docker-compose.yml) and its image (Dockerfile), checked as written.

``docker-compose config`` validates and normalises the file; the tests then check the wiring a
typo would break: service names in URLs, secrets, depends_on conditions, pinned images, the OPA
version, the topics. Bringing the stack up needs a Docker engine and is skipped where none runs.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import opa_bindings
import pytest
import yaml

from signalhub.apps.roles import CLIENT_ROLES, ROLES

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"

SIGNAL_TYPES = [
    "nuisance_report",
    "drug_signal",
    "intimidation_report",
    "debt_signal",
    "housing_closure",
    "radicalisation_concern",
    "casework_referral",
    "casework_alert",
]
AGENCIES = [
    "politie",
    "gemeente",
    "om",
    "reclassering",
    "woningcorporatie",
    "schuldhulpverlening",
    "jeugdzorg",
    "zvh",
]
#: The hub's services are exactly the roles `signalhub up` supervises (the broker role is the
#: embedded mode's; compose runs Apache Kafka instead).
HUB_SERVICES = {role: ["signalhub", "run", role] for role in CLIENT_ROLES}


def _embedded_opa_version() -> str:
    """The OPA version compiled into the embedded engine (its Go module path names it)."""
    library = Path(opa_bindings.__file__).with_name("libopabridge.so")
    found = re.search(rb"open-policy-agent/opa@v(\d+\.\d+\.\d+)", library.read_bytes())
    assert found, "cannot find the OPA version in the embedded engine"
    return found.group(1).decode()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The normalised compose model, as ``docker-compose config`` prints it."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed — .ci/run installs it")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = yaml.safe_load(result.stdout)
    return model


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"][name]
    return service


def _secret_names(service: dict[str, Any]) -> set[str]:
    return {s["source"] if isinstance(s, dict) else s for s in service.get("secrets", [])}


def test_every_service_of_the_topology_is_defined(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "kafka",
        "kafka-init",
        "opa",
        "postgres",
        *HUB_SERVICES,
    }


def test_compose_runs_the_same_roles_as_signalhub_up(compose: dict[str, Any]) -> None:
    hub_services = {
        name: service["command"]
        for name, service in compose["services"].items()
        if service.get("image") == "signalhub:0.1.0"
    }
    assert sorted(hub_services) == sorted(CLIENT_ROLES)
    assert [r for r in ROLES if r not in CLIENT_ROLES] == ["broker"]
    for role, command in hub_services.items():
        assert command == ["signalhub", "run", role]


def test_every_image_is_pinned_to_a_version(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: {image!r} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image!r} is not pinned"


def test_the_opa_server_runs_the_embedded_engine_version(compose: dict[str, Any]) -> None:
    image = _service(compose, "opa")["image"]
    assert image == f"openpolicyagent/opa:{_embedded_opa_version()}"
    assert image == "openpolicyagent/opa:1.20.2"


def test_opa_serves_the_policies_read_only_inside_the_network(compose: dict[str, Any]) -> None:
    opa = _service(compose, "opa")
    command = opa["command"]
    assert command[:2] == ["run", "--server"]
    assert "--addr=0.0.0.0:8181" in command
    assert "ports" not in opa, "OPA must not be published outside the compose network"
    volumes = opa["volumes"]
    assert all(v.endswith(":ro") for v in volumes), volumes
    sources = {Path(v.split(":")[0]).resolve() for v in volumes}
    assert (REPO / "policies" / "signalhub").resolve() in sources


def test_every_policy_data_file_lands_where_the_embedded_engine_puts_it(
    compose: dict[str, Any],
) -> None:
    """The embedded engine loads policies/data/<name>.json at data.signalhub.<name>."""
    mounts = {
        Path(v.split(":")[0]).resolve(): v.split(":")[1]
        for v in _service(compose, "opa")["volumes"]
    }
    data_files = sorted((REPO / "policies" / "data").glob("*.json"))
    assert data_files
    for path in data_files:
        target = mounts.get(path.resolve())
        assert target is not None, f"{path.name} is not mounted into OPA"
        assert target.startswith(f"/policies/data/signalhub/{path.stem}/"), target


def test_hub_services_are_wired_to_the_other_services(compose: dict[str, Any]) -> None:
    kafka_env = _service(compose, "kafka")["environment"]
    client_listener = next(
        url
        for url in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        if url.startswith("CLIENT")
    )
    kafka_address = client_listener.split("://", 1)[1]
    for name, command in HUB_SERVICES.items():
        service = _service(compose, name)
        env = service["environment"]
        assert service["command"] == command
        assert service["image"] == "signalhub:0.1.0"
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert env["SIGNALHUB_BOOTSTRAP_SERVERS"] == kafka_address
        assert env["SIGNALHUB_POLICY_ENGINE"] == "server"
        opa_url = urlsplit(env["SIGNALHUB_OPA_URL"])
        assert (opa_url.hostname, opa_url.port) == ("opa", 8181)
        assert urlsplit(env["SIGNALHUB_AUDIT_DSN"]).hostname == "postgres"
        assert env["SIGNALHUB_KEY_FILE"] == "/run/secrets/signalhub_master_key"
        secrets_used = _secret_names(service)
        assert "signalhub_master_key" in secrets_used
        assert env["SIGNALHUB_KAFKA_PASSWORD_FILE"] == (
            f"/run/secrets/kafka_password_{env['SIGNALHUB_KAFKA_USERNAME']}"
        )
        assert secrets_used == {
            "signalhub_master_key",
            "signalhub_pgpass",
            f"kafka_password_{env['SIGNALHUB_KAFKA_USERNAME']}",
        }, "a hub service gets its own Kafka password only"
        assert service["depends_on"] == {
            "kafka-init": {"condition": "service_completed_successfully"},
            "opa": {"condition": "service_started"},
            "postgres": {"condition": "service_healthy"},
        }


def test_kafka_authenticates_with_scram_and_authorises_with_acls(compose: dict[str, Any]) -> None:
    env = _service(compose, "kafka")["environment"]
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols["CLIENT"] == "SASL_PLAINTEXT"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    # the unauthenticated listeners are reachable from inside the kafka container only
    for listener in env["KAFKA_LISTENERS"].split(","):
        name, address = listener.split("://")
        if protocols[name] == "PLAINTEXT":
            assert address.startswith("localhost:"), listener


def test_kafka_init_creates_every_topic_and_user(compose: dict[str, Any]) -> None:
    init = _service(compose, "kafka-init")
    assert init["network_mode"] == "service:kafka"
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert _service(compose, "kafka")["healthcheck"]["test"]
    env = init["environment"]
    assert env["SIGNAL_TYPES"].split() == SIGNAL_TYPES
    assert env["AGENCIES"].split() == AGENCIES
    script = init["command"][0]
    assert 'topic "signals.$$t" --partitions 6' in script
    assert 'topic "deliveries.$$a"' in script
    assert "topic policies --partitions 1 --config cleanup.policy=compact" in script
    assert "topic signals.dlq" in script
    assert "topic audit --partitions 1" in script
    users = {s.removeprefix("kafka_password_") for s in _secret_names(init)}
    assert users == {"connector", *CLIENT_ROLES, *AGENCIES}


def test_the_signal_types_match_the_schemas_in_the_repository() -> None:
    schemas = REPO / "schemas"
    if not schemas.is_dir():
        pytest.skip("no schemas/ directory in this checkout")
    on_disk = {p.stem for p in schemas.glob("*.avsc")} - {"envelope"}
    assert on_disk <= set(SIGNAL_TYPES), on_disk - set(SIGNAL_TYPES)


def test_postgres_reports_its_health(compose: dict[str, Any]) -> None:
    postgres = _service(compose, "postgres")
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"


def test_the_image_installs_like_the_makefile_and_runs_unprivileged() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    makefile = (REPO / "Makefile").read_text()
    found = re.search(r"pip install (.*-r requirements-opa\.txt)", makefile)
    assert found, "the Makefile no longer installs requirements-opa.txt"
    make_args = [arg for arg in found.group(1).split() if arg != "--quiet"]
    assert f"pip install {' '.join(make_args)}" in dockerfile
    assert "--require-hashes" in make_args
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users, "the image must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0")


def _docker_engine_available() -> bool:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return not host.startswith("unix://") or Path(host.removeprefix("unix://")).exists()


def _write_secrets(directory: Path) -> None:
    directory.mkdir(mode=0o700)
    postgres_password = secrets.token_urlsafe(24)
    files = {
        "signalhub_master_key": secrets.token_hex(32),
        "postgres_password": postgres_password,
        "signalhub_pgpass": f"postgres:5432:signalhub:signalhub:{postgres_password}",
    }
    for user in ["connector", *CLIENT_ROLES, *AGENCIES]:
        files[f"kafka_password_{user}"] = secrets.token_urlsafe(24)
    for name, content in files.items():
        path = directory / name
        path.write_text(content + "\n")
        path.chmod(0o600)


@pytest.mark.compose
@pytest.mark.skipif(not _docker_engine_available(), reason="no Docker engine on this machine")
def test_the_stack_comes_up_with_its_topics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testcontainers.compose import DockerCompose

    _write_secrets(tmp_path / "secrets")
    monkeypatch.setenv("SIGNALHUB_SECRETS_DIR", str(tmp_path / "secrets"))
    stack = DockerCompose(REPO, compose_file_name="docker-compose.yml", build=True, wait=True)
    with stack:
        listing, _, _ = stack.exec_in_container(
            [
                "/opt/kafka/bin/kafka-topics.sh",
                "--bootstrap-server",
                "localhost:19092",
                "--list",
            ],
            service_name="kafka",
        )
        topics = set(listing.split())
        assert {f"signals.{t}" for t in SIGNAL_TYPES} <= topics
        assert {f"deliveries.{a}" for a in AGENCIES} <= topics
        assert {"signals.dlq", "audit", "policies"} <= topics
