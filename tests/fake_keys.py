"""Stripe-shaped keys for the tests, put together at run time.

The repository never holds a literal that looks like a real secret key: secret
scanners (and reviewers) rightly flag those.  These bodies are made up and open
nothing; only their shape (prefix, mode, length, alphabet) matters to the tests.
"""

from __future__ import annotations


def stripe_key(kind: str, mode: str, body: str) -> str:
    """stripe_key("sk", "test", "abc…") -> the key "sk", "test" and the body joined by underscores."""
    return "_".join((kind, mode, body))  # noqa: FLY002 (no key-shaped literal, on purpose)
