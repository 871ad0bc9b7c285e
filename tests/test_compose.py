"""The production topology (docker-compose.yml) and its image (Dockerfile), checked as written.

``docker-compose config`` validates and normalises the file; the tests then check the wiring a
typo would break: service names in URLs, secrets, depends_on conditions, pinned images, the OPA
version. Bringing the stack up needs a Docker engine and is skipped where none runs.

The Kafka topics, users and ACLs that ``kafka-init`` creates (``deploy/kafka/init.sh``) are held
to the code's declaration (:mod:`signalhub.apps.kafka_access`) without Docker: the committed
script must be what ``signalhub kafka init-script`` prints, its ACLs must grant exactly what the
declaration says, and the declaration must cover what the roles' own code opens.
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
from click.testing import CliRunner

from signalhub.apps.cli import REGENERATE, kafka_group
from signalhub.apps.kafka_access import Access, role_access
from signalhub.apps.kafka_script import acl_differences, script_acls
from signalhub.apps.roles import CLIENT_ROLES, ROLES, hub_topics
from signalhub.bundling.core import ALERT_TYPE
from signalhub.bundling.process import bundler_topics
from signalhub.config import Settings, load_settings, unknown_variables
from signalhub.connector.definition import load_definitions
from signalhub.enforcer.worker import enforcer_topics
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import Subscription, load_subscriptions, subscribers
from signalhub.wire import (
    AUDIT_TOPIC,
    BLOCKED_TOPIC,
    DLQ_TOPIC,
    PARKED_TOPIC,
    POLICIES_TOPIC,
    VIEW_SCHEMAS_TOPIC,
    deliveries_topic,
    failed_topic,
    signal_topic,
)

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
INIT_SCRIPT = REPO / "deploy" / "kafka" / "init.sh"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"

SIGNAL_TYPES = [
    "nuisance_report",
    "drug_signal",
    "intimidation_report",
    "debt_signal",
    "housing_closure",
    "radicalisation_concern",
    "casework_referral",
    "casework_alert",
    "youth_protection_concern",
    "school_absence",
    "neighbourhood_report",
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


def test_every_hub_service_setting_is_one_the_hub_reads_and_accepts(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment each role gets loads: no unknown name, and a whole SASL configuration."""
    for name in HUB_SERVICES:
        env = {k: str(v) for k, v in _service(compose, name)["environment"].items()}
        assert unknown_variables(env) == [], name
        for variable in [k for k in os.environ if k.startswith("SIGNALHUB_")]:
            monkeypatch.delenv(variable)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        settings = load_settings(home=REPO)
        assert settings.kafka_security_protocol == "SASL_PLAINTEXT", name
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
        assert settings.kafka_username == name
        assert settings.kafka_password_file == Path(f"/run/secrets/kafka_password_{name}")


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


def test_kafka_init_runs_the_generated_script_as_every_user(compose: dict[str, Any]) -> None:
    init = _service(compose, "kafka-init")
    assert init["network_mode"] == "service:kafka"
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert _service(compose, "kafka")["healthcheck"]["test"]
    (mount,) = init["volumes"]
    source, target, mode = mount.split(":")
    assert Path(source).resolve() == INIT_SCRIPT.resolve()
    assert mode == "ro"
    assert init["entrypoint"] == ["/bin/bash", target]
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


# -- Kafka topics, users and ACLs: the committed script against the code's declaration ----------


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    """docker-compose.yml as written (no Docker needed)."""
    model: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text("utf-8"))
    return model


@pytest.fixture(scope="module")
def compose_settings(raw_compose: dict[str, Any]) -> Settings:
    """The settings the compose roles run with, as far as the topology depends on them."""
    partitions = int(raw_compose["x-hub-env"]["SIGNALHUB_PARTITIONS"])
    return load_settings(home=REPO, partitions=partitions)


@pytest.fixture(scope="module")
def subscriptions(compose_settings: Settings) -> list[Subscription]:
    return load_subscriptions(compose_settings.subscriptions_file)


@pytest.fixture(scope="module")
def declared(compose_settings: Settings, subscriptions: list[Subscription]) -> dict[str, Access]:
    return role_access(compose_settings, subscriptions)


@pytest.fixture(scope="module")
def committed() -> str:
    return INIT_SCRIPT.read_text("utf-8")


def _created_topics(script: str) -> dict[str, int]:
    """``topic NAME --partitions N ...`` lines of the script: name -> partitions."""
    found = re.findall(r"^topic (\S+) --partitions (\d+)", script, re.MULTILINE)
    return {name: int(partitions) for name, partitions in found}


def _grants(access: Access, operation: str, resource: str = "topic") -> set[str]:
    return {
        g.name
        for g in access.grants
        if g.operation == operation and g.resource == resource and g.pattern == "literal"
    }


