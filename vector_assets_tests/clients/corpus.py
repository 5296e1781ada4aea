"""The documents, the fake embedding and the questions that the client scripts share.

Run with the clients' own python (``.venv/clients``), beside ``make_store.py`` and
``answer.py``; nothing here reaches a network. The embedding is a hash of the text: distinct
unit vectors, the same on every machine, so two runs of a client over the same rows give the
same exact answers.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass

DIMENSIONS = 32
DOCUMENTS = 300
CATEGORIES = ("billing", "shipping", "returns", "accounts", "security")
SOURCES = ("faq", "manual", "forum")
# Each document holds one of these words, so a keyword matches a handful of documents: fewer than
# a keyword search returns, and so every match is in its answer whatever the order of ties.
KEYWORDS = tuple(f"{prefix}word" for prefix in (
    "amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "harbor", "indigo", "juniper",
    "kelp", "lagoon", "marble", "nectar", "onyx", "pebble", "quartz", "raven", "sierra", "tundra",
))
KEYWORD_MATCHES = 20  # how many a keyword search returns, more than any keyword matches
TOP_K = 5
QUESTIONS = 24
NAMESPACE = uuid.UUID("6f1c0a52-2d1e-4b8e-9a0c-1c6a2f7e5b10")
# Text as users paste it: quotes, a backslash, a tab, a new line, CJK, an emoji.
HARD_TEXT = ("a \"quoted\" \\ back\tslash", "line one\nline two", "高速公路服务区的营业收入", "emoji \U0001F680 end")


@dataclass(frozen=True)
class Document:
    key: str  # a uuid, the same on every run
    text: str
    category: str
    year: int
    source: str
    parent: str  # the source document a chunk was cut from (LlamaIndex's ref_doc_id)


@dataclass(frozen=True)
class Question:
    text: str
    category: str | None  # a metadata filter, or none
    keyword: str | None  # a keyword for the client's hybrid search, or none


def embed(text: str) -> list[float]:
    """A unit vector of DIMENSIONS from the text's sha256: distinct texts, distinct vectors."""
    stream = b"".join(hashlib.sha256(f"{block}:{text}".encode()).digest() for block in range(DIMENSIONS // 16))
    values = [int.from_bytes(stream[2 * i:2 * i + 2], "big") / 32767.5 - 1.0 for i in range(DIMENSIONS)]
    norm = math.sqrt(sum(value * value for value in values))
    return [value / norm for value in values]


def documents(count: int = DOCUMENTS, start: int = 0) -> list[Document]:
    return [_document(number) for number in range(start, start + count)]


def _document(number: int) -> Document:
    category = CATEGORIES[number % len(CATEGORIES)]
    keyword = KEYWORDS[(number * 7) % len(KEYWORDS)]
    text = f"Note {number} on {category}: the {keyword} procedure, step {number % 11}."
    if number % 37 == 0:
        text += " " + HARD_TEXT[(number // 37) % len(HARD_TEXT)]
    return Document(
        key=str(uuid.uuid5(NAMESPACE, f"document-{number}")),
        text=text,
        category=category,
        year=2019 + number % 6,
        source=SOURCES[number % len(SOURCES)],
        parent=f"source-{number // 4}",
    )


def questions() -> list[Question]:
    return [
        Question(
            text=f"question {number} about {CATEGORIES[number % len(CATEGORIES)]}",
            category=CATEGORIES[number % len(CATEGORIES)] if number % 3 == 0 else None,
            keyword=KEYWORDS[(number * 3) % len(KEYWORDS)] if number % 4 == 1 else None,
        )
        for number in range(QUESTIONS)
    ]


def ranked(hits: list[tuple[str, float]]) -> list[list]:
    """An answer's hits in the client's order, each run of equal scores by id: the order a client
    gives equal scores in is the order it read the rows in, which a restore may change."""
    ordered: list[list] = []
    for key, score in hits:
        position = len(ordered)
        while position and ordered[position - 1][1] == score and ordered[position - 1][0] > key:
            position -= 1
        ordered.insert(position, [key, score])
    return ordered
