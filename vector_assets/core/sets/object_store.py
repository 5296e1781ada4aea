"""The object-store driver: S3 and S3-compatible servers (MinIO, R2, Ceph), GCS and Azure,
through ``obstore``. Credentials and the endpoint come from the store's standard environment
variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``;
``AZURE_STORAGE_*``; ``GOOGLE_*``), which obstore reads itself; no secret passes through this
code, which reads their values only to cut them out of its messages. An error names the bucket
and key, the provider's own endpoint variable, and the store's cause.

An object becomes visible when its upload completes, so there is no rename to publish with.
A set being written is hidden instead by a marker object ``vector_backup_<ts>.json.tmp``
(scans skip a timestamp with any ``.tmp``), written before the first data object and removed
after the manifest; prune hides a set the same way, then deletes its manifest before any other
object. So a marker beside a published manifest, which a crash between the two steps leaves,
hides nothing: every file of the set is still there (``catalog._left_beside_its_manifest``).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import obstore
from obstore.store import from_url

from vector_assets.core.environment import Setting, values_of
from vector_assets.core.errors import (
    ObjectMissingError,
    ObjectStoreAccessError,
    ObjectStoreError,
    ObjectStoreUnreachableError,
    PathOutsideRootError,
    VectorAssetsError,
)
from vector_assets.core.sets.naming import tmp_name
from vector_assets.core.sets.storage import Capabilities, FileEntry, HashingWriter

OBJECT_STORE = Capabilities(files_visible_when_written=True)
# Multipart: 8 MiB parts (S3's minimum is 5 MiB), four in flight: about 40 MiB of buffers,
# whatever the table size.
PART_BYTES = 8 << 20
PARTS_IN_FLIGHT = 4
READ_CHUNK_BYTES = 1 << 20
ERROR_CODE = re.compile(r"<Code>([^<]+)</Code>")
ERROR_MESSAGE = re.compile(r"<Message>([^<]+)</Message>")
ACCESS_CODES = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "AuthorizationHeaderMalformed", "AllAccessDisabled", "AccountProblem",
    "AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch", "InsufficientAccountPermissions",
}
THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable",
                  "InternalError", "RequestTimeout", "ServerBusy", "OperationTimedOut"}
# Phrases of the HTTP client's errors when no answer came; "retry_timeout" is in every message.
UNREACHABLE_HINTS = ("error sending request", "connection closed", "connection reset", "Connection refused",
                     "operation timed out", "error decoding response body", "dns error",
                     "request or response body error", "IncompleteBody")
# The HTTP client's own kinds of failure (object_store's HttpErrorKind) that another try may not meet:
# no connection, a request that never got an answer, a body cut off part-way, a timeout.
TRANSIENT_HTTP_KINDS = {"Connect", "Request", "Interrupted", "Timeout"}
HTTP_KIND = re.compile(r"HttpError \{\s*kind: (\w+)")
# A status that says "later": too many requests, or the server failing (500, 502, 503, 504).
RETRY_LATER_STATUS = re.compile(r"status code: ((?:429|5\d\d) [^:<]*)")
# The display chain of a retried request: "Error performing GET <url> in 2.1s, after 10 retries, … - <cause>".
RETRIED_REQUEST = re.compile(r"Error performing \S+ \S+ in .*? - (.*)", re.DOTALL)
RETRIES = re.compile(r"after (\d+) retries")
# The innermost detail of obstore's debug rendering: an OS message, or a bare variant name.
OS_MESSAGE = re.compile(r'message: "([^"]+)"')
LEAF_VARIANT = re.compile(r"(?:source|error): ([A-Z]\w*),?\s*\n")
URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#]*)[?#]\S*", re.IGNORECASE)
URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)
CAUSE_MAX_CHARS = 300


# The endpoint variables obstore reads, per provider, in the order it prefers them. Named here
# because a plain http:// endpoint (MinIO, Azurite, a local test server) has to be allowed
# explicitly, and because errors name the one that is set.
AWS_ENDPOINT_URL = Setting("AWS_ENDPOINT_URL", "", "the S3-compatible endpoint (MinIO, R2, Ceph); empty: AWS")
AWS_ENDPOINT_URL_S3 = Setting("AWS_ENDPOINT_URL_S3", "", "an S3 endpoint that takes precedence over AWS_ENDPOINT_URL")
AWS_ENDPOINT = Setting("AWS_ENDPOINT", "", "an older name of AWS_ENDPOINT_URL")
AZURE_STORAGE_ENDPOINT = Setting("AZURE_STORAGE_ENDPOINT", "", "an az:// root's Blob endpoint (Azurite); empty: Azure")
AZURE_ENDPOINT = Setting("AZURE_ENDPOINT", "", "another name of AZURE_STORAGE_ENDPOINT")
AZURE_STORAGE_USE_EMULATOR = Setting(
    "AZURE_STORAGE_USE_EMULATOR", "", "true: az:// roots go to Azurite at AZURITE_BLOB_STORAGE_URL, with its own account",
)
AZURITE_BLOB_STORAGE_URL = Setting(
    "AZURITE_BLOB_STORAGE_URL", "http://127.0.0.1:10000", "Azurite's Blob endpoint when AZURE_STORAGE_USE_EMULATOR is true",
)
GOOGLE_BASE_URL = Setting("GOOGLE_BASE_URL", "", "a gs:// root's endpoint (fake-gcs-server); empty: Google")
# obstore's reading of a yes/no variable.
TRUTHY = {"1", "true", "on", "yes", "y"}


@dataclass(frozen=True)
class Emulator:
    """A provider's local emulator: while ``switch`` is on, obstore ignores the endpoint
    variables and talks to ``endpoint``."""

    switch: Setting
    endpoint: Setting

    def on(self) -> bool:
        return self.switch.get().lower() in TRUTHY


@dataclass(frozen=True)
class Provider:
    """One provider's schemes and variables: its endpoints (named by errors, and allowed over
    plain http://), the credentials an access error asks to check, and the secrets obstore
    reads, whose values no message ever shows."""

    name: str
    schemes: tuple[str, ...]
    container: str  # what the provider calls the URL's first part: a bucket, a container
    endpoints: tuple[Setting, ...]  # in the order obstore prefers them
    credentials: str
    secrets: tuple[str, ...]
    emulator: Emulator | None = None

    def endpoint(self) -> tuple[str, str] | None:
        """The endpoint obstore uses, with the variable it came from; None: the provider's default."""
        if self.emulator is not None and self.emulator.on():
            return self.emulator.endpoint.get(), self.emulator.endpoint.name
        for setting in self.endpoints:
            value = setting.get()
            if value:
                return value, setting.name
        return None

    def describe_endpoint(self) -> str:
        found = self.endpoint()
        if found is None:
            names = [setting.name for setting in self.endpoints]
            unset = f"{names[0]} is not set" if len(names) == 1 else f"none of {', '.join(names)} is set"
            return f"{self.name}'s default endpoint; {unset}"
        value, name = found
        return f"endpoint {without_userinfo(value)} from {name}"

    def settings(self) -> tuple[Setting, ...]:
        emulator = (self.emulator.switch, self.emulator.endpoint) if self.emulator else ()
        return self.endpoints + emulator