def test_the_committed_init_script_is_what_the_command_prints(
    compose_settings: Settings, committed: str
) -> None:
    result = CliRunner().invoke(kafka_group, ["init-script"], obj=compose_settings)
    assert result.exit_code == 0, result.output
    assert committed == result.output, (
        f"{INIT_SCRIPT.relative_to(REPO)} is out of date with the code — regenerate it: "
        f"{REGENERATE}"
    )


def test_the_script_grants_exactly_what_the_code_declares(
    declared: dict[str, Access], committed: str
) -> None:
    assert acl_differences(declared, script_acls(committed)) == []


_AUDIT_GROUP_LINE = (
    "acl --allow-principal User:audit-ingest --operation Read \\\n  --group signalhub-audit-store\n"
)


def test_a_removed_acl_line_is_reported_as_that_gap(
    declared: dict[str, Access], committed: str
) -> None:
    assert _AUDIT_GROUP_LINE in committed
    mutated = committed.replace(_AUDIT_GROUP_LINE, "")
    assert acl_differences(declared, script_acls(mutated)) == [
        "missing: audit-ingest (audit-ingest) Read on group signalhub-audit-store"
    ]


def test_a_topic_dropped_from_an_acl_line_is_reported_as_that_gap(
    declared: dict[str, Access], committed: str
) -> None:
    line = "  --topic deliveries.reclassering.failed"
    assert committed.count(line) == 1
    mutated = committed.replace(line, "  --topic schemas.views")
    assert acl_differences(declared, script_acls(mutated)) == [
        "missing: webhooks (webhooks) Describe on topic deliveries.reclassering.failed",
        "missing: webhooks (webhooks) Write on topic deliveries.reclassering.failed",
        "excess: webhooks (webhooks) Write on topic schemas.views",
    ]


@pytest.mark.parametrize(
    ("extra", "reported"),
    [
        pytest.param(
            "acl --allow-principal User:gemeente --operation Read --topic deliveries.politie",
            ["excess: gemeente (subscriber) Read on topic deliveries.politie"],
            id="a-subscriber-reads-another",
        ),
        pytest.param(
            "acl --allow-principal User:webhooks --operation Read "
            "--resource-pattern-type prefixed --topic deliveries.",
            ["excess: webhooks (webhooks) Read on topic prefix deliveries."],
            id="a-prefix-wider-than-the-code-needs",
        ),
        pytest.param(
            "acl --allow-principal User:intruder --operation Write --topic audit",
            ["excess: intruder (undeclared principal) Write on topic audit"],
            id="an-undeclared-principal",
        ),
    ],
)
def test_an_added_acl_line_is_reported_as_an_excess(
    declared: dict[str, Access], committed: str, extra: str, reported: list[str]
) -> None:
    mutated = committed.replace("\necho ", f"\n{extra}\necho ", 1)
    assert acl_differences(declared, script_acls(mutated)) == reported


def test_an_acl_line_the_comparison_cannot_read_fails_it(committed: str) -> None:
    mutated = committed + "acl --allow-principal User:om --operation All --topic audit\n"
    with pytest.raises(ValueError, match="unexpected --operation All"):
        script_acls(mutated)


def test_every_topic_the_roles_use_is_created_with_its_partitions(
    compose_settings: Settings, subscriptions: list[Subscription], committed: str
) -> None:
    created = _created_topics(committed)
    for topic, partitions in hub_topics(compose_settings).items():
        assert created.get(topic) == partitions, f"{topic}: {partitions} partitions expected"
    for name in subscribers(subscriptions):
        assert deliveries_topic(name) in created, name
    webhook = {s.subscriber for s in subscriptions if s.channel == "webhook" and s.active}
    assert webhook, "the sample subscriptions have a webhook subscriber"
    for name in webhook:
        assert failed_topic(name) in created, name
    assert created[POLICIES_TOPIC] == 1
    assert re.search(r"^topic policies .*cleanup\.policy=compact", committed, re.MULTILINE)


def test_every_topic_an_acl_names_is_created(committed: str) -> None:
    created = _created_topics(committed)
    named = {
        grant.name
        for grants in script_acls(committed).values()
        for grant in grants
        if grant.resource == "topic"
    }
    assert named - set(created) == set()


