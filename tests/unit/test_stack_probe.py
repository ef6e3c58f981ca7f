"""The stack's Kafka readiness probe (infra/probe.py) against a fake broker answering Metadata v4:
how many brokers are live, whether one of them is, and whether every replica is in sync."""

from __future__ import annotations

import importlib.util
import socket
import struct
import threading

import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("stack_probe", ROOT / "infra" / "probe.py")
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)


def string(value: str) -> bytes:
    return struct.pack(">h", len(value)) + value.encode()


def ints(values: list[int]) -> bytes:
    return struct.pack(f">i{len(values)}i", len(values), *values)


def metadata_response(brokers: list[int], partitions: dict[int, tuple[list[int], list[int]]]) -> bytes:
    """Brokers by node id; partitions of one topic, `t`, by index: (replicas, in-sync replicas)."""
    body = struct.pack(">i", 0)  # throttle
    body += struct.pack(">i", len(brokers))
    for node in brokers:
        body += struct.pack(">i", node) + string("127.0.0.1") + struct.pack(">ih", 9000 + node, -1)
    body += string("cluster") + struct.pack(">i", brokers[0])
    body += struct.pack(">i", 1) + struct.pack(">h", 0) + string("t") + struct.pack(">bi", 0, len(partitions))
    for index, (replicas, isr) in partitions.items():
        body += struct.pack(">hii", 0, index, replicas[0]) + ints(replicas) + ints(isr)
    return body


@pytest.fixture
def broker():
    """A listening socket answering every Metadata request with `answer["response"]`."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    answer: dict[str, bytes] = {}

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                size = struct.unpack(">i", conn.recv(4))[0]
                request = b""
                while len(request) < size:
                    request += conn.recv(size - len(request))
                correlation = request[4:8]
                response = correlation + answer["response"]
                conn.sendall(struct.pack(">i", len(response)) + response)

    threading.Thread(target=serve, daemon=True).start()
    yield answer, f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_three_live_brokers_with_every_replica_in_sync_are_ready(broker, capsys):
    answer, bootstrap = broker
    answer["response"] = metadata_response([1, 2, 3], {0: ([1, 2, 3], [1, 2, 3]), 1: ([2, 3, 1], [3, 1, 2])})
    assert probe.probe_kafka(bootstrap, min_brokers=3, in_sync=True) == 0
    assert "2 partitions in sync" in capsys.readouterr().out


def test_fewer_live_brokers_than_asked_for_are_not_ready(broker, capsys):
    answer, bootstrap = broker
    answer["response"] = metadata_response([1, 3], {})
    assert probe.probe_kafka(bootstrap) == 0
    assert probe.probe_kafka(bootstrap, min_brokers=3) == 1
    assert probe.probe_kafka(bootstrap, node=2) == 1
    assert "broker 2 is not live" in capsys.readouterr().err


def test_a_replica_out_of_the_isr_is_under_replication_unless_it_is_another_brokers(broker, capsys):
    answer, bootstrap = broker
    answer["response"] = metadata_response([1, 2, 3], {0: ([1, 2, 3], [1, 3]), 1: ([1, 3, 2], [1, 3, 2])})
    assert probe.probe_kafka(bootstrap, in_sync=True) == 1
    assert "1 of 2 partitions under-replicated (e.g. t-0: in-sync [1, 3] of [1, 2, 3])" in capsys.readouterr().err
    assert probe.probe_kafka(bootstrap, node=2, in_sync=True) == 1
    assert probe.probe_kafka(bootstrap, node=3, in_sync=True) == 0
    assert "2 partitions in sync" in capsys.readouterr().out


def test_the_command_line_takes_the_options_after_the_bootstrap_servers(broker):
    answer, bootstrap = broker
    answer["response"] = metadata_response([1, 2, 3], {0: ([1, 2, 3], [1, 2, 3])})
    assert probe.main(["probe.py", "kafka", bootstrap, "--brokers", "3", "--node", "2", "--in-sync"]) == 0
    assert probe.main(["probe.py", "kafka", bootstrap, "--brokers"]) == 2
