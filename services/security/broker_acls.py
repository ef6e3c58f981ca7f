"""Reading and changing the broker's ACLs with Kafka's own admin protocol.

aiokafka's admin client has no create/describe/delete ACL methods, but ships the protocol
messages (DescribeAcls, CreateAcls, DeleteAcls): they are sent here, version 1, the lowest
Kafka 4 still accepts and the highest aiokafka encodes as Kafka expects.
"""

from __future__ import annotations

import asyncio

from aiokafka.protocol.admin import CreateAclsRequest_v1, DeleteAclsRequest_v1, DescribeAclsRequest_v1
from aiokafka.protocol.api import Request, RequestStruct

from services import kafka
from services.security.acls import OPERATIONS, PATTERN_TYPES, PERMISSIONS, RESOURCE_TYPES, Binding, Plan, in_scope, plan
from services.settings import Settings

ANY = 1
_NAMES = {
    table_id: {code: name for name, code in table.items()}
    for table_id, table in (
        ("resource", RESOURCE_TYPES),
        ("pattern", PATTERN_TYPES),
        ("operation", OPERATIONS),
        ("permission", PERMISSIONS),
    )
}


class AclError(RuntimeError):
    pass


class _Version1(Request[RequestStruct]):
    """Sends one prebuilt version-1 message. Negotiation would pick aiokafka's DescribeAcls v2,
    which it encodes with the v1 layout where Kafka expects the flexible one."""

    API_KEY = -1  # each instance takes its message's

    def __init__(self, struct: RequestStruct) -> None:
        self.struct = struct
        self.API_KEY = struct.API_KEY

    def build(self, request_struct_class=None) -> RequestStruct:
        return self.struct

    def prepare(self, versions: dict[int, tuple[int, int]]) -> RequestStruct:
        low, high = versions.get(self.API_KEY, (0, -1))
        if not low <= self.struct.API_VERSION <= high:
            raise AclError(
                f"the broker does not speak {type(self.struct).__name__} (versions {low}-{high}); "
                "is it Kafka 2.0 or later with an authorizer?"
            )
        return self.struct


def _wire(binding: Binding) -> tuple:
    return (
        RESOURCE_TYPES[binding.resource_type],
        binding.resource_name,
        PATTERN_TYPES[binding.pattern_type],
        binding.principal,
        binding.host,
        OPERATIONS[binding.operation],
        PERMISSIONS[binding.permission],
    )


def _check(code: int, message: str | None, what: str) -> None:
    if code:
        raise AclError(f"{what} failed: Kafka error {code} {message or ''}".strip())


async def _send(admin, struct):
    return await admin._send_request(_Version1(struct))  # noqa: SLF001 - the client's one way to send a message


async def describe(admin) -> list[Binding]:
    response = await _send(admin, DescribeAclsRequest_v1(ANY, None, ANY, None, None, ANY, ANY))
    _check(response.error_code, response.error_message, "describing ACLs")
    found = []
    for resource_type, name, pattern_type, acls in response.resources:
        for principal, host, operation, permission in acls:
            found.append(
                Binding(
                    principal,
                    _NAMES["resource"].get(resource_type, str(resource_type)),
                    _NAMES["pattern"].get(pattern_type, str(pattern_type)),
                    name,
                    _NAMES["operation"].get(operation, str(operation)),
                    _NAMES["permission"].get(permission, str(permission)),
                    host,
                )
            )
    return sorted(found)


async def create(admin, bindings: list[Binding]) -> None:
    if not bindings:
        return
    response = await _send(admin, CreateAclsRequest_v1([_wire(b) for b in bindings]))
    for binding, (code, message) in zip(bindings, response.creation_responses):
        _check(code, message, f"creating ACL {binding}")


async def delete(admin, bindings: list[Binding]) -> None:
    if not bindings:
        return
    response = await _send(admin, DeleteAclsRequest_v1([_wire(b) for b in bindings]))
    for binding, (code, message, _matching) in zip(bindings, response.filter_responses):
        _check(code, message, f"removing ACL {binding}")


async def with_admin(settings: Settings, work):
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings, "the Kafka admin API")
    try:
        return await work(admin)
    finally:
        await admin.close()


async def in_force(settings: Settings) -> list[Binding]:
    """The ACLs on resources of the settings' topic prefix."""

    async def work(admin):
        return [b for b in await describe(admin) if in_scope(b, settings.topic_prefix)]

    return await with_admin(settings, work)


async def apply(settings: Settings, desired: list[Binding], *, dry_run: bool = False, timeout_s: float = 30.0) -> Plan:
    """Make the prefix's ACLs exactly `desired`; a second call changes nothing.

    Returns once the broker enforces them: the controller records a change at once, the
    broker's authorizer a moment later, and DescribeAcls answers from the latter."""

    async def work(admin):
        changes = plan(desired, await describe(admin), settings.topic_prefix)
        if dry_run:
            return changes
        await delete(admin, changes.delete)
        await create(admin, changes.create)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (left := plan(desired, await describe(admin), settings.topic_prefix)).create or left.delete:
            if asyncio.get_running_loop().time() > deadline:
                raise AclError(
                    f"the broker still differs from the file after {timeout_s:.0f}s: "
                    f"{len(left.create)} to add, {len(left.delete)} to remove"
                )
            await asyncio.sleep(0.05)
        return changes

    return await with_admin(settings, work)
