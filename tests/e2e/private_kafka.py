"""A Kafka broker of a test's own, for tests that stop and restart the broker.

Configured and formatted by the local stack itself (`infra/stack.sh prepare`), so it has the
same jars and settings, in the profile the suite runs in (the secure one when the settings
say SASL_SSL: same CA and passwords), with its own ports and data directory, so restarting
it disturbs no other test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench.pipeline.stages import free_port
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LIBS = ROOT / ".local" / "kafka" / "libs"
STACK = ROOT / "infra" / "stack.sh"


class PrivateKafka:
    def __init__(self, directory: Path, secure: bool | None = None) -> None:
        self.directory = directory
        self.secure = Settings.from_env().kafka_security_protocol == "SASL_SSL" if secure is None else secure
        self.port, self.controller_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.properties = directory / "server.properties"
        profile = ["--secure"] if self.secure else []
        ports = {
            "STACK_KAFKA_DIR": str(directory),
            "STACK_KAFKA_PORT": str(self.port),
            "STACK_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "STACK_SECURE_KAFKA_PORT": str(self.port),
            "STACK_SECURE_KAFKA_CONTROLLER_PORT": str(self.controller_port),
        }
        # Without the suite's endpoint, which would count as an external broker to the stack.
        env = {**{k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}, **ports}
        subprocess.run(
            ["bash", str(STACK), "prepare", *profile, "offsets.topic.num.partitions=3"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=300,
        )
        # The admin's client settings for this broker, for the readiness probe.
        out = subprocess.run(
            ["bash", str(STACK), "env", *profile], env=env, cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        self.client_env = {
            **os.environ,
            **dict(re.findall(r"export (\w+)=(\S+)", out)),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
        }

    def _probe(self) -> list[str]:
        if self.secure:
            return [sys.executable, "-m", "services.security.probe"]
        return [sys.executable, str(ROOT / "infra" / "probe.py"), "kafka", self.bootstrap]

    def start(self, timeout: float = 90.0) -> None:
        log = open(self.directory / "broker.out", "ab")
        self.process = subprocess.Popen(
            [
                "java",
                "-Xms128m",
                "-Xmx512m",
                "-cp",
                f"{LIBS}/*",
                f"-Dlog4j2.configurationFile={ROOT / 'infra' / 'kafka' / 'log4j2.yaml'}",
                f"-Dkafka.logs.dir={self.directory / 'logs'}",
                "kafka.Kafka",
                str(self.properties),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while subprocess.run(self._probe(), env=self.client_env, cwd=ROOT, capture_output=True).returncode != 0:
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
