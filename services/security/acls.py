"""ACLs per principal, from the declarative file (infra/acls.toml) to Kafka's ACL bindings.

Pure: `bindings(document, prefix)` is what the broker must hold for a topic prefix, and
`plan(desired, current, prefix)` what to add and remove to get there.

    python -m services.security.acls principals FILE    # the file's users, one a line
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from events.topics import TOPICS, topic_name

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = ROOT / "infra" / "acls.toml"

# Kafka's wire codes (org.apache.kafka.common.resource / acl).
RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4, "transactional_id": 5}
PATTERN_TYPES = {"literal": 3, "prefixed": 4}
OPERATIONS = {
    "all": 2,
    "read": 3,
    "write": 4,
    "create": 5,
    "delete": 6,
    "alter": 7,
    "describe": 8,
    "cluster_action": 9,
    "describe_configs": 10,
    "alter_configs": 11,
    "idempotent_write": 12,
}
PERMISSIONS = {"deny": 2, "allow": 3}
EVERY_TOPIC = "*"
KEYS = {"users", "read", "write", "groups", "group_prefixes", "transactional_id_prefixes", "internal_topic_prefixes"}


class AclFileError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Binding:
    principal: str  # "User:<name>"
    resource_type: str  # a key of RESOURCE_TYPES
    pattern_type: str  # literal | prefixed
    resource_name: str
    operation: str  # a key of OPERATIONS
    permission: str = "allow"
    host: str = "*"

    def __str__(self) -> str:
        return (
            f"{self.principal:18} {self.permission:5} {self.operation:16} {self.resource_type:16} "
            f"{self.pattern_type:8} {self.resource_name}"
        )


@dataclass(frozen=True)
class Plan:
    create: list[Binding] = field(default_factory=list)
    delete: list[Binding] = field(default_factory=list)


def load(path: Path | str = DEFAULT_FILE) -> dict:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise AclFileError(f"cannot read the ACL file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise AclFileError(f"{path} is not valid TOML: {error}") from error


def _roles(document: dict) -> dict[str, dict]:
    roles = document.get("principals")
    if not isinstance(roles, dict) or not roles:
        raise AclFileError("the ACL file declares no [principals.NAME] table")
    for role, entry in roles.items():
        if not isinstance(entry, dict):
            raise AclFileError(f"principals.{role} must be a table")
        unknown = set(entry) - KEYS
        if unknown:
            raise AclFileError(
                f"principals.{role}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KEYS))}"
            )
        for key, value in entry.items():
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise AclFileError(f"principals.{role}.{key} must be a list of non-empty strings")
    return roles


def users_of(role: str, entry: dict) -> list[str]:
    return entry.get("users", [role])


def principals(document: dict) -> list[str]:
    """Every user the file names, in the order it names them."""
    seen: dict[str, None] = {}
    for role, entry in _roles(document).items():
        seen.update(dict.fromkeys(users_of(role, entry)))
    return list(seen)


def _catalog_topic(role: str, key: str, name: str, prefix: str) -> tuple[str, str]:
    """(pattern type, resource name) of a topic in `read` or `write`."""
    if name == EVERY_TOPIC:
        return "prefixed", f"{prefix}."
    if name not in {spec.name for spec in TOPICS}:
        raise AclFileError(
            f"principals.{role}.{key}: {name!r} is not a topic of the catalog (events/topics.py) nor {EVERY_TOPIC!r}"
        )
    return "literal", topic_name(name, prefix)


def _named(role: str, key: str, template: str, prefix: str) -> str:
    if not template.startswith("{prefix}"):
        # Names outside the prefix would escape `acl apply`'s scope and never be removed.
        raise AclFileError(f"principals.{role}.{key}: {template!r} must start with {{prefix}}")
    try:
        return template.format(prefix=prefix)
    except (KeyError, IndexError, ValueError) as error:
        raise AclFileError(f"principals.{role}.{key}: {template!r} may only use {{prefix}}") from error


def _role_grants(role: str, entry: dict, prefix: str) -> list[tuple[str, str, str, str]]:
    """(resource type, pattern type, name, operation) a role is allowed."""
    grants = []
    for key, operation in (("read", "read"), ("write", "write")):
        for name in entry.get(key, []):
            pattern, resource = _catalog_topic(role, key, name, prefix)
            grants += [("topic", pattern, resource, operation), ("topic", pattern, resource, "describe_configs")]
    for key, resource_type, pattern, operation in (
        ("groups", "group", "literal", "read"),
        ("group_prefixes", "group", "prefixed", "read"),
        ("transactional_id_prefixes", "transactional_id", "prefixed", "write"),
        ("internal_topic_prefixes", "topic", "prefixed", "all"),
    ):
        grants += [
            (resource_type, pattern, _named(role, key, template, prefix), operation) for template in entry.get(key, [])
        ]
    return grants


def bindings(document: dict, prefix: str) -> list[Binding]:
    """Every ALLOW binding the file gives, for one topic prefix: sorted, each once."""
    result = set()
    for role, entry in _roles(document).items():
        grants = _role_grants(role, entry, prefix)
        for user in users_of(role, entry):
            result.update(Binding(f"User:{user}", *grant) for grant in grants)
    return sorted(result)


def in_scope(binding: Binding, prefix: str) -> bool:
    """Whether a binding is on a resource of this prefix: `acl apply` manages those and no other."""
    return binding.resource_name == prefix or binding.resource_name.startswith(f"{prefix}.")


def plan(desired: list[Binding], current: list[Binding], prefix: str) -> Plan:
    present = {b for b in current if in_scope(b, prefix)}
    wanted = set(desired)
    return Plan(create=sorted(wanted - present), delete=sorted(present - wanted))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "principals":
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print("\n".join(principals(load(argv[1]))))
    except AclFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
