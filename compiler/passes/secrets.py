"""Literal secrets: found in every string of a spec, refused, and never quoted back.

A spec is reviewed in pull requests, copied into `ir.json`, pipeline packages, Terraform and
model cards, so a password written into it leaks everywhere at once. Secrets belong in a
secret manager and the spec names them by reference (`security.secrets`, `env:NAME`,
`vault:…`). Three signals, any one enough:

- the value's shape: cloud keys, provider tokens, private-key blocks, URLs with a password,
  webhook URLs (the URL is the credential), JWTs, `password=…` inside free text;
- the key's name: any literal under `password`, `api_key`, `client_secret`, `credentials`, …;
- randomness: a long token-shaped string with the entropy of a generated key.

`redact` and `redact_text` are what every diagnostic goes through (see
`mlc.compiler.diagnostics.Diagnostic`), so that a suspected secret is shown as `AKIA…MPLE
(20 chars)`, never in full. This module depends on nothing of the compiler but diagnostics and
the source map: the loader and the validator use it before any IR exists.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

from mlc.compiler.sourcemap import KeyPath
from mlc.specs._base import is_secret_ref

_REF_AHEAD = r"(?!['\"]?(?:env|vault|aws-sm|gcp-sm|azure-kv):)"

SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    (
        "AWS secret access key",
        re.compile(
            r"(?i)aws[\w.-]{0,30}?(?:secret|key)[\w.-]{0,20}['\"]?\s*[:=]\s*['\"]?"
            r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
        ),
    ),
    ("GitHub token", re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b")),
    ("GitHub fine-grained token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}\b")),
    ("GitLab token", re.compile(r"\bgl(?:pat|dt|rt|cbt|ptt)-[A-Za-z0-9_\-]{20,}")),
    ("Slack token", re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}")),
    ("Stripe secret key", re.compile(r"\b[sr]k_live_[A-Za-z0-9]{16,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{32,}")),
    ("npm token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("PyPI token", re.compile(r"\bpypi-AgE[A-Za-z0-9_\-]{50,}")),
    (
        "private key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\s\\]*"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?"
        ),
    ),
    (
        "service-account key (JSON)",
        re.compile(r"[\"'](?:private_key|private_key_id|client_secret)[\"']\s*:\s*[\"'][^\"']+"),
    ),
    (
        "Azure storage key",
        re.compile(r"(?i)(?:AccountKey|SharedAccessKey)\s*=\s*[A-Za-z0-9+/]{20,}={0,2}"),
    ),
    ("Azure SAS signature", re.compile(r"(?i)[?&]sig=[A-Za-z0-9%+/=]{20,}")),
    (
        "Slack webhook URL",
        re.compile(r"(?i)https?://hooks\.slack\.com/(?:services|workflows|triggers)/[^\s'\"]+"),
    ),
    (
        "Teams webhook URL",
        re.compile(
            r"(?i)https?://(?:[a-z0-9-]+\.webhook\.office\.com|outlook\.office(?:365)?\.com)"
            r"/webhook[^\s'\"]*"
        ),
    ),
    (
        "Discord webhook URL",
        re.compile(r"(?i)https?://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[^\s'\"]+"),
    ),
    (
        "JSON web token",
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ),
    (
        "password in a URL",
        re.compile(
            r"\b[A-Za-z][A-Za-z0-9+.-]{0,30}://[^/\s:@'\"]+:(?P<secret>(?!\$\{)[^/\s@'\"…]+)@"
        ),
    ),
    (
        "password written into text",
        re.compile(
            r"(?i)(?<![A-Za-z])(?:password|passwd|pwd|passphrase|secret|api[_ -]?key|"
            r"access[_ -]?key|auth[_ -]?token|token)\s*[:=]\s*"
            + _REF_AHEAD
            + r"['\"]?(?P<secret>[^\s'\",;…]{6,})"
        ),
    ),
)

# Lower-case substrings without which a pattern cannot match: `in` tests are far cheaper than
# running every pattern over every string (specs hold tens of thousands of them, some long).
_ANCHORS: dict[str, tuple[str, ...]] = {
    "AWS access key id": ("akia", "asia", "abia", "acca"),
    "AWS secret access key": ("aws",),
    "GitHub token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "GitHub fine-grained token": ("github_pat_",),
    "GitLab token": ("glpat-", "gldt-", "glrt-", "glcbt-", "glptt-"),
    "Slack token": ("xox",),
    "Stripe secret key": ("k_live_",),
    "Google API key": ("aiza",),
    "Hugging Face token": ("hf_",),
    "OpenAI API key": ("sk-",),
    "npm token": ("npm_",),
    "PyPI token": ("pypi-",),
    "private key": ("private key",),
    "service-account key (JSON)": ("private_key", "client_secret"),
    "Azure storage key": ("accountkey", "sharedaccesskey"),
    "Azure SAS signature": ("sig=",),
    "Slack webhook URL": ("hooks.slack.com",),
    "Teams webhook URL": ("webhook",),
    "Discord webhook URL": ("discord",),
    "JSON web token": ("eyj",),
    "password in a URL": ("://",),
    "password written into text": ("passw", "pwd", "passphrase", "secret", "key", "token"),
}


_ANY_ANCHOR = re.compile(
    "|".join(sorted({re.escape(a) for anchors in _ANCHORS.values() for a in anchors}))
)


def _candidates(text: str) -> Iterator[tuple[str, re.Pattern[str]]]:
    """The patterns whose anchors occur in `text`."""
    lowered = text.lower()
    # one regex pass settles short strings; on long ones `in` (a C substring search) is faster
    # than an alternation that restarts at every character
    if len(lowered) < 256 and not _ANY_ANCHOR.search(lowered):
        return
    for kind, pattern in SECRET_PATTERNS:
        if any(anchor in lowered for anchor in _ANCHORS[kind]):
            yield kind, pattern


# Key names that hold secrets: the last word, or the last two words, of the key.
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "credential",
        "credentials",
        "apikey",
        "secretkey",
        "accesskey",
        "privatekey",
        "webhook",
    }
)
_SECRET_PAIRS = frozenset(
    {
        ("api", "key"),
        ("access", "key"),
        ("private", "key"),
        ("secret", "key"),
        ("account", "key"),
        ("signing", "key"),
        ("master", "key"),
        ("client", "secret"),
        ("auth", "token"),
        ("sas", "token"),
        ("connection", "string"),
        ("webhook", "url"),
    }
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9+/=_\-]{20,}")


def entropy(text: str) -> float:
    """Shannon entropy in bits per character.

    >>> entropy("aaaa")
    0.0
    """
    if not text:
        return 0.0
    counts = Counter(text)
    return max(0.0, -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values()))


@lru_cache(maxsize=4096)
def secret_like_key(key: str) -> bool:
    """True when a key's name says its value is a secret (`db_password`, `apiKey`, …).

    Only the end of the name counts, so `token_budget` or `password_policy` are not secrets.

    >>> [secret_like_key(k) for k in ("db_password", "apiKey", "token_budget", "kms_key")]
    [True, True, False, False]
    """
    words = [w.lower() for w in _WORD.findall(key)]
    if not words:
        return False
    return words[-1] in _SECRET_WORDS or tuple(words[-2:]) in _SECRET_PAIRS


def _class(ch: str) -> int:
    return 0 if ch.isupper() else 1 if ch.islower() else 2 if ch.isdigit() else 3


def looks_generated(value: str) -> bool:
    """A token-shaped string with the randomness of a generated key.

    Mixed case and digits, the entropy of random text of its length, and frequent switches
    between character classes (identifiers in CamelCase or snake_case switch rarely).
    """
    if not 20 <= len(value) <= 4096 or not _TOKEN_SHAPE.fullmatch(value):
        return False
    classes = [_class(c) for c in value]
    if not {0, 1, 2} <= set(classes):
        return False
    threshold = min(4.3, 3.0 + 0.04 * len(value))
    switches = sum(a != b for a, b in pairwise(classes))
    return entropy(value) >= threshold and switches / (len(value) - 1) >= 0.45


def value_kind(value: str) -> str | None:
    """What kind of secret `value` is by its shape alone, or None."""
    if is_secret_ref(value):
        return None
    for kind, pattern in _candidates(value):
        if pattern.search(value):
            return kind
    if looks_generated(value):
        return "a high-entropy string"
    return None


def find_secret(key: str, value: str) -> str | None:
    """What kind of literal secret `value` (held under `key`) looks like, or None.

    >>> find_secret("url", "postgresql://app:hunter2@db/prod")
    'password in a URL'
    >>> find_secret("db_password", "hunter2")
    "a literal value under 'db_password'"
    >>> find_secret("db_password", "vault:secret/data/db#password") is None
    True
    """
    kind = value_kind(value)
    if kind is None and key and value.strip() and secret_like_key(key) and not is_secret_ref(value):
        kind = f"a literal value under '{key}'"
    return kind


@dataclass(frozen=True)
class Finding:
    """One suspected secret in spec data."""

    path: KeyPath
    kind: str
    value: str
    in_key: bool = False
    """The secret is a mapping key itself (`tags: {AKIA…: x}`), not a value."""


def scan(data: Any) -> list[Finding]:
    """Every suspected literal secret in spec data: every key and every scalar, at any depth.

    A scalar (or a list of them) under a secret-like key counts whatever its shape, a number
    too; the values of `security.secrets` are references checked by the schema, so only their
    shape counts there.
    """
    return list(_scan(data, (), None))


def _scan(node: Any, path: KeyPath, secret_key: str | None) -> Iterator[Finding]:
    if isinstance(node, dict):
        for k, v in node.items():
            key = str(k)
            kind = _key_kind(key)
            if kind is not None:
                yield Finding((*path, k), kind, key, in_key=True)
            # only the key's own scalars (or list items): a mapping below it names its own keys,
            # so a data column called `token` does not make its `dtype` a secret
            below = key if secret_like_key(key) else None
            if path == ("security", "secrets"):
                below = None
            yield from _scan(v, (*path, k), below)
    elif isinstance(node, list | tuple):
        for i, v in enumerate(node):
            yield from _scan(v, (*path, i), secret_key)
    elif isinstance(node, str):
        kind = find_secret(secret_key or "", node)
        if kind is not None:
            yield Finding(path, kind, node)
    elif isinstance(node, int | float) and not isinstance(node, bool) and secret_key:
        yield Finding(path, f"a literal value under '{secret_key}'", str(node))


@lru_cache(maxsize=4096)
def _key_kind(key: str) -> str | None:
    # keys repeat (`name`, `dtype` in every column): judge each once
    return value_kind(key)


def redact(value: str) -> str:
    """How a suspected secret is shown: its ends when long enough to keep the middle hidden.

    >>> redact("AKIA" + "IOSFODNN7EXAMPLE")
    'AKIA…MPLE (20 chars)'
    >>> redact("hunter2")
    '… (7 chars)'
    """
    if len(value) >= 20:
        return f"{value[:4]}…{value[-4:]} ({len(value)} chars)"
    return f"… ({len(value)} chars)"


def redact_text(text: str, values: Iterable[str] = ()) -> str:
    """`text` with every known secret value and every secret-shaped part redacted.

    >>> redact_text("found 'AKIA" + "IOSFODNN7EXAMPLE'")
    "found 'AKIA…MPLE (20 chars)'"
    >>> redact_text("postgresql://app:hunter2@db/prod")
    'postgresql://app:… (7 chars)@db/prod'
    """
    if not text:
        return text
    for value in sorted({v for v in values if len(v) >= 4}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, redact(value))
    for _, pattern in list(_candidates(text)):
        text = pattern.sub(_redact_match, text)
    return text


def _redact_match(match: re.Match[str]) -> str:
    if "secret" in match.re.groupindex and match.group("secret") is not None:
        start, end = match.span("secret")
        whole = match.group(0)
        offset = match.start()
        return whole[: start - offset] + redact(match.group("secret")) + whole[end - offset :]
    return redact(match.group(0))
