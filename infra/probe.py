#!/usr/bin/env python3
"""Readiness probes used by infra/stack.sh. Standard library only.

    probe.py kafka HOST:PORT[,HOST:PORT...] [--brokers N] [--node ID] [--in-sync]
        Sends a Kafka Metadata request (v4) to each bootstrap server in turn and
        succeeds as soon as one answers with at least one live broker. Prints a
        one-line summary (brokers, controller, cluster id).
        --brokers N   only once at least N brokers are live
        --node ID     only once the broker with node id ID is live
        --in-sync     only once every replica of every partition is in its ISR (with
                      --node: every replica on that broker), i.e. nothing is under-replicated

    probe.py postgres URL
        Runs `SELECT 1` through psycopg (fallback when `psql` is not installed).

Exit status 0 when the service answered, 1 otherwise (reason on stderr).
"""

from __future__ import annotations

import socket
import struct
import sys

METADATA = 3
METADATA_VERSION = 4  # v0-v3 were removed in Kafka 4.0; v4 works from 1.0 to 4.x
TIMEOUT = 3.0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        value = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return value


Partition = tuple[str, int, list[int], list[int]]  # topic, partition, replicas, in-sync replicas


def kafka_metadata(
    host: str, port: int, topics: bool = False
) -> tuple[list[tuple[int, str, int]], str | None, int, list[Partition]]:
    client_id = b"stack-probe"
    correlation_id = 7
    header = struct.pack(">hhih", METADATA, METADATA_VERSION, correlation_id, len(client_id)) + client_id
    # topics: -1 (null) asks for every topic, 0 for none; allow_auto_topic_creation=false
    body = struct.pack(">ib", -1 if topics else 0, 0)
    request = header + body
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        r = _Reader(_recv_exact(sock, size))
    if r.take(">i") != correlation_id:
        raise ValueError("unexpected correlation id in response")
    r.take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(r.take(">i")):
        node_id = r.take(">i")
        b_host = r.string() or "?"
        b_port = r.take(">i")
        r.string()  # rack
        brokers.append((node_id, b_host, b_port))
    cluster_id = r.string()
    controller_id = r.take(">i")
    partitions: list[Partition] = []
    for _ in range(r.take(">i")):
        r.take(">h")  # topic error code
        topic = r.string() or "?"
        r.take(">b")  # is_internal
        for _ in range(r.take(">i")):
            r.take(">h")  # partition error code
            index = r.take(">i")
            r.take(">i")  # leader
            replicas = [r.take(">i") for _ in range(r.take(">i"))]
            isr = [r.take(">i") for _ in range(r.take(">i"))]
            partitions.append((topic, index, replicas, isr))
    return brokers, cluster_id, controller_id, partitions


def _split_hostport(server: str) -> tuple[str, int]:
    server = server.strip()
    for prefix in ("PLAINTEXT://", "plaintext://"):
        if server.startswith(prefix):
            server = server[len(prefix) :]
    host, _, port = server.rpartition(":")
    return host.strip("[]") or "localhost", int(port or 9092)


def _lagging(partitions: list[Partition], node: int | None) -> list[Partition]:
    """Partitions with a replica (on `node`, if given) missing from the in-sync replicas."""
    return [p for p in partitions if any(replica not in p[3] for replica in p[2] if node is None or replica == node)]


def probe_kafka(bootstrap: str, min_brokers: int = 1, node: int | None = None, in_sync: bool = False) -> int:
    errors = []
    for server in filter(None, bootstrap.split(",")):
        try:
            host, port = _split_hostport(server)
            brokers, cluster_id, controller_id, partitions = kafka_metadata(host, port, topics=in_sync)
        except (OSError, ValueError, struct.error) as exc:
            errors.append(f"{server.strip()}: {exc or type(exc).__name__}")
            continue
        listed = ", ".join(f"{n}@{h}:{p}" for n, h, p in brokers)
        if not brokers:
            errors.append(f"{server.strip()}: no live broker yet")
            continue
        if len(brokers) < min_brokers:
            errors.append(f"{server.strip()}: {len(brokers)} of {min_brokers} brokers live [{listed}]")
            continue
        if node is not None and node not in [n for n, _, _ in brokers]:
            errors.append(f"{server.strip()}: broker {node} is not live [{listed}]")
            continue
        summary = f"brokers [{listed}], controller {controller_id}, cluster id {cluster_id}"
        if in_sync:
            mine = [p for p in partitions if node is None or node in p[2]]
            lagging = _lagging(partitions, node)
            if lagging:
                topic, index, replicas, isr = lagging[0]
                errors.append(
                    f"{server.strip()}: {len(lagging)} of {len(mine)} partitions under-replicated"
                    f" (e.g. {topic}-{index}: in-sync {isr} of {replicas})"
                )
                continue
            summary += f", {len(mine)} partitions in sync"
        print(summary)
        return 0
    print("; ".join(errors) or "no bootstrap server given", file=sys.stderr)
    return 1


def probe_postgres(url: str) -> int:
    try:
        import psycopg  # type: ignore[import-not-found]
    except ImportError:
        print("neither psql nor the psycopg package is available", file=sys.stderr)
        return 1
    try:
        with psycopg.connect(url, connect_timeout=int(TIMEOUT)) as conn:
            conn.execute("SELECT 1").fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        print(str(exc).strip() or type(exc).__name__, file=sys.stderr)
        return 1
    print("SELECT 1 ok")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] not in ("kafka", "postgres") or (argv[1] == "postgres" and len(argv) != 3):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "postgres":
        return probe_postgres(argv[2])
    options, rest = {}, argv[3:]
    try:
        while rest:
            flag, rest = rest[0], rest[1:]
            if flag == "--in-sync":
                options["in_sync"] = True
            elif flag in ("--brokers", "--node") and rest:
                options["min_brokers" if flag == "--brokers" else "node"], rest = int(rest[0]), rest[1:]
            else:
                raise ValueError(flag)
    except ValueError:
        print(__doc__, file=sys.stderr)
        return 2
    return probe_kafka(argv[2], **options)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