S3 = Provider(
    "S3", ("s3", "s3a"), "bucket", (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_ENDPOINT),
    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's permissions",
    ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_TOKEN", "AWS_SSE_CUSTOMER_KEY_BASE64"),
)
AZURE = Provider(
    "Azure", ("az", "azure", "adl", "abfs", "abfss"), "container", (AZURE_STORAGE_ENDPOINT, AZURE_ENDPOINT),
    "AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_TOKEN) and the container's permissions",
    ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_MASTER_KEY", "AZURE_STORAGE_SAS_KEY",
     "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CLIENT_SECRET", "AZURE_CLIENT_SECRET", "AZURE_STORAGE_TOKEN",
     "AZURE_ENCRYPTION_KEY", "AZURE_FABRIC_SESSION_TOKEN"),
    Emulator(AZURE_STORAGE_USE_EMULATOR, AZURITE_BLOB_STORAGE_URL),
)
GCS = Provider(
    "GCS", ("gs",), "bucket", (GOOGLE_BASE_URL,),
    "GOOGLE_SERVICE_ACCOUNT (or GOOGLE_APPLICATION_CREDENTIALS) and the bucket's permissions",
    ("GOOGLE_SERVICE_ACCOUNT_KEY", "GOOGLE_BEARER_TOKEN"),
)
PROVIDERS = {scheme: provider for provider in (S3, AZURE, GCS) for scheme in provider.schemes}
# Every variable this driver reads itself (settings.ALL_SETTINGS lists them).
OBJECT_STORE_SETTINGS = tuple(setting for provider in (S3, AZURE, GCS) for setting in provider.settings())
# Any provider's secret is cut out of every message, whichever root failed.
OBJECT_STORE_SECRET_VARIABLES = tuple(name for provider in (S3, AZURE, GCS) for name in provider.secrets)


