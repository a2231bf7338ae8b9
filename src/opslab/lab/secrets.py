"""Values of ``runtime.env_allow`` variables kept out of everything a run writes: the harness gets them; its
logs, events, spans, output, workspace changes and the egress log are scrubbed of them before anything is
recorded, and a published bundle again.

A secret is found in every form a harness is likely to write it in (``forms``): the raw value; its JSON
string forms (ASCII-only escapes in either hex case, non-ASCII kept, ``\\/``, Go's HTML-safe escapes,
JSON inside JSON) and Python's ``repr``; URL-encoded (``quote``, ``quote_plus``, JavaScript's
``encodeURIComponent``, either hex case); base64 (standard and URL-safe, padded or not, and the part
that survives at any offset inside a longer base64 text); hex. Each becomes ``[REDACTED:NAME]``; where
that would leave a secret across a marker's edge (or the marker holds one), ``***``. Host names compare
without case, their IDNA (``xn--``) labels decoded (and a secret's own punycode found anywhere). Values
under ``MIN_SECRET_CHARS`` are passed, not scrubbed: they would scrub ordinary text.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import mmap
import os
import re
import secrets as _random
import stat
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MIN_SECRET_CHARS = 4
EMBEDDED_B64_BYTES = 6  # shorter values' base64 fragments (under 7 characters) would match ordinary text
FALLBACK = "***"  # shorter than any form: it can hold none
_HEX_ESCAPE = re.compile(r"(\\u|%)([0-9a-f]{2,4})")


def secret_values(names: list[str], env: Mapping[str, str]) -> dict[str, str]:
    """The allowed variables present in ``env``: name -> value."""
    return {n: env[n] for n in names if n in env}


def forms(value: str) -> set[str]:
    """Every encoding of ``value`` this module finds (see the module docstring), the value itself too."""
    raw = value.encode("utf-8", "surrogatepass")
    json_ascii = json.dumps(value)[1:-1]
    json_utf8 = json.dumps(value, ensure_ascii=False)[1:-1]
    out = {value, json_ascii, json_utf8, repr(value)[1:-1], _upper_hex(json_ascii)}
    out |= {json.dumps(json_ascii)[1:-1], json.dumps(json_utf8, ensure_ascii=False)[1:-1]}
    out |= {f.replace("/", "\\/") for f in tuple(out)}
    out |= {_html_safe(f) for f in (json_ascii, json_utf8)}
    for url in (quote(raw, safe=""), quote(raw), quote_plus(raw), quote(raw, safe="-_.!~*'()")):
        out |= {url, _lower_hex(url)}
    for b64 in (base64.b64encode(raw).decode(), *_embedded_b64(raw)):
        out |= {b64, b64.rstrip("="), b64.translate(_URLSAFE), b64.rstrip("=").translate(_URLSAFE)}
    out |= {raw.hex(), raw.hex().upper()}
    return {f for f in out if len(f) >= MIN_SECRET_CHARS}


_URLSAFE = str.maketrans("+/", "-_")


def _upper_hex(text: str) -> str:
    return _HEX_ESCAPE.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _html_safe(text: str) -> str:
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _embedded_b64(raw: bytes) -> list[str]:
    """The characters of base64 that depend on ``raw`` alone, for ``raw`` at each offset modulo 3."""
    if len(raw) < EMBEDDED_B64_BYTES:
        return []
    out = []
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + raw).decode()
        out.append(encoded[(8 * k + 5) // 6 : (8 * (k + len(raw))) // 6])
    return out


class Scrubber:
    """The secrets of a run, ready to scrub text, bytes, JSON values, host names and files."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        markers: dict[bytes, bytes] = {}
        # Longest value first: a secret that holds another is masked whole.
        for name, value in sorted(secrets.items(), key=lambda kv: -len(kv[1])):
            if len(value) < MIN_SECRET_CHARS:
                continue
            marker = f"[REDACTED:{name}]"
            for form in sorted(forms(value), key=len, reverse=True):
                markers.setdefault(form.encode("utf-8", "surrogatepass"), marker.encode())
        self.names = sorted(n for n, v in secrets.items() if len(v) >= MIN_SECRET_CHARS)
        self._markers = markers
        needles = sorted(markers, key=len, reverse=True)
        self._pattern = re.compile(b"|".join(re.escape(n) for n in needles)) if needles else None
        self._text = re.compile("|".join(re.escape(n.decode("utf-8", "surrogatepass")) for n in needles))
        folded = {n.decode("utf-8", "surrogatepass").lower() for n in needles}
        for value in secrets.values():  # a host name's IDNA label: the secret's punycode, prefixed or not
            if len(value) >= MIN_SECRET_CHARS and not value.isascii():
                with contextlib.suppress(UnicodeError):
                    code = value.lower().encode("punycode").decode("ascii")
                    folded |= {code, f"xn--{code}"}
        self._folded = sorted(folded, key=len, reverse=True)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def bytes(self, data: bytes) -> bytes:
        if self._pattern is None or self._pattern.search(data) is None:
            return data
        data = self._pattern.sub(lambda m: self._markers[m.group(0)], data)
        while self._pattern.search(data):  # a secret across a marker's edge, or inside a marker
            data = self._pattern.sub(FALLBACK.encode(), data)
        return data

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self.bytes(text.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogatepass")

    def value(self, value: Any) -> Any:
        """A JSON value with every secret form taken out of every string in it, keys included."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        return value

    def host(self, host: str) -> str:
        """A host name as the egress log records it: IDNA labels decoded, a secret in any case masked."""
        if self._pattern is None:
            return host
        labels = []
        for label in host.split("."):
            try:
                labels.append(
                    label.encode("ascii").decode("idna") if label.lower().startswith("xn--") else label
                )
            except UnicodeError:
                labels.append(label)
        name = ".".join(labels)
        folded = name.lower()
        if any(f in folded for f in self._folded):
            pattern = "|".join(re.escape(f) for f in self._folded)
            name = re.sub(pattern, FALLBACK, name, flags=re.IGNORECASE)
        return self.text(name)

    def file(self, path: str | os.PathLike[str]) -> bool:
        """Rewrite a regular file that holds a secret (through a new file renamed over it: a hard link
        to a file elsewhere keeps its content); symbolic links are not followed. True if it changed."""
        if self._pattern is None:
            return False
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return False
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not _regular(st.st_mode) or st.st_size == 0:
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                if self._pattern.search(mm) is None:
                    return False
                self._rewrite(os.fspath(path), mm, st.st_mode)
        return True

    def _rewrite(self, path: str, mm: mmap.mmap, mode: int) -> None:
        assert self._pattern is not None
        tmp = f"{path}.scrub-{_random.token_hex(4)}"
        with open(tmp, "xb") as out:
            pos = 0
            for m in self._pattern.finditer(mm):
                out.write(mm[pos : m.start()])
                out.write(self._markers[m.group(0)])
                pos = m.end()
            out.write(mm[pos:])
        os.chmod(tmp, mode & 0o7777)
        with open(tmp, "rb") as f:
            data = f.read()
        if self._pattern.search(data):
            with open(tmp, "wb") as f:
                f.write(self.bytes(data))
        os.replace(tmp, path)

    def mark(self, folder: str) -> int:
        """The time, by the file system's own clock, at which this is called: files written from now on
        have a status-change time at least this (a marker file made and removed in ``folder``)."""
        marker = os.path.join(folder, f".scrub-mark-{_random.token_hex(4)}")
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            return os.fstat(fd).st_ctime_ns
        finally:
            os.close(fd)
            os.unlink(marker)

    def tree(self, root: str, *, since_ns: int | None = None, skip: Iterable[str] = ()) -> bool:
        """Scrub the files under ``root`` and the names of its files and folders (only those changed at
        or after ``since_ns``, see ``mark``; ``skip``: top-level names left alone). Symbolic links are
        not followed. True if anything changed."""
        if self._pattern is None:
            return False
        changed = False
        skipped = set(skip)
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            at_top = dirpath == root
            for name in (*filenames, *dirnames):
                if at_top and name in skipped:
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if since_ns is not None and st.st_ctime_ns < since_ns:
                    continue
                if _regular(st.st_mode):
                    changed |= self.file(path)
                clean = self.text(name).replace(os.sep, "_")
                if clean != name and not os.path.lexists(os.path.join(dirpath, clean)):
                    os.rename(path, os.path.join(dirpath, clean))
                    changed = True
        return changed


def _regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


@functools.lru_cache(maxsize=32)
def _cached(items: tuple[tuple[str, str], ...]) -> Scrubber:
    return Scrubber(dict(items))


def scrubber(secrets: Mapping[str, str]) -> Scrubber:
    """The ``Scrubber`` of these secrets (built once per set: every trial of a run shares it)."""
    return _cached(tuple(sorted(secrets.items())))
