"""Plain records of what the emulated Discord saw: messages, attachments, interactions, REST calls.

They are mutable dataclasses so the emulator can update them in place (edits, reactions, responses);
tests read them to assert on exactly what Discord would have received.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

EPHEMERAL_FLAG = 1 << 6
LOADING_FLAG = 1 << 7


@dataclass
class EmuAttachment:
    """One uploaded file, as stored by the emulator and served at ``url``."""

    id: int
    filename: str
    content_type: str
    data: bytes
    url: str
    description: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def spoiler(self) -> bool:
        """Discord marks a file as a spoiler by the ``SPOILER_`` filename prefix."""
        return self.filename.startswith("SPOILER_")

    @property
    def size(self) -> int:
        return len(self.data)

    def image(self) -> Image.Image:
        """Decode the file as an image (fully loaded, so the bytes may be dropped)."""
        from PIL import Image

        img = Image.open(io.BytesIO(self.data))
        img.load()
        return img


@dataclass
class EmuMessage:
    """A message in the emulated guild: a channel message or an interaction response/followup."""

    id: int
    channel_id: int
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[EmuAttachment] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    reactions: dict[str, set[int]] = field(default_factory=dict)
    interaction_id: int | None = None
    allowed_mentions: dict[str, Any] | None = None
    reference_id: int | None = None
    webhook_id: int | None = None
    type: int = 0
    tts: bool = False
    edit_count: int = 0
    deleted: bool = False
    created_at: float = field(default_factory=time.monotonic)
    edited_at: float | None = None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL_FLAG)

    @property
    def loading(self) -> bool:
        """True while this is a deferred "Bot is thinking..." placeholder."""
        return bool(self.flags & LOADING_FLAG)

    def buttons(self) -> list[tuple[str | None, str | None, str | None]]:
        """Every button on the message as ``(custom_id, label, emoji)``; emoji is its name or None."""
        found: list[tuple[str | None, str | None, str | None]] = []
        for component in _walk_components(self.components):
            if component.get("type") == 2:
                emoji = component.get("emoji") or {}
                found.append((component.get("custom_id"), component.get("label"), emoji.get("name")))
        return found

    def component_custom_ids(self) -> list[str]:
        """custom_ids of every interactive component (buttons, selects) on the message."""
        return [c["custom_id"] for c in _walk_components(self.components) if "custom_id" in c]


def _walk_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten nested components (action rows, containers, sections) depth first."""
    out: list[dict[str, Any]] = []
    for component in components:
        out.append(component)
        out.extend(_walk_components(component.get("components") or []))
        accessory = component.get("accessory")
        if isinstance(accessory, dict):
            out.append(accessory)
    return out


@dataclass
class EmuInteraction:
    """One interaction the emulator sent to the bot, and how the bot answered it."""

    id: int
    token: str
    type: int
    user_id: int
    channel_id: int
    name: str | None = None
    custom_id: str | None = None
    message_id: int | None = None
    created_at: float = field(default_factory=time.monotonic)
    responded_at: float | None = None
    response_type: int | None = None
    ephemeral: bool = False
    original: EmuMessage | None = None
    followups: list[EmuMessage] = field(default_factory=list)
    autocomplete_choices: list[dict[str, Any]] | None = None
    modal: dict[str, Any] | None = None
    expired: bool = False

    @property
    def ack_ms(self) -> float | None:
        """Milliseconds from dispatch to the first callback, or None if never acknowledged."""
        if self.responded_at is None:
            return None
        return (self.responded_at - self.created_at) * 1000.0


@dataclass
class RestRequest:
    """One REST call the bot made, as received."""

    method: str
    path: str
    route_template: str | None
    json: Any
    files: list[tuple[str, str, bytes]]
    at: float
    status: int = 0
    query: dict[str, str] = field(default_factory=dict)
