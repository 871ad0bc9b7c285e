"""The Kafka init script and the access table, written from :mod:`signalhub.apps.kafka_access`.

:func:`init_script` is what ``signalhub kafka init-script`` prints and docker-compose.yml's
``kafka-init`` runs (``deploy/kafka/init.sh``): topics with partitions and configuration, one
SCRAM user per principal (password from ``/run/secrets/kafka_password_<user>``), then the ACLs,
one ``kafka-acls.sh`` call per principal, resource kind and set of operations (each call starts
a JVM, so grants are grouped rather than given one by one).

:func:`script_acls` reads the ACLs back out of such a script and :func:`acl_differences` names
every grant one side has and the other lacks: the tests hold the committed script to the code
with them.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence

from signalhub.apps.kafka_access import Access, Grant, Operation, PatternType, TopicSpec

__all__ = ["access_table", "acl_differences", "init_script", "script_acls"]

_PRELUDE = """\
set -euo pipefail
bin=/opt/kafka/bin
bs=localhost:19092
topic() { "$bin/kafka-topics.sh" --bootstrap-server "$bs" --create --if-not-exists --topic "$@"; }
user() {
  "$bin/kafka-configs.sh" --bootstrap-server "$bs" --alter --entity-type users --entity-name "$1" \\
    --add-config "SCRAM-SHA-512=[password=$(cat "/run/secrets/kafka_password_$1")]" > /dev/null
}
acl() { "$bin/kafka-acls.sh" --bootstrap-server "$bs" --add "$@" > /dev/null; }
"""
_OPERATION_ORDER: tuple[Operation, ...] = ("Read", "Write", "Create", "Describe")


def init_script(
    topics: Sequence[TopicSpec], access: Mapping[str, Access], header: Sequence[str]
) -> str:
    """The bash script that creates ``topics``, a SCRAM user per principal and its ACLs."""
    lines = ["#!/usr/bin/env bash", *(f"# {line}".rstrip() for line in header), _PRELUDE]
    lines.append("# -- topics")
    for spec in topics:
        configs = "".join(f" --config {shlex.quote(f'{k}={v}')}" for k, v in spec.config)
        lines.append(f"topic {shlex.quote(spec.name)} --partitions {spec.partitions}{configs}")
    lines += ["", "# -- SCRAM users, one per secret file /run/secrets/kafka_password_<user>"]
    lines += [f"user {shlex.quote(principal)}" for principal in sorted(access)]
    lines += ["", "# -- ACLs: StandardAuthorizer denies whatever is not allowed here"]
    for principal in sorted(access):
        lines.append(f"# {principal} ({access[principal].kind})")
        lines += _acl_commands(principal, access[principal].grants)
    lines += ["", 'echo "kafka-init: topics, users and ACLs in place"', ""]
    return "\n".join(lines)


def script_acls(script: str) -> dict[str, frozenset[Grant]]:
    """The grants of every ``acl --allow-principal ...`` command in ``script``, by principal.

    Raises ValueError on an ``acl`` command this module would not write (another option, a
    deny, a host): the comparison must not silently skip a line it cannot read.
    """
    found: dict[str, set[Grant]] = {}
    for command in _commands(script):
        words = shlex.split(command)
        if not words or words[0] != "acl":
            continue
        principal, grants = _parse_acl(words[1:], command)
        found.setdefault(principal, set()).update(grants)
    return {principal: frozenset(grants) for principal, grants in found.items()}


def acl_differences(
    declared: Mapping[str, Access], scripted: Mapping[str, frozenset[Grant]]
) -> list[str]:
    """One line per grant the code needs that the script lacks, or the script gives beyond it."""
    problems: list[str] = []
    for principal in sorted({*declared, *scripted}):
        wanted = declared[principal].grants if principal in declared else frozenset()
        given = scripted.get(principal, frozenset())
        kind = declared[principal].kind if principal in declared else "undeclared principal"
        problems += [
            f"missing: {principal} ({kind}) {g.describe()}" for g in sorted(wanted - given)
        ]
        problems += [f"excess: {principal} ({kind}) {g.describe()}" for g in sorted(given - wanted)]
    return problems


def access_table(access: Mapping[str, Access]) -> str:
    """Markdown: per principal, each thing its code does and the grants that needs."""
    rows = ["| Principal | What the code does | Granted |", "|---|---|---|"]
    for principal in sorted(access, key=lambda p: (access[p].kind == "subscriber", p)):
        for why, grants in access[principal].uses:
            granted = "; ".join(
                f"{', '.join(ops)} on {_where(resource, pattern)} "
                + ", ".join(f"`{name}`" for name in names)
                for (resource, pattern, ops), names in _grouped(grants)
            )
            rows.append(f"| `{principal}` | {why} | {granted} |")
    return "\n".join(rows) + "\n"


def _where(resource: str, pattern: PatternType) -> str:
    return f"{resource} prefix" if pattern == "prefixed" else resource


# -- internals -----------------------------------------------------------------------------

_Key = tuple[str, PatternType, tuple[Operation, ...]]


def _grouped(grants: Iterable[Grant]) -> list[tuple[_Key, list[str]]]:
    """Resources with the same kind, pattern and operations together, in a stable order."""
    operations: dict[tuple[str, str, PatternType], set[Operation]] = {}
    for grant in grants:
        operations.setdefault((grant.resource, grant.name, grant.pattern), set()).add(
            grant.operation
        )
    groups: dict[_Key, list[str]] = {}
    for (resource, name, pattern), ops in sorted(operations.items()):
        ordered = tuple(op for op in _OPERATION_ORDER if op in ops)
        groups.setdefault((resource, pattern, ordered), []).append(name)
    return sorted(groups.items(), key=lambda item: (item[0][0] == "group", item[0]))


def _acl_commands(principal: str, grants: Iterable[Grant]) -> list[str]:
    commands = []
    for (resource, pattern, ops), names in _grouped(grants):
        head = f"acl --allow-principal {shlex.quote(f'User:{principal}')}"
        head += "".join(f" --operation {op}" for op in ops)
        if pattern == "prefixed":
            head += " --resource-pattern-type prefixed"
        parts = [head, *(f"  --{resource} {shlex.quote(name)}" for name in names)]
        commands.append(" \\\n".join(parts))
    return commands


def _commands(script: str) -> list[str]:
    """The script's commands, continuation lines joined, comments and blank lines dropped."""
    commands: list[str] = []
    pending = ""
    for raw in script.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(pending + line)
        pending = ""
    if pending:
        commands.append(pending)
    return commands


def _parse_acl(words: list[str], command: str) -> tuple[str, set[Grant]]:
    principal = ""
    operations: list[Operation] = []
    pattern: PatternType = "literal"
    resources: list[tuple[str, str]] = []
    pairs = iter(words)
    for option in pairs:
        value = next(pairs, None)
        if value is None:
            raise ValueError(f"acl command ends after {option}: {command}")
        if option == "--allow-principal" and value.startswith("User:") and not principal:
            principal = value.removeprefix("User:")
        elif option == "--operation" and value in _OPERATION_ORDER:
            operations.append(value)
        elif option == "--resource-pattern-type" and value in ("literal", "prefixed"):
            pattern = "prefixed" if value == "prefixed" else "literal"
        elif option in ("--topic", "--group"):
            resources.append((option.removeprefix("--"), value))
        else:
            raise ValueError(f"unexpected {option} {value} in: {command}")
    if not principal or not operations or not resources:
        raise ValueError(f"acl command without a principal, operation or resource: {command}")
    grants = {
        Grant("topic" if kind == "topic" else "group", name, op, pattern)
        for kind, name in resources
        for op in operations
    }
    return principal, grants
