"""The studio's side of the bot's local API (:mod:`bot.local_api`): small blocking HTTP calls.

Every call carries the shared secret; a bot that is not running (or not answering) is
:class:`BotUnavailable`, which the pages turn into one plain sentence.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from studio.settings import StudioSettings

SECRET_HEADER = "X-Studio-Secret"
TIMEOUT_S = 5.0


class BotUnavailable(RuntimeError):
    """The bot's API did not answer (the bot is not running, or the secret or port is wrong)."""


class Refused(ValueError):
    """The bot refused the request; ``str()`` is its message for the member (as /imagine says it)."""


@dataclass(frozen=True)
class BotClient:
    """Calls to one bot's local API."""

    settings: StudioSettings

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.settings.api_url + path, data=data, method=method,
            headers={SECRET_HEADER: self.settings.secret, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read()
        except (urllib.error.URLError, OSError) as error:
            raise BotUnavailable(str(error)) from None

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, data = self._call(method, path, body)
        if status == 401:
            raise BotUnavailable("the bot refused the studio's secret: check [studio] secret")
        try:
            parsed = json.loads(data or b"{}")
        except ValueError:
            parsed = {"error": data.decode(errors="replace")}
        if status >= 400:
            raise Refused(str(parsed.get("error") or f"the bot answered {status}"))
        return dict(parsed)

    def status(self) -> dict[str, Any]:
        """The model, styles, defaults and queue length (raises :class:`BotUnavailable`)."""
        return self._json("GET", "/api/status")

    def imagine(self, options: dict[str, Any]) -> dict[str, Any]:
        """Queue a generation: ``{"job_id", "position"}``, or :class:`Refused` with /imagine's message."""
        return self._json("POST", "/api/imagine", options)

    def job(self, job_id: int) -> dict[str, Any]:
        """A studio job's status, place, status line and image ids."""
        return self._json("GET", f"/api/jobs/{job_id}")

    def preview(self, job_id: int) -> bytes | None:
        """The newest progress preview, or None."""
        status, data = self._call("GET", f"/api/jobs/{job_id}/preview")
        return data if status == 200 else None
