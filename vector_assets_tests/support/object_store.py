"""Real object-store servers on 127.0.0.1 for the tests, and one view of a root's files that
reads the same on disk, in a bucket and in a container:

- S3: moto's server mode, in this process;
- Azure: Azurite, the npm package ``make test`` installs into ``.venv/azurite``, a child process.

The product reaches each server only as it would reach a real one: through the provider's own
endpoint and credential variables (``AWS_ENDPOINT_URL``, ``AZURE_STORAGE_ENDPOINT``, ...). The
tests inspect buckets with boto3 and containers with azure-storage-blob, never through the
product's storage code.

moto checks signatures only once it has served ``INITIAL_NO_AUTH_ACTION_COUNT`` requests, so
the first three create an IAM user with S3 rights and its key pair; from then on a wrong
secret is refused as it would be by AWS or MinIO.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
SETUP_REQUESTS = 3  # create_user, put_user_policy, create_access_key
# IAM too, so a test can make a user with narrower rights.
S3_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}]}


@dataclass
class S3Server:
    """A moto server: its endpoint, and the key pair of a user allowed to use S3."""

    server: Any
    endpoint: str
    access_key: str
    secret_key: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": REGION,
        }

    def new_bucket(self) -> str:
        name = f"va-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.server.stop()

    def user_denied(self, bucket: str, key_pattern: str) -> tuple[str, str]:
        """The key pair of a new user who may do anything in S3 but write keys matching the pattern."""
        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION,
                           aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)
        name = f"denied-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/{key_pattern}"},
        ]}
        iam.put_user_policy(UserName=name, PolicyName="deny", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]


def start_moto(port: int = 0) -> Any:
    os.environ.setdefault("INITIAL_NO_AUTH_ACTION_COUNT", str(SETUP_REQUESTS))  # read when moto is imported
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


def start_s3_server() -> S3Server:
    import boto3

    server = start_moto()
    endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION,
                       aws_access_key_id="setup", aws_secret_access_key="setup")
    iam.create_user(UserName="vector-backups")
    iam.put_user_policy(UserName="vector-backups", PolicyName="s3", PolicyDocument=json.dumps(S3_POLICY))
    key = iam.create_access_key(UserName="vector-backups")["AccessKey"]
    return S3Server(server, endpoint, key["AccessKeyId"], key["SecretAccessKey"])


# Azurite's one account and its published key (the emulator's, the same everywhere).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_BIN = Path(sys.prefix) / "azurite" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_LISTENING = re.compile(r"listens on (http://127\.0\.0\.1:\d+)")
# An access-log line: 127.0.0.1 - - [date] "GET /devstoreaccount1/container/key?query HTTP/1.1" 200 -
ACCESS_LOG_REQUEST = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+"')
AZURITE_START_SECONDS = 60


@dataclass
class AzureServer:
    """An Azurite Blob service: its endpoint (account included), and the requests it logged."""

    process: subprocess.Popen
    endpoint: str
    workdir: Path
    access_log: list[str] = field(default_factory=list)

    @property
    def account_endpoint(self) -> str:
        return f"{self.endpoint}/{AZURITE_ACCOUNT}"

    def client(self, account_key: str = AZURITE_KEY) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(self.account_endpoint, credential={"account_name": AZURITE_ACCOUNT,
                                                                     "account_key": account_key}, retry_total=1)

    def environment(self) -> dict[str, str]:
        return {
            "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT, "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY,
            "AZURE_STORAGE_ENDPOINT": self.account_endpoint,
        }

    def new_container(self) -> str:
        name = f"va-{uuid.uuid4().hex[:12]}"
        self.client().create_container(name)
        return name

    def requests(self) -> list[tuple[str, str]]:
        """(method, target) of every request logged since ``forget_requests``.

        Azurite logs a request on its output once it has answered, and a thread reads that
        output, so a line may lag behind. A marker request sent now is logged after every
        request answered before it: once its line is read, so are theirs."""
        marker = f"/{AZURITE_ACCOUNT}/va-log-marker-{uuid.uuid4().hex}"
        try:
            urllib.request.urlopen(self.endpoint + marker, timeout=10)
        except urllib.error.HTTPError:
            pass  # refused (no such container, no signature), and logged all the same
        deadline = time.monotonic() + 10
        while not any(marker in line for line in list(self.access_log)):
            assert time.monotonic() < deadline, f"Azurite did not log {marker}"
            time.sleep(0.01)
        return [(match.group(1), match.group(2)) for line in list(self.access_log)
                if (match := ACCESS_LOG_REQUEST.search(line)) and "/va-log-marker-" not in line]

    def forget_requests(self) -> None:
        self.access_log.clear()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wrong_azure_key() -> str:
    """A well-formed account key that is not the account's (obstore refuses a malformed one before any request)."""
    return base64.b64encode(b"Wrong-Azure-Key-Hunter2x-SeaLion9-0123456789abcdef0123456789abcd").decode()


