"""A real S3 server on 127.0.0.1 for the tests (moto's server mode), and one view of a root's
files that reads the same on disk and in a bucket.

The product reaches the server only as it would reach MinIO: through ``AWS_ENDPOINT_URL`` and
the standard credential variables. The tests inspect the bucket with boto3 (moto's own client
dependency), never through the product's storage code.

moto checks signatures only once it has served ``INITIAL_NO_AUTH_ACTION_COUNT`` requests, so
the first three create an IAM user with S3 rights and its key pair; from then on a wrong
secret is refused as it would be by AWS or MinIO.
"""

from __future__ import annotations

import json
import os
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


@dataclass
class RootFiles:
    """A root's files by location label (``vector_bak``, ``task_…/vector_bak``): on disk or in a bucket."""

    url: str
    disk: Path | None = None
    s3: S3Server | None = None
    bucket: str = ""
    prefix: str = ""
    kind: str = field(init=False)

    def __post_init__(self) -> None:
        self.kind = "disk" if self.disk is not None else "s3"

    def _key(self, label: str, name: str) -> str:
        return f"{self.prefix}/{label}/{name}"

    def names(self, label: str = "vector_bak") -> set[str]:
        if self.disk is not None:
            folder = self.disk / label
            return {path.name for path in folder.iterdir()} if folder.is_dir() else set()
        listing = self.s3.client().list_objects_v2(Bucket=self.bucket, Prefix=f"{self.prefix}/{label}/")
        return {item["Key"].rsplit("/", 1)[-1] for item in listing.get("Contents", [])}

    def read(self, label: str, name: str) -> bytes:
        if self.disk is not None:
            return (self.disk / label / name).read_bytes()
        return self.s3.client().get_object(Bucket=self.bucket, Key=self._key(label, name))["Body"].read()

    def write(self, label: str, name: str, body: bytes) -> None:
        if self.disk is not None:
            (self.disk / label).mkdir(parents=True, exist_ok=True)
            (self.disk / label / name).write_bytes(body)
        else:
            self.s3.client().put_object(Bucket=self.bucket, Key=self._key(label, name), Body=body)

    def delete(self, label: str, name: str) -> None:
        if self.disk is not None:
            (self.disk / label / name).unlink()
        else:
            self.s3.client().delete_object(Bucket=self.bucket, Key=self._key(label, name))

    def all_bytes(self) -> bytes:
        """Every file's content, concatenated: for checking that no secret was written anywhere."""
        if self.disk is not None:
            return b"".join(path.read_bytes() for path in sorted(self.disk.rglob("*")) if path.is_file())
        client = self.s3.client()
        listing = client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return b"".join(client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read() for item in listing)

    def multipart_uploads(self) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted."""
        if self.disk is not None:
            return []
        uploads = self.s3.client().list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [upload["Key"] for upload in uploads]
