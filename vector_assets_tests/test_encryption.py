"""Encryption at rest, the streams themselves, against the reference ``age`` tool: what we write
decrypts with ``age -d``, what ``age -r`` writes decrypts here, and a missing, wrong or damaged
key or file fails in one line that never shows a secret."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg2
import pytest
import zstandard

from vector_assets import settings
from vector_assets.core.errors import BackupFileError, BackupWriteError, ConfigError, IdentityError
from vector_assets.core.hashing import sha256_of_file
from vector_assets.core.pg.catalog import column_names, read_columns
from vector_assets.core.pg.copy import copy_out
from vector_assets.core.sets.age_streams import DecryptingReader, EncryptingSink
from vector_assets.core.sets.encryption import IdentityFile, Recipients
from vector_assets.core.sets.formats import DecodingReader, EncodingSink, set_format
from vector_assets.core.sets.disk_store import DiskFolder
from vector_assets.core.tables import EMBEDDING_TABLE
from vector_assets_tests.support.age import age_decrypt, age_encrypt, make_key

ENCRYPT_TO = settings.ENCRYPT_TO.name
IDENTITY_FILE = settings.IDENTITY_FILE.name
MIB = 1 << 20


def plain_copy(dsn: str, fmt_name: str) -> bytes:
    """The table as COPY writes it in this format, unencrypted."""
    fmt = set_format(fmt_name)
    out = io.BytesIO()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        encoder = EncodingSink(fmt, out)
        copy_out(cursor, EMBEDDING_TABLE, column_names(read_columns(cursor, EMBEDDING_TABLE)), encoder, fmt.copy_options)
        encoder.finish()
    conn.close()
    return out.getvalue()


def encrypted_copy(dsn: str, fmt_name: str, folder: DiskFolder, recipients: Recipients) -> tuple[str, tuple, tuple]:
    """COPY -> compress -> encrypt -> hash -> store, as a backup writes a data file: the file's
    name, the plaintext's (bytes, sha256), the stored bytes' (bytes, sha256)."""
    fmt = set_format(fmt_name)
    name = f"{EMBEDDING_TABLE}_20261206_120000.{fmt.name}.age"
    writer = folder.open_writer(name)
    encrypting = EncryptingSink(recipients, writer, name)
    encoder = EncodingSink(fmt, encrypting)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        copy_out(cursor, EMBEDDING_TABLE, column_names(read_columns(cursor, EMBEDDING_TABLE)), encoder, fmt.copy_options)
    conn.close()
    encoder.finish()
    plain = encrypting.finish()
    stored = writer.finish()
    writer.publish()
    return name, plain, stored


def decrypted(path: Path, identity_file: IdentityFile, name: str | None = None) -> tuple[bytes, DecryptingReader]:
    with open(path, "rb") as stored:
        reader = DecryptingReader(stored, identity_file.load(), name or path.name, identity_file.source)
        with reader:
            data = b"".join(iter(lambda: reader.read(256 * 1024), b""))
    return data, reader


def assert_one_line_without(error: BaseException, *secrets: str) -> None:
    text = str(error)
    assert "\n" not in text
    for secret in secrets:
        assert secret not in text


def threads_named(prefix: str) -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith(prefix)]


@pytest.mark.parametrize("fmt", ["csv", "csv.zst", "pgcopy.zst"])
def test_an_encrypted_copy_decrypts_with_age_into_exactly_the_plain_copy(fmt, store_db, tmp_path):
    key = make_key(tmp_path / "keys")
    folder = DiskFolder(tmp_path / "set")
    folder.prepare()
    name, (plain_bytes, plain_sha256), (stored_bytes, stored_sha256) = encrypted_copy(
        store_db, fmt, folder, Recipients.parse(key.recipient, ENCRYPT_TO)
    )
    stored = folder.path / name
    assert stored_bytes == stored.stat().st_size and stored_sha256 == sha256_of_file(stored)
    assert stored.read_bytes().startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert b"question " not in stored.read_bytes()  # the demo's documents say it, and pgcopy holds it plain

    age_decrypt(stored, key, tmp_path / "plain")
    expected = plain_copy(store_db, fmt)
    assert (tmp_path / "plain").read_bytes() == expected
    assert plain_bytes == len(expected) and plain_sha256 == sha256_of_file(tmp_path / "plain")
    if fmt == "csv":
        assert b"question " in expected
    if fmt == "csv.zst":
        rows = zstandard.ZstdDecompressor().decompressobj().decompress(expected)
        assert rows.startswith(b"id,collection_id,embedding,document,cmetadata\n") and rows.count(b"\n") > 300


def test_a_file_age_encrypted_reads_here_with_both_hashes_of_the_whole_file(tmp_path):
    key = make_key(tmp_path / "keys")
    plain = tmp_path / "rows.csv"
    plain.write_bytes(b"".join(b"%d,document %d,[0.5,0.25]\n" % (i, i) for i in range(400_000)))  # 11 MB: many chunks
    age_encrypt(plain, [key.recipient], tmp_path / "rows.csv.age")

    data, reader = decrypted(tmp_path / "rows.csv.age", IdentityFile(key.identity_file, IDENTITY_FILE))

    assert data == plain.read_bytes()
    assert reader.plaintext_bytes == plain.stat().st_size and reader.plaintext_sha256() == sha256_of_file(plain)
    stored = tmp_path / "rows.csv.age"
    assert reader.stored_bytes == stored.stat().st_size and reader.stored_sha256() == sha256_of_file(stored)


def test_a_file_encrypted_to_two_recipients_opens_with_either_identity(store_db, tmp_path):
    first, second = make_key(tmp_path / "keys", "first"), make_key(tmp_path / "keys", "second")
    folder = DiskFolder(tmp_path / "set")
    folder.prepare()
    recipients = Recipients.parse(f"{first.recipient}, {second.recipient}", ENCRYPT_TO)
    name, _, _ = encrypted_copy(store_db, "csv.zst", folder, recipients)
    expected = plain_copy(store_db, "csv.zst")

    for key in (first, second):
        age_decrypt(folder.path / name, key, tmp_path / "plain")
        assert (tmp_path / "plain").read_bytes() == expected
        assert decrypted(folder.path / name, IdentityFile(key.identity_file, IDENTITY_FILE))[0] == expected


def test_a_decrypted_compressed_file_streams_into_the_format_reader(tmp_path):
    key = make_key(tmp_path / "keys")
    rows = b"".join(b"%d,text %d\n" % (i, i) for i in range(300_000))
    (tmp_path / "rows.csv.zst").write_bytes(zstandard.ZstdCompressor().compress(rows))
    age_encrypt(tmp_path / "rows.csv.zst", [key.recipient], tmp_path / "rows.csv.zst.age")

    with open(tmp_path / "rows.csv.zst.age", "rb") as stored:
        identities = IdentityFile(key.identity_file, IDENTITY_FILE).load()
        with DecryptingReader(stored, identities, "rows.csv.zst.age", IDENTITY_FILE) as plain:
            decoded = DecodingReader(set_format("csv.zst"), plain, "rows.csv.zst.age")
            assert b"".join(iter(lambda: decoded.read(MIB), b"")) == rows


def test_a_wrong_identity_fails_in_one_line_naming_the_file_and_the_variable(tmp_path):
    right, wrong = make_key(tmp_path / "keys", "right"), make_key(tmp_path / "keys", "wrong")
    (tmp_path / "rows.csv").write_bytes(b"id,document\n1,a contract\n")
    age_encrypt(tmp_path / "rows.csv", [right.recipient], tmp_path / "rows.csv.age")

    with pytest.raises(IdentityError) as raised:
        decrypted(tmp_path / "rows.csv.age", IdentityFile(wrong.identity_file, IDENTITY_FILE))

    assert "rows.csv.age is not encrypted to the identity in the file named by VECTOR_ASSETS_IDENTITY_FILE" in str(raised.value)
    assert_one_line_without(raised.value, wrong.secret(), right.secret(), str(wrong.identity_file))


@pytest.mark.parametrize("damage", ["a flipped byte", "cut in a chunk", "cut at a chunk's end", "only the header"])
def test_a_damaged_or_cut_file_fails_in_one_line_naming_it(damage, tmp_path):
    key = make_key(tmp_path / "keys")
    (tmp_path / "rows.csv").write_bytes(os.urandom(3 * 64 * 1024 + 1000))
    age_encrypt(tmp_path / "rows.csv", [key.recipient], tmp_path / "rows.csv.age")
    data = bytearray((tmp_path / "rows.csv.age").read_bytes())
    header_end = data.index(b"\n---") + 4 + 44  # "--- " + the header MAC, then the newline and the nonce
    if damage == "a flipped byte":
        data[header_end + 70_000] ^= 0x01
    elif damage == "cut in a chunk":
        data = data[: header_end + 100_000]
    elif damage == "cut at a chunk's end":
        data = data[: header_end + 1 + 16 + 2 * (64 * 1024 + 16)]
    else:
        data = data[: header_end + 1]
    (tmp_path / "rows.csv.age").write_bytes(bytes(data))

    with pytest.raises(BackupFileError) as raised:
        decrypted(tmp_path / "rows.csv.age", IdentityFile(key.identity_file, IDENTITY_FILE))

    assert str(raised.value).startswith("rows.csv.age ")
    assert_one_line_without(raised.value, key.secret())
    assert threads_named("decrypt rows.csv.age") == []


def test_a_plaintext_file_read_as_encrypted_is_refused_as_not_an_age_file(tmp_path):
    key = make_key(tmp_path / "keys")
    (tmp_path / "rows.csv.age").write_bytes(b"id,document\n1,a contract\n")
    with pytest.raises(BackupFileError, match=r"^rows.csv.age is not a whole age file"):
        decrypted(tmp_path / "rows.csv.age", IdentityFile(key.identity_file, IDENTITY_FILE))


def test_no_identity_file_says_which_variable_to_set(tmp_path):
    with pytest.raises(IdentityError, match="set VECTOR_ASSETS_IDENTITY_FILE to the path of its age identity file"):
        settings.identity_file({}).load()


def test_identity_file_errors_name_the_variable_and_a_line_never_a_key(tmp_path):
    key = make_key(tmp_path / "keys")
    missing = settings.identity_file({IDENTITY_FILE: str(tmp_path / "nowhere.txt")})
    with pytest.raises(ConfigError, match="cannot read the identity file named by VECTOR_ASSETS_IDENTITY_FILE: No such file"):
        missing.load()

    damaged = tmp_path / "damaged.txt"
    damaged.write_text(f"# created by age-keygen\n\n{key.secret()}\n{key.secret()[:-3]}xyz\n")
    with pytest.raises(ConfigError) as raised:
        settings.identity_file({IDENTITY_FILE: str(damaged)}).load()
    assert str(raised.value) == (
        "line 4 of the file named by VECTOR_ASSETS_IDENTITY_FILE is not an age X25519 identity (AGE-SECRET-KEY-1…)"
    )
    assert_one_line_without(raised.value, key.secret()[20:40])

    only_comments = tmp_path / "comments.txt"
    only_comments.write_text(f"# public key: {key.recipient}\n")
    with pytest.raises(ConfigError, match="VECTOR_ASSETS_IDENTITY_FILE holds no age identity"):
        settings.identity_file({IDENTITY_FILE: str(only_comments)}).load()

    age_encrypt(key.identity_file, [key.recipient], tmp_path / "key.txt.age")
    with pytest.raises(ConfigError, match="VECTOR_ASSETS_IDENTITY_FILE is itself encrypted"):
        settings.identity_file({IDENTITY_FILE: str(tmp_path / "key.txt.age")}).load()


def test_recipients_parse_from_the_setting_in_canonical_form(tmp_path):
    first, second = make_key(tmp_path / "keys", "first"), make_key(tmp_path / "keys", "second")
    text = f" {first.recipient.upper()},{second.recipient}\n{first.recipient} "
    recipients = settings.encryption_recipients({ENCRYPT_TO: text})
    assert recipients == Recipients((first.recipient, second.recipient))
    assert settings.encryption_recipients({}) is None
    assert settings.encryption_recipients({ENCRYPT_TO: " , "}) is None


def test_a_bad_recipient_is_named_by_its_position_and_a_secret_is_never_echoed(tmp_path):
    key = make_key(tmp_path / "keys")
    broken = key.recipient[:-1] + ("q" if key.recipient[-1] != "q" else "p")

    with pytest.raises(ConfigError) as raised:
        settings.encryption_recipients({ENCRYPT_TO: f"{key.recipient},{broken}"})
    assert str(raised.value).startswith(f"VECTOR_ASSETS_ENCRYPT_TO: recipient 2 ({broken}) is not a valid age X25519 recipient")
    assert_one_line_without(raised.value)

    with pytest.raises(ConfigError) as raised:
        settings.encryption_recipients({ENCRYPT_TO: f"{key.recipient} {key.secret()}"})
    assert str(raised.value).startswith("VECTOR_ASSETS_ENCRYPT_TO: recipient 2 is an identity (a secret key), not a recipient")
    assert_one_line_without(raised.value, key.secret(), key.secret()[16:30])

    with pytest.raises(ConfigError) as raised:
        settings.encryption_recipients({ENCRYPT_TO: "hunter2-password"})
    assert str(raised.value) == "VECTOR_ASSETS_ENCRYPT_TO: recipient 1 is not an age X25519 recipient (age1…)"


def test_a_storage_failure_while_encrypting_is_raised_as_it_was_and_the_thread_ends(store_db, tmp_path):
    key = make_key(tmp_path / "keys")
    folder = DiskFolder(tmp_path / "set")
    folder.prepare()
    name = f"{EMBEDDING_TABLE}_20261206_120000.csv.age"
    os.symlink("/dev/full", folder.path / f"{name}.tmp")  # writes fail with ENOSPC, as on a full disk

    with pytest.raises(BackupWriteError, match=f"disk full while writing .*{name}"):
        encrypted_copy(store_db, "csv", folder, Recipients.parse(key.recipient, ENCRYPT_TO))

    assert threads_named(f"encrypt {name}") == []


def test_an_abandoned_encryption_and_a_reader_closed_early_stop_their_threads(tmp_path):
    key = make_key(tmp_path / "keys")
    recipients = Recipients.parse(key.recipient, ENCRYPT_TO)
    stored = DiskFolder(tmp_path / "set")
    stored.prepare()
    writer = stored.open_writer("rows.csv.age")
    encrypting = EncryptingSink(recipients, writer, "rows.csv.age")
    for _ in range(8):
        encrypting.write(os.urandom(MIB))
    encrypting.abandon()
    writer.abandon()
    assert threads_named("encrypt rows.csv.age") == [] and list(stored.path.iterdir()) == []

    (tmp_path / "rows.csv").write_bytes(os.urandom(16 * MIB))
    age_encrypt(tmp_path / "rows.csv", [key.recipient], tmp_path / "rows.csv.age")
    with open(tmp_path / "rows.csv.age", "rb") as handle:
        reader = DecryptingReader(handle, IdentityFile(key.identity_file, IDENTITY_FILE).load(), "rows.csv.age", IDENTITY_FILE)
        assert len(reader.read(1000)) == 1000
        reader.close()
    assert threads_named("decrypt rows.csv.age") == []


MEMORY_PROBE = """
import os, resource, sys
from vector_assets.core.sets.age_streams import DecryptingReader, EncryptingSink
from vector_assets.core.sets.encryption import IdentityFile, Recipients
from vector_assets.core.sets.disk_store import DiskFolder
mib, folder = int(sys.argv[1]), DiskFolder(__import__("pathlib").Path(sys.argv[2]))
writer = folder.open_writer("big.age")
sink = EncryptingSink(Recipients.parse(sys.argv[3], "VECTOR_ASSETS_ENCRYPT_TO"), writer, "big.age")
row = os.urandom(4000)
for _ in range(mib * 262):
    sink.write(row)
