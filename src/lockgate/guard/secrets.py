"""The `secrets` scanner: credentials in real formats, found by shape and checked.

Known formats (the provider's own prefix or structure) score high: model providers
(OpenAI, Anthropic, Google, Hugging Face, Groq, Replicate, xAI), clouds (AWS access
keys and, next to their name, secret keys; Azure storage connection strings; GCP
keys), code hosts and SaaS (GitHub, GitLab, Slack, Stripe, SendGrid, Twilio, npm,
PyPI), private key blocks, JWTs (the header must decode to JSON with `alg`), and
connection strings with a password in them. A value assigned to a secret-sounding
name (`api_key = "..."`, `"password": "..."`) counts when it looks random (Shannon
entropy); a random-looking token with no context at all scores below the default
threshold (0.5), so lower the threshold to catch those too.

Placeholders (`sk-...`, `<your-key>`, `${PASSWORD}`, `xxxx`, `changeme`) are not secrets.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lockgate.guard.pii import resolve_overlaps
from lockgate.guard.types import Finding, ScanContext, Scanner

__all__ = ["SecretsScanner", "entropy"]


@dataclass(frozen=True, slots=True)
class _Rule:
    entity: str
    pattern: re.Pattern[str]
    score: float = 0.95
    group: int = 0  # the span reported: the whole match, or the value group
    check: str = ""  # "jwt", "entropy", "password"
    hint: tuple[str, ...] = ()  # literals (lower case): a match contains one; skip the regex otherwise


def _r(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_B = r"(?<![A-Za-z0-9_\-])"  # a token starts here
_E = r"(?![A-Za-z0-9_\-])"  # and ends here

_RULES: tuple[_Rule, ...] = (
    _Rule("OPENAI_API_KEY", _r(_B + r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}" + _E), hint=("t3blbkfj",)),
    _Rule("OPENAI_API_KEY", _r(_B + r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}" + _E), hint=("sk-",)),
    _Rule("ANTHROPIC_API_KEY", _r(_B + r"sk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_\-]{80,}" + _E), hint=("sk-ant-",)),
    _Rule("OPENAI_API_KEY", _r(_B + r"sk-[A-Za-z0-9]{40,60}" + _E), 0.85, check="entropy", hint=("sk-",)),
    _Rule("AWS_ACCESS_KEY_ID", _r(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b"), 0.9),
    _Rule("AWS_SECRET_ACCESS_KEY", _r(r"(?i)aws.{0,24}?(?:secret|private).{0,24}?[\"'=:\s]{1,4}([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"), 0.95, 1, "entropy", ("aws",)),
    _Rule("GOOGLE_API_KEY", _r(_B + r"AIza[0-9A-Za-z_\-]{35}" + _E), hint=("aiza",)),
    _Rule("GOOGLE_OAUTH_TOKEN", _r(_B + r"ya29\.[0-9A-Za-z_\-]{30,}" + _E), hint=("ya29.",)),
    _Rule("HUGGINGFACE_TOKEN", _r(_B + r"hf_[A-Za-z0-9]{34,40}" + _E), hint=("hf_",)),
    _Rule("GROQ_API_KEY", _r(_B + r"gsk_[A-Za-z0-9]{48,56}" + _E), hint=("gsk_",)),
    _Rule("XAI_API_KEY", _r(_B + r"xai-[A-Za-z0-9]{60,90}" + _E), hint=("xai-",)),
    _Rule("REPLICATE_API_TOKEN", _r(_B + r"r8_[A-Za-z0-9]{37}" + _E), hint=("r8_",)),
    _Rule("GITHUB_TOKEN", _r(_B + r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}" + _E), hint=("gh",)),
    _Rule("GITHUB_TOKEN", _r(_B + r"github_pat_[A-Za-z0-9_]{70,90}" + _E), hint=("github_pat_",)),
    _Rule("GITLAB_TOKEN", _r(_B + r"glpat-[A-Za-z0-9_\-]{20}" + _E), hint=("glpat-",)),
    _Rule("SLACK_TOKEN", _r(_B + r"xox[abposr]-(?:[0-9]{6,}-){1,3}[A-Za-z0-9\-]{10,}" + _E), hint=("xox",)),
    _Rule("SLACK_WEBHOOK", _r(r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}"), hint=("hooks.slack.com",)),
    _Rule("STRIPE_KEY", _r(_B + r"(?:sk|rk)_live_[A-Za-z0-9]{20,99}" + _E), hint=("_live_",)),
    _Rule("STRIPE_KEY", _r(_B + r"(?:sk|rk)_test_[A-Za-z0-9]{20,99}" + _E), 0.8, hint=("_test_",)),
    _Rule("SENDGRID_API_KEY", _r(_B + r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + _E), hint=("sg.",)),
    _Rule("TWILIO_API_KEY", _r(r"\bSK[0-9a-f]{32}\b"), 0.8),
    _Rule("NPM_TOKEN", _r(_B + r"npm_[A-Za-z0-9]{36}" + _E), hint=("npm_",)),
    _Rule("PYPI_TOKEN", _r(_B + r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}" + _E), hint=("pypi-",)),
    _Rule("AZURE_STORAGE_KEY", _r(r"(?i)AccountKey=([A-Za-z0-9+/]{86}==)"), 0.95, 1, hint=("ccountkey=",)),
    _Rule("AZURE_SAS_TOKEN", _r(r"[?&]sig=[A-Za-z0-9%+/]{40,}={0,2}(?:%3D){0,2}"), 0.8, hint=("sig=",)),
    _Rule("PRIVATE_KEY", _r(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]{0,8000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?"), 1.0, hint=("private key",)),
    _Rule("JWT", _r(_B + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}" + _E), 0.9, check="jwt", hint=("eyj",)),
    _Rule("CONNECTION_STRING", _r(r"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|clickhouse|snowflake)://[^\s:@/'\"]+:([^\s@/'\"]+)@[^\s'\"]+", re.IGNORECASE), 0.9, 1, "password", ("://",)),
    _Rule("CONNECTION_STRING", _r(r"(?i)(?:Password|Pwd)=([^;'\"\s]{6,})"), 0.8, 1, "password", ("password=", "pwd=")),
    _Rule("GENERIC_SECRET", _r(
        r"(?i)(?:api[_\-.]?key|apikey|secret(?:[_\-.]?key)?|client[_\-.]?secret|access[_\-.]?token|auth[_\-.]?token|"
        r"bearer|token|passwd|password|pwd|private[_\-.]?key|credentials?)[\"']?\s*(?:[:=]|=>|:=)?\s*[\"']?"
        r"([A-Za-z0-9_\-+/=.~!@#$%^&*]{12,128})"), 0.8, 1, "entropy",
        ("key", "secret", "token", "bearer", "passw", "pwd", "credential")),
    _Rule("HIGH_ENTROPY_TOKEN", _r(r"(?<![A-Za-z0-9_\-+/=.])[A-Za-z0-9_\-+/]{32,100}={0,2}(?![A-Za-z0-9_\-+/=])"), 0.45, check="entropy"),
)

_PLACEHOLDER = re.compile(
    r"(?i)^(?:.*(?:x{4,}|\*{3,}|\.{3}|your[_\-]?|example|placeholder|changeme|redacted|dummy|sample|<|>|\$\{|\{\{|%\().*|"
    r"password\d*|secret|test|none|null|true|false|admin|root)$"
)


# A name, not a value: `process.env.OPENAI_API_KEY`, `secrets.GITHUB_TOKEN`, `DB_PASSWORD`.
_REFERENCE = re.compile(r"^(?:[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+|[A-Z][A-Z0-9_]{3,}|[a-z]+(?:_[a-z]+)+)$")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _random_enough(value: str, strict: bool) -> bool:
    if _PLACEHOLDER.match(value) or _REFERENCE.match(value):
        return False
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value)))
    if strict:
        # No context: hex digests, UUIDs and words are not keys; random mixed-case is.
        return classes == 3 and entropy(value) >= 4.2
    return classes >= 2 and entropy(value) >= 3.3


def _jwt(token: str) -> bool:
    head = token.split(".", 1)[0]
    try:
        decoded: Any = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


class SecretsScanner(Scanner):
    """API keys, cloud credentials, private keys, JWTs, connection strings, random tokens."""

    name = "secrets"
    version = "1"
    max_match = 256

    @classmethod
    def entities(cls, options: Any) -> frozenset[str]:
        return frozenset(r.entity for r in _RULES)

    def __init__(self, options: Any, *, entities: frozenset[str] | None, resources: Any) -> None:
        super().__init__(options, entities=entities, resources=resources)
        self._rules = [r for r in _RULES if entities is None or r.entity in entities]

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        lowered = text.lower()
        for rule in self._rules:
            if rule.hint and not any(h in lowered for h in rule.hint):
                continue
            for m in rule.pattern.finditer(text):
                value = m.group(rule.group)
                if not self._valid(rule, value):
                    continue
                found.append(Finding(rule.entity, m.start(rule.group), m.end(rule.group), rule.score))
        return resolve_overlaps(found)

    @staticmethod
    def _valid(rule: _Rule, value: str) -> bool:
        if rule.check == "jwt":
            return _jwt(value)
        if rule.check == "entropy":
            return _random_enough(value, strict=rule.entity == "HIGH_ENTROPY_TOKEN")
        if rule.check == "password":
            return not _PLACEHOLDER.match(value)
        return True
