"""Credentials are masked in any text dynbench keeps or prints; the rest stays readable."""

from __future__ import annotations

import pytest

from dynbench.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "run --db postgresql+psycopg://bob:s3cr%40t@db.example:5432/runs --json r.json",
            "run --db postgresql+psycopg://bob:***@db.example:5432/runs --json r.json",
        ),
        ("PGPASSWORD=hunter2 dynbench run", "PGPASSWORD=*** dynbench run"),
        ("run --token abc123 --models x", "run --token *** --models x"),
        ("run --api-key=K1 --models x", "run --api-key=*** --models x"),
        ("host=h password=pw user=u", "host=h password=*** user=u"),
        ("Authorization: Bearer eyJhbGc.x-y", "Authorization: Bearer ***"),
        ('{"argv": "--db mysql://u:p@h/d", "cpu": "x"}',
         '{"argv": "--db mysql://u:***@h/d", "cpu": "x"}'),
    ],
)  # fmt: skip
def test_credentials_are_masked(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "run --suite latency --models resnet18* --db runs.sqlite",
        "sqlite:////tmp/runs.db postgresql://bob@host/db https://host/path?x=1",
        "num_tokens 5, a passwordless login",
    ],
)
def test_text_without_credentials_is_unchanged(text):
    assert redact(text) == text