sink.finish(); writer.finish(); writer.publish()
with open(folder.path / "big.age", "rb") as stored:
    reader = DecryptingReader(stored, IdentityFile(__import__("pathlib").Path(sys.argv[4]), "X").load(), "big.age", "X")
    while reader.read(1 << 20):
        pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_memory_stays_flat_whatever_the_file_size(tmp_path):
    key = make_key(tmp_path / "keys")

    def peak_kib(mib: int) -> int:
        folder = tmp_path / f"{mib}"
        folder.mkdir()
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, str(mib), str(folder), key.recipient, str(key.identity_file)],
            check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
        return int(out.stdout)

    small, large = peak_kib(25), peak_kib(100)
    assert large / small <= 1.2, (small, large)


def test_encryption_asked_for_without_pyrage_fails_in_one_line(tmp_path):
    key = make_key(tmp_path / "keys")
    probe = (
        "import sys; sys.modules['pyrage'] = None\n"
        "from vector_assets.core.sets.encryption import Recipients\n"
        "from vector_assets.core.errors import ConfigError\n"
        "try:\n"
        f"    Recipients.parse({key.recipient!r}, 'VECTOR_ASSETS_ENCRYPT_TO')\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.stdout == "encryption needs the pyrage package (pip install pyrage==1.4.0); nothing was written\n"
