"""A Kafka broker of a test's own, for tests that stop and restart the broker.

Same jars and settings as the local stack, its own ports and data directory, so
restarting it disturbs no other test.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBS = ROOT / ".local" / "kafka" / "libs"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateKafka:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port, self.controller_port = _free_port(), _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.properties = directory / "server.properties"
        self.properties.write_text("\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            "controller.listener.names=CONTROLLER",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={directory / 'data'}",
            "offsets.topic.replication.factor=1", "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1", "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1", "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0", "offsets.topic.num.partitions=3", ""]))
        if not LIBS.is_dir():
            raise RuntimeError(f"no Kafka jars in {LIBS}: run `make up` once")
        self._java("kafka.tools.StorageTool", "format", "--config", str(self.properties),
                   "--cluster-id", uuid.uuid4().hex[:22], wait=True)

    def _java(self, *args: str, wait: bool = False):
        command = ["java", "-Xms128m", "-Xmx512m", "-cp", f"{LIBS}/*",
                   f"-Dlog4j2.configurationFile={ROOT / 'infra' / 'kafka' / 'log4j2.yaml'}",
                   f"-Dkafka.logs.dir={self.directory / 'logs'}", *args]
        log = open(self.directory / "broker.out", "ab")
        if wait:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=120)
            return None
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def start(self, timeout: float = 90.0) -> None:
        self.process = self._java("kafka.Kafka", str(self.properties))
        deadline = time.monotonic() + timeout
        while subprocess.run([sys.executable, str(ROOT / "infra" / "probe.py"), "kafka", self.bootstrap],
                             capture_output=True).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private broker did not start; see {self.directory / 'broker.out'}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
