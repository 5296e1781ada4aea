"""Encryption at rest: age files (age-encryption.org/v1) to X25519 recipients, through ``pyrage``.

What a command is given and what a manifest records: the recipients (public keys, ``age1…``),
the identity file (``AGE-SECRET-KEY-1…``, read only when an encrypted file is read, never shown:
errors name the variable that points at it, never its contents), the keys a command runs with,
each encrypted file's record, and the ``.age`` names. The streams are in ``age_streams``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vector_assets.core.errors import ConfigError, IdentityError

if TYPE_CHECKING:
    from vector_assets.core.sets.storage import SetFolder

AGE_SUFFIX = ".age"
RECIPIENT_PREFIX = "age1"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
AGE_FILE_MAGIC = b"age-encryption.org/"
SEPARATORS = re.compile(r"[,\s]+")


def pyrage_module() -> Any:
    """pyrage, or a one-line ConfigError: encryption asked for and impossible stops before
    anything is written, never falls back to plaintext."""
    try:
        import pyrage
    except ImportError:
        raise ConfigError("encryption needs the pyrage package (pip install pyrage==1.4.0); nothing was written") from None
    return pyrage


def encrypted_name(name: str) -> str:
    return name + AGE_SUFFIX


def is_encrypted_name(name: str) -> bool:
    return name.endswith(AGE_SUFFIX)


def plain_name(name: str) -> str:
    """The name a file has once decrypted: ``x.csv.zst.age`` -> ``x.csv.zst``."""
    return name[: -len(AGE_SUFFIX)] if is_encrypted_name(name) else name


@dataclass(frozen=True)
class Recipients:
    """The public keys a set is encrypted to, in canonical form (``age1…``, lower case)."""

    keys: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, source: str) -> Recipients | None:
        """Recipients separated by commas or white space; ``None`` for an empty text. ``source``
        names where the text came from (a variable, a store's field) in the error for a bad one,
        which names its position and shows it only if it reads as a public key: a secret pasted
        here by mistake is never echoed."""
        entries = [entry for entry in SEPARATORS.split(text.strip()) if entry]
        if not entries:
            return None
        return cls(tuple(dict.fromkeys(_parse_recipient(entry, position, source)
                                       for position, entry in enumerate(entries, start=1))))

    def for_pyrage(self) -> list[Any]:
        x25519 = pyrage_module().x25519
        return [x25519.Recipient.from_str(key) for key in self.keys]

    def __str__(self) -> str:
        return ", ".join(self.keys)


def _parse_recipient(entry: str, position: int, source: str) -> str:
    if entry.upper().startswith(IDENTITY_PREFIX):
        raise ConfigError(
            f"{source}: recipient {position} is an identity (a secret key), not a recipient; give its public key "
            "(age-keygen -y) and keep the identity out of settings"
        )
    if not entry.lower().startswith(RECIPIENT_PREFIX):
        raise ConfigError(f"{source}: recipient {position} is not an age X25519 recipient (age1…)")
    x25519 = pyrage_module().x25519
    try:
        recipient = x25519.Recipient.from_str(entry.lower())
    except Exception as error:  # pyrage.RecipientError: a checksum or length that does not hold
        raise ConfigError(f"{source}: recipient {position} ({entry}) is not a valid age X25519 recipient: {error}") from None
    return str(recipient)


@dataclass(frozen=True)
class IdentityFile:
    """Where the identity that decrypts sets is: a path, and the variable (or field) that gave it,
    for messages. The file is read only by ``load``, when a file is about to be decrypted."""

    path: Path | None
    source: str

    def load(self) -> list[Any]:
        """The file's X25519 identities: one per line, ``#`` comments and blank lines skipped
        (what ``age-keygen`` writes). Errors name ``source`` and a line number, never a key."""
        if self.path is None:
            raise IdentityError(f"this set is encrypted: set {self.source} to the path of its age identity file")
        text = self._read()
        x25519 = pyrage_module().x25519
        identities = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                identities.append(x25519.Identity.from_str(line))
            except Exception:  # pyrage.IdentityError; its text is not needed, and the line is a secret
                raise ConfigError(
                    f"line {number} of the file named by {self.source} is not an age X25519 identity (AGE-SECRET-KEY-1…)"
                ) from None
        if not identities:
            raise ConfigError(f"the file named by {self.source} holds no age identity (AGE-SECRET-KEY-1…)")
        return identities

    def _read(self) -> str:
        if str(self.path).upper().startswith(IDENTITY_PREFIX):
            raise ConfigError(f"{self.source} holds an age identity itself; it must hold the path of the identity file")
        try:
            data = self.path.read_bytes()
        except OSError as error:
            raise ConfigError(f"cannot read the identity file named by {self.source}: {error.strerror or error}") from None
        if data.startswith(AGE_FILE_MAGIC):
            raise ConfigError(f"the file named by {self.source} is itself encrypted; give a plain age identity file")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"the file named by {self.source} is not a text age identity file") from None


@dataclass(frozen=True)
class EncryptedFile:
    """How a stored file is encrypted: the recipients it opens for, and what it holds once
    decrypted (``age -d``), so a restore checks the plaintext as well as the stored bytes."""

    recipients: tuple[str, ...]
    plaintext_sha256: str
    plaintext_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"encrypted_to": list(self.recipients), "plaintext_sha256": self.plaintext_sha256,
                "plaintext_bytes": self.plaintext_bytes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncryptedFile | None:
        if not data.get("encrypted_to"):
            return None
        return cls(tuple(str(key) for key in data["encrypted_to"]), str(data["plaintext_sha256"]), int(data["plaintext_bytes"]))



@dataclass(frozen=True)
class EncryptionKeys:
    """What a command is given to encrypt what it writes and decrypt what it reads: the recipients
    (public), where the identity is (read only when an encrypted file is read), and whether a
    plaintext set may join a location that holds encrypted ones. The CLI and the Dagster layer
    build it from the settings; ``encrypt_to_setting`` names, in messages, what the operator sets
    to give recipients: a variable, or a declared store's attribute in its file."""

    encrypt_to: Recipients | None = None
    identity_file: IdentityFile = IdentityFile(None, "VECTOR_ASSETS_IDENTITY_FILE")
    allow_plaintext: bool = False
    encrypt_to_setting: str = "VECTOR_ASSETS_ENCRYPT_TO"

    def recipients_for(
        self, folder: SetFolder, like: tuple[str, ...] = (), names: list[str] | None = None
    ) -> Recipients | None:
        """The recipients a new set in ``folder`` is encrypted to: ``encrypt_to``, else ``like``
        (a safety set is encrypted to the recipients of the set being restored). Refuses, before
        anything is written, a plaintext set beside encrypted ones unless ``allow_plaintext`` says
        so: a missing setting must never quietly downgrade a location."""
        if self.encrypt_to is not None:
            return self.encrypt_to
        if like:
            return Recipients(like)
        if self.allow_plaintext:
            return None
        names = (folder.names() if folder.exists() else []) if names is None else names
        if any(is_encrypted_name(name) for name in names):
            raise ConfigError(
                f"{folder} holds encrypted sets, and this set has no recipients, so it would be plaintext; "
                f"set {self.encrypt_to_setting}, or allow_plaintext to write it unencrypted"
            )
        return None


def name_for(name: str, recipients: Recipients | None) -> str:
    """A set file's name: ``.age`` added when it is encrypted."""
    return name if recipients is None else encrypted_name(name)