def object_store_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of those secrets that are set, longest first."""
    values = set(values_of(OBJECT_STORE_SECRET_VARIABLES, environ))
    return sorted((value for value in values if len(value) >= 4), key=len, reverse=True)


def provider_of(url: str) -> Provider:
    return PROVIDERS[url.split("://", 1)[0].strip().lower()]


def classify_error(exc: Exception, action: str, where: str) -> VectorAssetsError:
    """A typed one-line error naming the object at fault and keeping the store's cause; never
    the store's raw text, which is long (it carries URLs, the XML body and a debug dump)."""
    if isinstance(exc, VectorAssetsError):
        return exc
    text = str(exc)
    provider = provider_of(where)
    code_match = ERROR_CODE.search(text)
    code = code_match.group(1) if code_match else None
    if code in ACCESS_CODES or isinstance(exc, (obstore.exceptions.PermissionDeniedError,
                                                obstore.exceptions.UnauthenticatedError)):
        return ObjectStoreAccessError(
            f"the object store refused to {action} {where} ({code or error_cause(text)}); check {provider.credentials}"
        )
    if code in ("NoSuchBucket", "ContainerNotFound"):
        return ObjectStoreAccessError(f"cannot {action} {where}: the {provider.container} {bucket_of(where)!r} "
                                      f"does not exist ({provider.describe_endpoint()})")
    if isinstance(exc, FileNotFoundError):
        return ObjectMissingError(f"cannot {action} {where}: no such object")
    kind = HTTP_KIND.search(text)
    status = RETRY_LATER_STATUS.search(text)
    if code in THROTTLE_CODES:
        reason = f"throttled or failing ({code})"
    elif status:
        reason = f"throttled or failing (HTTP {status.group(1).strip()})"
    elif (kind and kind.group(1) in TRANSIENT_HTTP_KINDS) or any(hint in text for hint in UNREACHABLE_HINTS):
        reason = "the server is unreachable or the connection broke"
    else:
        return ObjectStoreError(f"cannot {action} {where}: {error_cause(text) or type(exc).__name__} "
                                f"({provider.describe_endpoint()})")
    return ObjectStoreUnreachableError(
        f"cannot {action} {where}: {reason} ({provider.describe_endpoint()}): {error_cause(text)}"
    )


