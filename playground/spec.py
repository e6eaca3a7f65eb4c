"""Discord's OpenAPI description: match request paths to its routes and validate request bodies.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so the whole document is registered once as a
``referencing`` resource and each operation's request body schema gets one cached validator.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:discord-api-spec"
SPEC_ENV_VAR = "DISCORD_API_SPEC"


@dataclass(frozen=True)
class RouteMatch:
    """A request path matched to one of the spec's path templates."""

    template: str
    params: dict[str, str]


def _pointer_escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


class ApiSpec:
    """The loaded spec: route templates by segment, and request-body validators built on demand."""

    def __init__(self, path: Path | str | None = None) -> None:
        resolved = Path(path) if path is not None else None
        if resolved is None and os.environ.get(SPEC_ENV_VAR):
            resolved = Path(os.environ[SPEC_ENV_VAR])
        if resolved is None or not resolved.is_file():
            raise FileNotFoundError(
                f"Discord OpenAPI spec not found at {resolved!s}; pass spec_path= or set {SPEC_ENV_VAR}"
            )
        self.path = resolved
        self.document: dict[str, Any] = json.loads(resolved.read_text(encoding="utf-8"))
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self._templates = [(t, t.strip("/").split("/")) for t in self.document["paths"]]
        self._validators: dict[tuple[str, str], Draft202012Validator | None] = {}
        self._fast: dict[tuple[str, str], Any] = {}

    def match(self, method: str, segments: list[str]) -> RouteMatch | None:
        """The most specific spec path template for these (already unquoted) segments, if any.

        Literal segments beat parameters, so ``messages/@original`` wins over ``messages/{message_id}``.
        """
        best: tuple[int, RouteMatch] | None = None
        for template, parts in self._templates:
            if len(parts) != len(segments):
                continue
            params: dict[str, str] = {}
            literals = 0
            for part, seg in zip(parts, segments, strict=True):
                if part.startswith("{") and part.endswith("}"):
                    params[part[1:-1]] = seg
                elif part == seg:
                    literals += 1
                else:
                    break
            else:
                if method.lower() not in self.document["paths"][template]:
                    continue
                if best is None or literals > best[0]:
                    best = (literals, RouteMatch(template, params))
        return best[1] if best else None

    def has_operation(self, template: str, method: str) -> bool:
        return method.lower() in self.document["paths"].get(template, {})

    def validator(self, template: str, method: str) -> Draft202012Validator | None:
        """The validator for the operation's ``application/json`` request body, or None if it has none."""
        key = (template, method.lower())
        if key not in self._validators:
            operation = self.document["paths"][template][method.lower()]
            body = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if body is None:
                self._validators[key] = None
            else:
                pointer = "/".join(
                    _pointer_escape(p)
                    for p in ("paths", template, method.lower(), "requestBody", "content", "application/json")
                )
                ref = f"{SPEC_URI}#/{quote(pointer, safe='/~')}/schema"
                self._validators[key] = Draft202012Validator({"$ref": ref}, registry=self._registry)
        return self._validators[key]

    def _fast_validator(self, template: str, method: str) -> Any:
        """A compiled (Rust) validator for the same schema: microseconds instead of milliseconds.

        The emulator shares the event loop (or the machine) with the bot under test; checking a
        component-heavy body with the pure-Python validator takes ~10 ms, which would be counted
        against the bot's acknowledgement time. The compiled one answers valid/invalid; the
        Python one still writes the readable message when a body is invalid.
        """
        key = (template, method.lower())
        if key not in self._fast:
            pointer = "/".join(
                _pointer_escape(p)
                for p in ("paths", template, method.lower(), "requestBody", "content", "application/json")
            )
            self._fast[key] = jsonschema_rs.Draft202012Validator(
                {**self.document, "$ref": f"#/{quote(pointer, safe='/~')}/schema"}
            )
        return self._fast[key]

    def validate(self, template: str, method: str, body: Any) -> str | None:
        """Validate a request body; returns a readable error, or None when it conforms."""
        validator = self.validator(template, method)
        if validator is None:
            return None
        if self._fast_validator(template, method).is_valid(body):
            return None
        error = best_match(validator.iter_errors(body))
        if error is None:
            return None
        # Unions (anyOf/oneOf) report "not valid under any": show the deepest branch error instead.
        while error.context:
            error = max(error.context, key=_depth)
        where = "/".join(str(p) for p in error.absolute_path) or "<body>"
        return f"{method.upper()} {template}: body at {where}: {error.message[:300]}"


@functools.cache
def _load_cached(path: Path) -> ApiSpec:
    return ApiSpec(path)


def load_spec(path: Path | str | None = None) -> ApiSpec:
    """The spec at ``path`` (or ``$DISCORD_API_SPEC``), parsed once per process and shared.

    Sharing is safe: an :class:`ApiSpec` only matches routes and caches stateless validators.
    """
    if path is None and os.environ.get(SPEC_ENV_VAR):
        path = os.environ[SPEC_ENV_VAR]
    if path is None:
        raise FileNotFoundError(f"no Discord OpenAPI spec given: pass spec_path= or set {SPEC_ENV_VAR}")
    return _load_cached(Path(path).resolve())


def _depth(error: ValidationError) -> int:
    """How deep into the body an error (or any error under it) reaches."""
    return max([len(error.absolute_path), *(_depth(e) for e in error.context or ())])


def normalise_attachment_ids(body: Any) -> Any:
    """Rewrite (on a copy) the ids of new attachments, which discord.py sends as integers (0, 1, ...).

    This is the one known gap between the spec (ids are strings) and what Discord accepts; nothing
    else is normalised, so the bot must send every other snowflake as the spec says (for example,
    it lets mentions ping through ``parse`` rather than lists of integer ids).
    """
    if not isinstance(body, dict):
        return body
    out = dict(body)
    if isinstance(out.get("attachments"), list):
        out["attachments"] = [
            {**a, "id": str(a["id"])} if isinstance(a, dict) and _is_int(a.get("id")) else a for a in out["attachments"]
        ]
    if isinstance(out.get("data"), dict):
        out["data"] = normalise_attachment_ids(out["data"])
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
