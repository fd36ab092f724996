"""``logs.clean``: the one gate for text from servers and exceptions (issue 8, item 6)."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator

import pytest
import structlog

from xdrsync.logs import clean, configure, register_secrets, scrub

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl-_x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("Authorization: Bearer abc.DEF-123_~+/=", "Authorization: Bearer ***"),
        ("authorization: bearer 0123456789abcdef", "authorization: bearer ***"),
        (f"token {JWT} end", "token *** end"),
        ("nul\x00 bell\x07 del\x7f c1\x9b", "nul\\x00 bell\\x07 del\\x7f c1\\x9b"),
        ("\x1b[31mred\x1b[0m \x1b]0;title\x07x \x1b(B", "red x "),
        ("keep\nnewline\tand tab", "keep\nnewline\tand tab"),
        ("cr\rhere", "cr\\x0dhere"),
        ("lone \udc00 surrogate", "lone \\udc00 surrogate"),
        ("bidi \u202egnp.exe", "bidi \\u202egnp.exe"),
    ],
)
def test_clean(text: str, expected: str) -> None:
    assert clean(text) == expected


def test_clean_caps_the_length() -> None:
    text = clean("x" * 10_000, limit=100)
    assert len(text) == 100 and text.endswith("…")


def test_clean_hides_registered_secrets_even_split_by_escapes() -> None:
    secret = "s3cr3t-" + secrets.token_urlsafe(12)
    register_secrets([secret])
    assert clean(f"a {secret} b") == "a *** b"
    half = len(secret) // 2
    assert secret not in clean(f"{secret[:half]}\x1b[0m{secret[half:]}")


def test_ephemeral_secrets_are_bounded_but_recent_ones_kept() -> None:
    tokens = [f"tok-{n:04d}-" + secrets.token_urlsafe(8) for n in range(400)]
    for token in tokens:
        register_secrets([token], ephemeral=True)
    assert scrub(tokens[-1]) == "***"
    assert scrub(tokens[0]) == tokens[0]  # long expired; dropped from the set


@pytest.fixture
def rendered() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure("debug", file=buffer)
    yield buffer
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_log_lines_go_through_clean(rendered: io.StringIO) -> None:
    token = "opaque-" + secrets.token_urlsafe(16)
    register_secrets([token], ephemeral=True)
    structlog.get_logger("t").warning("echo", body=f"{token} \x1b[2J Bearer xyz123456 \x00")
    logging.getLogger("httpx").warning("stdlib %s", f"{token}\x1b[31m")
    out = rendered.getvalue()
    assert token not in out and "\x1b[2J" not in out and "\x1b[31m" not in out
    assert "xyz123456" not in out