def start_azurite() -> AzureServer:
    """Azurite on 127.0.0.1 at a free port, in memory; it is stopped with the process that started it."""
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"Azurite is not installed at {AZURITE_BIN}; make test installs it (npm install --prefix .venv/azurite)")
    workdir = Path(tempfile.mkdtemp(prefix="va-azurite-"))
    command = [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
               "--disableTelemetry", "--skipApiVersionCheck"]  # the azure-storage-blob client speaks a newer API
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=_terminate_with_parent)
    listening = threading.Event()
    server = AzureServer(process, "", workdir)

    def read_output() -> None:
        for line in process.stdout:
            match = AZURITE_LISTENING.search(line)
            if match and not listening.is_set():
                server.endpoint = match.group(1)
                listening.set()
            elif ACCESS_LOG_REQUEST.search(line):
                server.access_log.append(line)
        listening.set()

    threading.Thread(target=read_output, name="azurite output", daemon=True).start()
    if not listening.wait(AZURITE_START_SECONDS) or not server.endpoint:
        server.stop()
        raise RuntimeError(f"Azurite did not start within {AZURITE_START_SECONDS} s (exit code {process.poll()})")
    return server


def _terminate_with_parent() -> None:
    """Linux: Azurite gets SIGTERM when the test process dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class RootFiles:
    """A root's files by location label (``vector_bak``, ``task_…/vector_bak``): on disk, in a
    bucket or in a container."""

    url: str
    disk: Path | None = None
    s3: S3Server | None = None
    azure: AzureServer | None = None
    bucket: str = ""  # the bucket, or the container
    prefix: str = ""
    kind: str = field(init=False)

    def __post_init__(self) -> None:
        self.kind = "disk" if self.disk is not None else "s3" if self.s3 is not None else "azure"

    def _key(self, label: str, name: str) -> str:
        return f"{self.prefix}/{label}/{name}"

    def _container(self) -> Any:
        return self.azure.client().get_container_client(self.bucket)

    def names(self, label: str = "vector_bak") -> set[str]:
        if self.disk is not None:
            folder = self.disk / label
            return {path.name for path in folder.iterdir()} if folder.is_dir() else set()
        if self.azure is not None:
            return {blob.name.rsplit("/", 1)[-1] for blob in self._container().list_blobs(f"{self.prefix}/{label}/")}
        listing = self.s3.client().list_objects_v2(Bucket=self.bucket, Prefix=f"{self.prefix}/{label}/")
        return {item["Key"].rsplit("/", 1)[-1] for item in listing.get("Contents", [])}

    def read(self, label: str, name: str) -> bytes:
        if self.disk is not None:
            return (self.disk / label / name).read_bytes()
        if self.azure is not None:
            return self._container().download_blob(self._key(label, name)).readall()
        return self.s3.client().get_object(Bucket=self.bucket, Key=self._key(label, name))["Body"].read()

    def write(self, label: str, name: str, body: bytes) -> None:
        if self.disk is not None:
            (self.disk / label).mkdir(parents=True, exist_ok=True)
            (self.disk / label / name).write_bytes(body)
        elif self.azure is not None:
            self._container().upload_blob(self._key(label, name), body, overwrite=True)
        else:
            self.s3.client().put_object(Bucket=self.bucket, Key=self._key(label, name), Body=body)

    def delete(self, label: str, name: str) -> None:
        if self.disk is not None:
            (self.disk / label / name).unlink()
        elif self.azure is not None:
            self._container().delete_blob(self._key(label, name))
        else:
            self.s3.client().delete_object(Bucket=self.bucket, Key=self._key(label, name))

    def all_bytes(self) -> bytes:
        """Every file's content, concatenated: for checking that no secret was written anywhere."""
        if self.disk is not None:
            return b"".join(path.read_bytes() for path in sorted(self.disk.rglob("*")) if path.is_file())
        if self.azure is not None:
            container = self._container()
            return b"".join(container.download_blob(blob.name).readall() for blob in container.list_blobs())
        client = self.s3.client()
        listing = client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return b"".join(client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read() for item in listing)

    def multipart_uploads(self) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted: in a container,
        blobs that have blocks staged but none committed."""
        if self.disk is not None:
            return []
        if self.azure is not None:
            container = self._container()
            committed = {blob.name for blob in container.list_blobs()}
            staged = {blob.name for blob in container.list_blobs(include=["uncommittedblobs"])}
            return sorted(staged - committed)
        uploads = self.s3.client().list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [upload["Key"] for upload in uploads]

    @property
    def request_prefix(self) -> str:
        """The start of the request path of every object under the root."""
        account = f"/{AZURITE_ACCOUNT}" if self.azure is not None else ""
        return f"{account}/{self.bucket}/{self.prefix}/"

    @property
    def listing_marker(self) -> str:
        """What the query of a listing request holds."""
        return "comp=list" if self.azure is not None else "list-type=2"

    def forget_requests(self, caplog) -> None:
        caplog.clear()
        if self.azure is not None:
            self.azure.forget_requests()

    def requests(self, caplog) -> list[tuple[str, str]]:
        """(method, target) of the requests the server answered since ``forget_requests``: the
        S3 server logs through ``werkzeug`` (caplog at INFO), Azurite on its own output."""
        if self.azure is not None:
            return self.azure.requests()
        lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
        return [(match.group(1), match.group(2)) for line in lines if (match := ACCESS_LOG_REQUEST.search(line))]