def error_cause(text: str) -> str:
    """The innermost part of obstore's error chain, on one line, without URLs' query strings or
    any secret: ``HTTP error: builder error (BadScheme)``, not the request that carried it."""
    display, _, debug = text.partition("\n\nDebug source:")
    retried = RETRIED_REQUEST.search(display)
    cause = retried.group(1) if retried else re.sub(r"^Generic \w+ error: ", "", display)
    if "<" in cause:  # an XML or HTML body: its code and message, not its markup
        code, message = ERROR_CODE.search(cause), ERROR_MESSAGE.search(cause)
        cause = cause.split("<", 1)[0].rstrip(": \n")
        cause += "".join(f": {part.group(1)}" for part in (code, message) if part)
    leaf = OS_MESSAGE.findall(debug) or LEAF_VARIANT.findall(debug)
    if leaf and leaf[-1].lower() not in cause.lower():
        cause += f" ({leaf[-1]})"
    retries = RETRIES.search(display)
    if retries:
        cause += f", after {retries.group(1)} retries"
    cause = without_userinfo(URL_QUERY.sub(r"\1", " ".join(cause.split())))
    for secret in object_store_secrets():
        cause = cause.replace(secret, "***")
    return cause if len(cause) <= CAUSE_MAX_CHARS else cause[: CAUSE_MAX_CHARS - 1] + "…"


def without_userinfo(text: str) -> str:
    return URL_USERINFO.sub(r"\1", text)


