"""The reference age tool (Debian's ``age`` package, installed by ``make test``): keys made by
``age-keygen``, and files encrypted and decrypted by ``age`` itself, so a test proves that a set
reads without vector_assets and that what ``age`` writes reads here."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AgeKey:
    identity_file: Path  # what age-keygen wrote: comments, then AGE-SECRET-KEY-1…
    recipient: str  # its public key, age1…

    def secret(self) -> str:
        """The identity line itself, for asserting that it appears nowhere."""
        return next(line for line in self.identity_file.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-1"))


def make_key(folder: Path, name: str = "key") -> AgeKey:
    folder.mkdir(parents=True, exist_ok=True)
    identity_file = folder / f"{name}.txt"
    subprocess.run(["age-keygen", "-o", str(identity_file)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(identity_file)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return AgeKey(identity_file, recipient)


def age_decrypt(encrypted: Path, key: AgeKey, plain: Path) -> None:
    """``age -d -i key.txt file.age > file``, as the README tells an operator to."""
    with open(plain, "wb") as out:
        subprocess.run(["age", "-d", "-i", str(key.identity_file), str(encrypted)], check=True, stdout=out)


def age_encrypt(plain: Path, recipients: list[str], encrypted: Path) -> None:
    arguments = [argument for recipient in recipients for argument in ("-r", recipient)]
    subprocess.run(["age", *arguments, "-o", str(encrypted), str(plain)], check=True)
