"""Keep secrets on the machine: replace the values of secret-looking environment variables.

A variable is secret-looking when its NAME contains KEY, TOKEN, SECRET, PASSWORD,
PASSWD, CREDENTIAL or AUTH (any case). Its value, wherever it appears in a string
(a tool's output, a message, metadata), becomes ``[REDACTED:NAME]``. Values shorter
than ``min_length`` are ignored, so that ``DEBUG_AUTH=1`` does not turn every "1"
into a marker. Pure: no I/O, no global state; build one per process or per export.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
MIN_LENGTH = 8
IDENTIFYING = frozenset({"run_id", "trial_id", "task_id", "model", "multiplier", "sample"})


def looks_secret(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


@dataclass(frozen=True)
class Redactor:
    """``secrets`` maps a secret value to the name of the variable that held it."""

    secrets: Mapping[str, str] = field(default_factory=dict)
    _pattern: re.Pattern | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.secrets:
            # Longest first, so a secret that contains another is replaced whole.
            values = sorted(self.secrets, key=lambda v: (-len(v), v))
            object.__setattr__(self, "_pattern", re.compile("|".join(map(re.escape, values))))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, min_length: int = MIN_LENGTH) -> Redactor:
        """The secrets of ``environ`` (default ``os.environ``)."""
        if environ is None:
            import os

            environ = os.environ
        secrets: dict[str, str] = {}
        for name in sorted(environ):  # sorted: the same value under two names gets a stable label
            value = environ[name]
            if looks_secret(name) and isinstance(value, str) and len(value.strip()) >= min_length:
                secrets.setdefault(value, name)
                if value.strip() != value:
                    secrets.setdefault(value.strip(), name)
        return cls(secrets)

    def with_params(self, params: Mapping[str, Mapping[str, Any]]) -> Redactor:
        """Also redact secret-looking model parameters (``--hb-model-param MODEL:api_key=...``)."""
        extra = {str(value): f"{model}:{key}" for model, values in params.items() for key, value in values.items()
                 if looks_secret(key) and len(str(value).strip()) >= MIN_LENGTH}
        return Redactor({**extra, **self.secrets}) if extra else self

    def __bool__(self) -> bool:
        return bool(self.secrets)

    @property
    def names(self) -> list[str]:
        return sorted(set(self.secrets.values()))

    def redact_text(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: f"[REDACTED:{self.secrets[m.group(0)]}]", text)

    def redact(self, obj: Any) -> Any:
        """A copy of ``obj`` with every secret in its strings (keys too) replaced.

        Walks dicts, lists and tuples; other values are returned as they are.
        Identifying fields (ids, model, multiplier) keep their values: records
        are matched on them, and a secret cannot be in them.
        """
        if self._pattern is None:
            return obj
        if isinstance(obj, str):
            return self.redact_text(obj)
        if isinstance(obj, dict):
            return {(self.redact_text(k) if isinstance(k, str) else k): (v if k in IDENTIFYING else self.redact(v))
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.redact(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact(v) for v in obj)
        return obj