def bucket_of(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


@contextmanager
def store_errors(action: str, where: str) -> Iterator[None]:
    try:
        yield
    except VectorAssetsError:
        raise
    except Exception as exc:
        raise classify_error(exc, action, where) from None


def open_store(url: str) -> Any:
    """An obstore store for the URL; a plain ``http://`` endpoint (MinIO, Azurite, moto) in the
    provider's own endpoint variable is allowed."""
    endpoint = provider_of(url).endpoint()
    options = {"allow_http": True} if endpoint and endpoint[0].lower().startswith("http://") else None
    with store_errors("open", url):
        return from_url(url, client_options=options)


@dataclass(frozen=True)
class ObjectRoot:
    """``s3://bucket/prefix``: locations are the prefix's ``vector_bak/`` and ``<task_id>/vector_bak/``."""

    url: str
    store: Any = field(compare=False, repr=False)
    capabilities = OBJECT_STORE

    @classmethod
    def open(cls, url: str) -> ObjectRoot:
        url = url.strip().rstrip("/")
        return cls(url, open_store(url))

    def __str__(self) -> str:
        return self.url

    def exists(self) -> bool:
        """An object store has no folders to be missing; a missing bucket or refused access
        shows at the first listing, as a typed error naming the bucket."""
        return True

    def location_names(self) -> list[str]:
        """The prefixes right under the root, in one listing."""
        with store_errors("list", self.url + "/"):
            listing = obstore.list_with_delimiter(self.store, None)
        return sorted(PurePosixPath(prefix).name for prefix in listing["common_prefixes"])

    def folder_at(self, relative: str | PurePosixPath) -> ObjectFolder:
        parts = [part for part in PurePosixPath(relative).parts if part not in (".", "")]
        if str(relative).startswith("/") or ".." in parts:
            raise PathOutsideRootError(f"path {str(relative)!r} must be relative to the root {self.url}, without '..'")
        return ObjectFolder(self.url, "/".join(parts), self.store)


@dataclass(frozen=True)
class ObjectFolder:
    """A backup folder in an object store: a key prefix. See ``storage.SetFolder``."""

    root_url: str
    prefix: str
    store: Any = field(compare=False, repr=False)
    capabilities = OBJECT_STORE

    def __str__(self) -> str:
        return f"{self.root_url}/{self.prefix}"

    def locator(self, name: str) -> str:
        return f"{self}/{name}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def exists(self) -> bool:
        return True  # an object store has no folders; an empty prefix is an empty folder

    def prepare(self) -> None:
        pass

    def unprepare(self) -> None:
        pass

    def entries(self) -> dict[str, FileEntry]:
        with store_errors("list", str(self) + "/"):
            listing = obstore.list_with_delimiter(self.store, self.prefix or None)
        return {
            PurePosixPath(meta["path"]).name: FileEntry(
                int(meta["size"]), int(meta["last_modified"].timestamp() * 1e9), str(meta.get("e_tag") or "")
            )
            for meta in listing["objects"]
        }

    def names(self) -> list[str]:
        return list(self.entries())

    def fingerprint(self) -> str:
        """One listing: the digest of every name with its size, time and ETag, so any upload or
        delete changes it, and the cursor holds 64 characters per folder, whatever it holds."""
        entries = self.entries()
        listed = ";".join(f"{name}:{e.size}:{e.modified_ns}:{e.version}" for name, e in sorted(entries.items()))
        return hashlib.sha256(listed.encode()).hexdigest()

    def size(self, name: str) -> int | None:
        try:
            with store_errors("read", self.locator(name)):
                return int(obstore.head(self.store, self.key(name))["size"])
        except ObjectMissingError:
            return None

    def open_reader(self, name: str) -> BinaryIO:
        return io.BufferedReader(ObjectStream(self, name), buffer_size=READ_CHUNK_BYTES)

    def open_writer(self, name: str) -> HashingWriter:
        return HashingWriter(MultipartTarget(self, name), name)

    def read_bytes(self, name: str) -> bytes | None:
        try:
            with store_errors("read", self.locator(name)):
                return bytes(obstore.get(self.store, self.key(name)).bytes())
        except ObjectMissingError:
            return None

    def write_bytes(self, name: str, data: bytes) -> None:
        """One PUT: an object is all there or not there at all."""
        with store_errors("write", self.locator(name)):
            obstore.put(self.store, self.key(name), data)

    def replace_bytes(self, name: str, data: bytes) -> None:
        """One PUT over the object: a reader gets the old object or the new one, never a part."""
        self.write_bytes(name, data)

    def remove(self, name: str) -> None:
        with store_errors("delete", self.locator(name)):
            obstore.delete(self.store, self.key(name))

    def hide(self, name: str) -> None:
        """The marker first, then the object: once the manifest is gone, the set's remains stay hidden."""
        self.write_bytes(tmp_name(name), b"")
        self.remove(name)


class ObjectStream(io.RawIOBase):
    """An object as a raw binary stream: one GET, read in chunks as the caller asks.

    A failure mid-read (the server stopped) raises the typed, retryable error, so a COPY
    FROM fed by it aborts and the restore's transaction rolls back.
    """

    def __init__(self, folder: ObjectFolder, name: str) -> None:
        self._where = folder.locator(name)
        with store_errors("read", self._where):
            self._chunks = iter(obstore.get(folder.store, folder.key(name)).stream(min_chunk_size=READ_CHUNK_BYTES))
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._left:
            with store_errors("read", self._where):
                chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)  # obstore's Bytes: no copy until the caller's buffer
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size


class MultipartTarget:
    """Chunks into a multipart upload (a single PUT when small), a few parts in flight.

    Completing the upload publishes the object; until the manifest is written the set's
    marker keeps scans away. A failure aborts the upload, so no part is left behind.
    """

    def __init__(self, folder: ObjectFolder, name: str) -> None:
        self._folder = folder
        self._name = name
        self._file = obstore.open_writer(
            folder.store, folder.key(name), buffer_size=PART_BYTES, max_concurrency=PARTS_IN_FLIGHT
        )
        self._completed = False

    def write_chunk(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def complete(self) -> None:
        self._file.close()
        self._completed = True

    def publish(self) -> None:
        pass

    def discard(self) -> None:
        try:
            if self._completed:
                self._folder.remove(self._name)
            else:
                self._file.__exit__(RuntimeError, RuntimeError("abandoned"), None)  # aborts the upload
        except Exception:  # best effort after a failure: must not hide the failure itself
            pass

    def error_for(self, exc: Exception) -> Exception:
        return classify_error(exc, "upload", self._folder.locator(self._name))
