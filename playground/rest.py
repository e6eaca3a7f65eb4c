"""The emulated REST API under ``/api/v10``: routing by the spec, auth, bodies, validation, limits.

Each request is matched to a path template of Discord's OpenAPI description, logged, checked
(auth, multipart, upload size, request-body schema) and handed to a handler in :mod:`.handlers`.
Anything a well-behaved bot should never cause is recorded in ``emu.problems``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from .core import EmulatorCore
from .records import RestRequest
from .spec import normalise_attachment_ids

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")
# Routes that authenticate with the webhook/interaction token in the path, not the bot token.
_TOKEN_ROUTES = ("/webhooks/{webhook_id}/{webhook_token}", "/interactions/")


class DiscordError(Exception):
    """An error response in Discord's shape; ``problem`` (if set) is also recorded as a bot bug."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        problem: str | None = None,
        errors: Any = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problem = problem
        self.errors = errors
        self.extra = extra or {}
        self.headers = headers or {}

    def response(self) -> web.Response:
        body: dict[str, Any] = {"message": self.message, "code": self.code, **self.extra}
        if self.errors is not None:
            body["errors"] = self.errors
        response = json_response(body, status=self.status)
        response.headers.update(self.headers)
        return response


def json_response(body: Any, status: int = 200) -> web.Response:
    """discord.py parses JSON only when Content-Type is exactly ``application/json``."""
    return web.Response(status=status, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


@dataclass
class ApiCall:
    """One parsed REST request, as handed to a handler."""

    method: str
    template: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    files: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    #: When the request arrived (time.monotonic), before it was parsed and checked.
    received_at: float = field(default_factory=time.monotonic)

    def snowflake(self, name: str) -> int:
        value = self.params[name]
        if not value.isdigit():
            raise DiscordError(404, 0, "404: Not Found", problem=f"{self.template}: {name}={value!r}")
        return int(value)


class RestApi:
    """Front door for REST: everything between the HTTP request and a handler."""

    def __init__(self, emu: EmulatorCore) -> None:
        self.emu = emu

    async def handle(self, request: web.Request) -> web.StreamResponse:
        emu = self.emu
        raw = request.raw_path.split("?", 1)[0]
        sub = raw[len(API_PREFIX) :] if raw.startswith(API_PREFIX) else raw
        segments = [unquote(s) for s in sub.strip("/").split("/")]
        match = emu.spec.match(request.method, segments)
        query = dict(request.query)
        record = RestRequest(
            request.method, sub, match.template if match else None, None, [], time.monotonic(), query=query
        )
        emu.requests.append(record)
        limit_headers: dict[str, str] = {}
        try:
            if match is None:
                raise DiscordError(404, 0, "404: Not Found", problem=f"unknown route {request.method} {sub}")
            self._check_auth(request, match.template)
            body, files = await self._read_body(request, match.template)
            fault = emu.faults.take(request.method, match.template, match.params, bool(files))
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                raise DiscordError(
                    fault.status, fault.code, fault.message,
                    extra={k: v for k, v in fault.body().items() if k not in ("message", "code")},
                    headers=fault.headers(),
                )
            limit_headers = self._check_rate_limit(request.method, match.template, match.params)
            record.json = body
            record.files = [(f"files[{n}]", name, data) for n, (name, data) in sorted(files.items())]
            total = sum(len(data) for _, data in files.values())
            if total > emu.upload_limit:
                raise DiscordError(413, 40005, "Request entity too large")
            if body is not None or request.method in ("POST", "PUT", "PATCH"):
                self._validate(request.method, match.template, body)
            handler = emu.handlers.get((request.method, match.template))
            if handler is None:
                raise DiscordError(
                    404,
                    0,
                    "404: Not Found",
                    problem=f"the emulator does not implement {request.method} {match.template}",
                )
            call = ApiCall(request.method, match.template, match.params, query, body, files, received_at=record.at)
            response = await handler(call)
        except DiscordError as exc:
            if exc.problem:
                emu.problem(exc.problem)
            response = exc.response()
        except Exception as exc:  # an emulator bug: fail the test quickly rather than 500-and-retry
            log.exception("emulator error on %s %s", request.method, sub)
            emu.problem(f"emulator error on {request.method} {sub}: {exc!r}")
            response = DiscordError(400, 0, f"emulator error: {exc!r}").response()
        response.headers.update(limit_headers)
        record.status = response.status
        emu.changed()
        return response

    def _check_rate_limit(self, method: str, template: str, params: dict[str, str]) -> dict[str, str]:
        """Discord's rate-limit headers for this request; 429 (a problem of the bot) when over a limit."""
        limits = self.emu.rate_limits
        if limits is None:
            return {}
        verdict = limits.hit(method, template, params)
        if verdict.retry_after is None:
            return verdict.headers
        retry = round(max(verdict.retry_after, 0.001), 3)
        scope = "global" if verdict.is_global else "route"
        count, per = (verdict.limit.count, verdict.limit.per) if verdict.limit else (0, 0.0)
        raise DiscordError(
            429,
            0,
            "You are being rate limited.",
            problem=f"rate limit: {method} {template} over the {scope} limit of {count} per {per:g}s (429)",
            extra={"retry_after": retry, "global": verdict.is_global},
            # Discord's 429s come through its proxy (``Via``): clients take a 429 without it for a Cloudflare ban.
            headers={**verdict.headers, "Retry-After": str(retry), "Via": "1.1 google"},
        )

    def _check_auth(self, request: web.Request, template: str) -> None:
        header = request.headers.get("Authorization")
        expected = f"Bot {self.emu.token}"
        if template.startswith(_TOKEN_ROUTES) and header is None:
            return
        if header != expected:
            shown = "missing" if header is None else "wrong"
            raise DiscordError(
                401,
                0,
                "401: Unauthorized",
                problem=f"{request.method} {template}: {shown} Authorization header",
            )

    async def _read_body(self, request: web.Request, template: str) -> tuple[Any, dict[int, tuple[str, bytes]]]:
        where = f"{request.method} {template}"
        ctype = request.content_type
        if not request.can_read_body:
            return None, {}
        if ctype == "application/json":
            try:
                return json.loads(await request.text()), {}
            except ValueError as exc:
                raise DiscordError(
                    400,
                    50109,
                    "The request body contains invalid JSON.",
                    problem=f"{where}: invalid JSON ({exc})",
                ) from None
        if ctype == "multipart/form-data":
            return await self._read_multipart(request, where)
        raw = await request.read()
        if not raw:
            return None, {}
        raise DiscordError(400, 50109, "Unsupported body", problem=f"{where}: unsupported Content-Type {ctype!r}")

    async def _read_multipart(self, request: web.Request, where: str) -> tuple[Any, dict[int, tuple[str, bytes]]]:
        body: Any = None
        files: dict[int, tuple[str, bytes]] = {}
        try:
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    raise ValueError("nested or unnamed multipart part")
                file_match = _FILE_FIELD.match(part.name)
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                elif file_match:
                    if not part.filename:
                        raise ValueError(f"{part.name} has no filename")
                    files[int(file_match.group(1))] = (part.filename, bytes(await part.read()))
                else:
                    raise ValueError(f"unexpected multipart field {part.name!r}")
        except ValueError as exc:
            raise DiscordError(
                400, 50035, "Invalid Form Body", problem=f"{where}: malformed multipart: {exc}"
            ) from None
        if body is None:
            raise DiscordError(400, 50035, "Invalid Form Body", problem=f"{where}: multipart without payload_json")
        return body, files

    def _validate(self, method: str, template: str, body: Any) -> None:
        error = self.emu.spec.validate(template, method, normalise_attachment_ids(body))
        if error is not None:
            raise DiscordError(400, 50035, "Invalid Form Body", problem=f"spec: {error}")