def test_each_subscriber_reads_only_its_own_deliveries(
    subscriptions: list[Subscription], committed: str
) -> None:
    scripted = script_acls(committed)
    for name in subscribers(subscriptions):
        grants = scripted[name]
        topics = {(g.name, g.operation, g.pattern) for g in grants if g.resource == "topic"}
        assert topics == {
            (deliveries_topic(name), "Read", "literal"),
            (deliveries_topic(name), "Describe", "literal"),
        }, name
        groups = {(g.name, g.operation, g.pattern) for g in grants if g.resource == "group"}
        assert groups == {(f"{name}.", "Read", "prefixed")}, name
    for principal, grants in scripted.items():
        for grant in grants:
            wide = grant.pattern == "prefixed" and grant.resource == "topic"
            assert not wide, f"{principal}: {grant.describe()}"
            assert grant.name != "*", f"{principal}: {grant.describe()}"


def test_the_users_are_the_secrets_and_the_services_log_in_as_their_role(
    raw_compose: dict[str, Any], declared: dict[str, Access], committed: str
) -> None:
    users = set(re.findall(r"^user (\S+)$", committed, re.MULTILINE))
    secrets_given = {
        name.removeprefix("kafka_password_")
        for name in raw_compose["services"]["kafka-init"]["secrets"]
    }
    assert users == set(declared) == secrets_given
    for role in CLIENT_ROLES:
        env = raw_compose["services"][role]["environment"]
        assert env["SIGNALHUB_KAFKA_USERNAME"] == role
        assert declared[role].kind == role


def test_the_declaration_covers_what_the_roles_code_opens(
    compose_settings: Settings, subscriptions: list[Subscription], declared: dict[str, Access]
) -> None:
    """What each role opens, from the functions its code calls and from the wire contract."""
    registry = SchemaRegistry.from_dir(compose_settings.schemas_dir)
    every_signal = {signal_topic(t) for t in registry.signal_types()}
    enforcer = declared["enforcer"]
    sources, sinks = enforcer_topics(compose_settings)  # what build_enforcer_app creates and uses
    assert set(sources) == every_signal
    assert set(sources) <= _grants(enforcer, "Read") & _grants(enforcer, "Create")
    assert set(sinks) <= _grants(enforcer, "Write") & _grants(enforcer, "Create")
    wire_sinks = {AUDIT_TOPIC, DLQ_TOPIC, PARKED_TOPIC, BLOCKED_TOPIC, VIEW_SCHEMAS_TOPIC}
    wire_sinks |= {deliveries_topic(name) for name in subscribers(subscriptions)}
    assert wire_sinks <= _grants(enforcer, "Write")
    assert {POLICIES_TOPIC} <= _grants(enforcer, "Read") & _grants(enforcer, "Create")
    assert _grants(enforcer, "Read", "group") == {compose_settings.enforcer_group}

    bundler = declared["bundler"]
    assert set(bundler_topics(registry)) <= _grants(bundler, "Read")
    assert every_signal <= _grants(bundler, "Create")  # bundling.process creates them all
    assert _grants(bundler, "Write") == {signal_topic(ALERT_TYPE)}
    assert _grants(bundler, "Read", "group") == {compose_settings.bundler_group}

    ingest = declared["audit-ingest"]
    assert _grants(ingest, "Read") == {AUDIT_TOPIC}
    assert _grants(ingest, "Read", "group") == {compose_settings.audit_group}

    webhooks = declared["webhooks"]
    pushed = {
        s.subscriber for s in subscriptions if s.active and s.channel == "webhook" and s.webhook_url
    }
    assert {deliveries_topic(n) for n in pushed} | {VIEW_SCHEMAS_TOPIC} == _grants(webhooks, "Read")
    assert {failed_topic(n) for n in pushed} == _grants(webhooks, "Write")

    http = declared["http"]
    published = {
        signal_topic(t)
        for definition in load_definitions(compose_settings.connectors_dir).values()
        for t in definition.signal_types()
    }
    assert published <= _grants(http, "Write")  # ingest
    assert published == _grants(declared["connector"], "Write")
    pulled = {deliveries_topic(s.subscriber) for s in subscriptions if s.channel == "pull"}
    assert pulled | {VIEW_SCHEMAS_TOPIC, DLQ_TOPIC, AUDIT_TOPIC} <= _grants(http, "Read")
    assert {POLICIES_TOPIC} <= _grants(http, "Write") & _grants(http, "Create")


def test_the_deployment_doc_shows_the_declared_access(compose_settings: Settings) -> None:
    result = CliRunner().invoke(kafka_group, ["acls"], obj=compose_settings)
    assert result.exit_code == 0, result.output
    doc = DEPLOYMENT_DOC.read_text("utf-8")
    begin = "<!-- generated by `signalhub kafka acls`: begin -->\n"
    end = "<!-- generated by `signalhub kafka acls`: end -->"
    shown = doc[doc.index(begin) + len(begin) : doc.index(end)]
    assert shown == result.output, (
        "docs/deployment.md: paste `signalhub kafka acls` between the markers"
    )
