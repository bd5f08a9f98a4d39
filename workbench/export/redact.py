"""Redaction for everything the appendix exports: tables, chart specs, HTML, Markdown and notebooks.

Secrets are replaced by `REDACTED` and the name that carried them is kept, so a reader still sees that a URL
was presigned or a request carried a token: presigned-URL signatures and credentials (S3, GCS, Azure SAS),
bearer and basic credentials, `token=`-style parameters, JWTs, the registry's `_state` upload parameter,
passwords in DSNs and basic-auth URLs, AWS access key ids. With a key, IP addresses are replaced by a keyed
HMAC pseudonym (`ip-` and 10 hex digits): the same address gets the same pseudonym in every table and chart,
so top-talker tables keep their meaning, and without the key the address cannot be recovered.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any

MARK = "REDACTED"
KEY_ENV = "WORKBENCH_IP_KEY"

# Query or form parameters whose value is a secret (matched case-insensitively, name kept). `=` may be
# percent-encoded when the URL sits inside another URL.
_SECRET_PARAMS = (
    r"x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential"
    r"|signature|awsaccesskeyid|sig|_state|[\w-]*token|password|passwd|pwd|secret|client_secret|api_?key"
)
_PARAM = re.compile(rf"(?i)(?<![\w-])({_SECRET_PARAMS})(=|%3D)([^&\s\"'<>#;,]+)")
# JSON / YAML style `"password": "…"`.
_JSON_FIELD = re.compile(
    r"(?i)(\"(?:password|passwd|secret|client_secret|[\w-]*token|authorization)\"\s*:\s*\")((?:[^\"\\]|\\.)+)(\")"
)
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)([A-Za-z0-9\-._~+/]{8,}=*)")
_BASIC = re.compile(r"(?i)(authorization\"?\s*[:=]\s*\"?\s*basic)(\s+)([A-Za-z0-9+/]{4,}=*)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/?#\s@\"'<>]+):([^@/?#\s\"'<>]+)@")
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.]|\.\d)")
# IPv6 candidates (two colons or more); only those ipaddress accepts are replaced, so times like 06:29:38 stay.
_IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{2,39}(?![\w:.])")


@dataclass(frozen=True)
class Redactor:
    """Applies the secret patterns, and IP pseudonymisation when `ip_key` is set."""

    ip_key: bytes | None = None

    @classmethod
    def from_key(cls, key: str | None = None) -> Redactor:
        """A redactor whose IP key is `key`, else the WORKBENCH_IP_KEY environment variable, else none."""
        key = key if key is not None else os.environ.get(KEY_ENV)
        return cls(key.encode() if key else None)

    def pseudonym(self, ip: str) -> str:
        if self.ip_key is None:
            return ip
        try:
            canon = str(ipaddress.ip_address(ip))
        except ValueError:
            return ip
        return "ip-" + hmac.new(self.ip_key, canon.encode(), hashlib.sha256).hexdigest()[:10]

    def text(self, s: str) -> str:
        """The string with every secret replaced (and IPs pseudonymised when keyed)."""
        if not s:
            return s
        s = _USERINFO.sub(lambda m: f"{m.group(1)}:{MARK}@", s)
        s = _JWT.sub(MARK, s)
        s = _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{MARK}", s)
        s = _JSON_FIELD.sub(lambda m: f"{m.group(1)}{MARK}{m.group(3)}", s)
        s = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MARK}", s)
        s = _BASIC.sub(lambda m: f"{m.group(1)}{m.group(2)}{MARK}", s)
        s = _AWS_KEY_ID.sub(MARK, s)
        if self.ip_key is not None:
            s = _IPV4.sub(lambda m: self.pseudonym(m.group(0)), s)
            s = _IPV6.sub(lambda m: self.pseudonym(m.group(0)), s)
        return s

    def obj(self, v: Any) -> Any:
        """Redact every string inside nested dicts, lists and tuples (JSON, notebook outputs, chart specs)."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {(self.text(k) if isinstance(k, str) else k): self.obj(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(self.obj(x) for x in v)
        return v

    def frame(self, df):
        """A polars DataFrame with every string (also inside lists and structs) redacted; other types kept."""
        import polars as pl

        cols = []
        for s in df.get_columns():
            if s.dtype == pl.String:
                s = s.map_elements(self.text, return_dtype=pl.String, skip_nulls=True) if s.len() else s
            elif s.dtype.is_nested():
                s = pl.Series(s.name, [self.obj(v) for v in s.to_list()], dtype=s.dtype)
            elif s.dtype in (pl.Categorical, pl.Enum):
                s = s.cast(pl.String).map_elements(self.text, return_dtype=pl.String, skip_nulls=True)
            cols.append(s)
        return pl.DataFrame(cols)

    def notebook(self, nb):
        """An nbformat notebook with sources and every output redacted (in place; also returned)."""
        for cell in nb.cells:
            cell.source = self.text(cell.source)
            for out in cell.get("outputs", []):
                if "text" in out:
                    out["text"] = self.obj(out["text"])
                if "data" in out:
                    out["data"] = self.obj(out["data"])
                if "traceback" in out:
                    out["traceback"] = self.obj(out["traceback"])
                if "evalue" in out:
                    out["evalue"] = self.text(out["evalue"])
        return nb
