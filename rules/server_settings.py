"""Per-server settings: what a server's admins may change, how each value is checked, and the merge.

The config file's values are the defaults; a server (``/settings``) may override some of them,
stored one key per row. :func:`parse_value` checks one value a member typed (a
:class:`SettingError` says what to change); :func:`effective` merges the config and a server's
stored values into :class:`ServerSettings`, remembering where each value comes from; the
checks :func:`access_refusal`, :func:`kid_friendly_refusal` and :func:`quota_refusal` say, in
one sentence naming the rule, why a job may not start. Plain Python: no Discord, no database.

A server may only tighten the config's limits (``max_steps`` at most the config's, and so on):
the config is the owner's word on what the machine runs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from rules.request import GenerationLimits
from rules.safety import AGE_RESTRICTED_ACTIONS, NSFW_ACTIONS, SafetyPolicy

Source = Literal["server", "config"]

#: Seconds in the window of the daily image quota (a rolling day, so a restart or midnight changes nothing).
DAY_S: Final = 24 * 3600.0
#: The longest cooldown a server may set, and the largest daily quota.
MAX_COOLDOWN_S: Final = 24 * 3600
MAX_DAILY_IMAGES: Final = 10_000
#: Channels and roles a server may list.
MAX_LISTED: Final = 50

#: Words a kid-friendly server refuses in prompts, on top of the config's ``[safety] blocked_words``.
KID_FRIENDLY_WORDS: Final[tuple[str, ...]] = (
    "nsfw", "nude", "nudity", "naked", "topless", "nipple", "sex", "sexy", "porn", "erotic", "hentai",
    "lingerie", "underwear", "bikini", "gore", "gory", "blood", "bloody", "corpse", "torture", "decapitated",
    "drugs", "cocaine",
)

#: Every key a server may set, in the order ``/settings show`` lists them.
DEFAULT_KEYS: Final = (
    "default_steps", "default_guidance", "default_size", "default_count", "default_style", "default_model",
)
LIMIT_KEYS: Final = ("max_steps", "max_pixels", "max_pending_per_member", "cooldown_s", "daily_images")
ACCESS_KEYS: Final = ("channels", "roles")
SAFETY_KEYS: Final = ("nsfw_action", "age_restricted_action", "kid_friendly")
ROLE_LIMITS_KEY: Final = "role_limits"
KEYS: Final = (*DEFAULT_KEYS, *LIMIT_KEYS, *ACCESS_KEYS, *SAFETY_KEYS, ROLE_LIMITS_KEY)
#: What each key means, for ``/settings show`` and error messages.
LABELS: Final[Mapping[str, str]] = {
    "default_steps": "Default steps",
    "default_guidance": "Default guidance",
    "default_size": "Default size",
    "default_count": "Images per request",
    "default_style": "Default style",
    "default_model": "Default model",
    "max_steps": "Max steps",
    "max_pixels": "Max pixels",
    "max_pending_per_member": "Pending jobs per member",
    "cooldown_s": "Cooldown between requests",
    "daily_images": "Images per member per day",
    "channels": "Channels where I draw",
    "roles": "Roles that may draw",
    "nsfw_action": "Flagged images (ordinary channels)",
    "age_restricted_action": "Flagged images (age-restricted channels)",
    "kid_friendly": "Kid-friendly",
    "role_limits": "Role limits",
}

_SIZE_RE: Final = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+)\s*$", re.IGNORECASE)


class SettingError(ValueError):
    """A value a server may not set; ``str()`` says what to change."""


@dataclass(frozen=True)
class ConfigDefaults:
    """What the config file says, under every server's own values."""

    limits: GenerationLimits
    safety: SafetyPolicy
    #: ``[queue] max_pending_per_user``.
    max_pending_per_member: int
    #: The model's native side (the default size when neither the config nor the server names one).
    native_size: int
    #: The model requests run on when the server names none.
    model: str
    #: The style presets there are (a server's default style that is gone falls back to none).
    styles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RoleLimit:
    """A role's own quota and cooldown (None: the server's value applies)."""

    daily_images: int | None = None
    cooldown_s: int | None = None

    def to_json(self) -> dict[str, int]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class MemberLimits:
    """The quota and cooldown that apply to one member, and where each comes from."""

    daily_images: int
    cooldown_s: int
    daily_source: str
    cooldown_source: str


@dataclass(frozen=True)
class ServerSettings:
    """A server's effective settings: the config's values with the server's own over them."""

    #: ``[generation]`` with the server's defaults and maxima applied.
    limits: GenerationLimits
    default_size: tuple[int, int] | None
    default_style: str | None
    default_model: str
    max_pending_per_member: int
    cooldown_s: int
    daily_images: int
    role_limits: Mapping[int, RoleLimit]
    #: Channels where the bot draws (empty: all).
    channel_ids: tuple[int, ...]
    #: Roles whose members may draw (empty: everyone).
    role_ids: tuple[int, ...]
    #: ``[safety]`` with the server's NSFW policy (and, kid-friendly, the extra words) applied.
    safety: SafetyPolicy
    kid_friendly: bool
    #: Where each key's value comes from.
    sources: Mapping[str, Source] = field(default_factory=dict)

    def member_limits(self, role_ids: Iterable[int] | None) -> MemberLimits:
        """The quota and cooldown for a member with these roles: the most generous of their roles' own
        limits where any role has one, else the server's (0 means none)."""
        daily, daily_source = self.daily_images, str(self.sources.get("daily_images", "config"))
        cooldown, cooldown_source = self.cooldown_s, str(self.sources.get("cooldown_s", "config"))
        mine = [(role, self.role_limits[role]) for role in role_ids or () if role in self.role_limits]
        dailies = [(limit.daily_images, role) for role, limit in mine if limit.daily_images is not None]
        if dailies:
            daily, role = max(dailies, key=lambda pair: math.inf if pair[0] == 0 else pair[0])
            daily_source = f"role <@&{role}>"
        cooldowns = [(limit.cooldown_s, role) for role, limit in mine if limit.cooldown_s is not None]
        if cooldowns:
            cooldown, role = min(cooldowns)
            cooldown_source = f"role <@&{role}>"
        return MemberLimits(daily, cooldown, daily_source, cooldown_source)


def _int(key: str, raw: Any, low: int, high: int, *, why: str = "") -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or int(raw) != raw:
        raise SettingError(f"{LABELS[key]} must be a whole number, not {raw!r}.")
    value = int(raw)
    if not low <= value <= high:
        raise SettingError(f"{LABELS[key]} must be between {low:,} and {high:,}{why}; you gave {value:,}.")
    return value


def _ids(key: str, raw: Any) -> list[int]:
    if not isinstance(raw, list | tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
        raise SettingError(f"{LABELS[key]} must be a list of ids.")
    unique = list(dict.fromkeys(int(v) for v in raw))
    if len(unique) > MAX_LISTED:
        raise SettingError(f"{LABELS[key]}: at most {MAX_LISTED} may be listed.")
    return unique


def parse_size(text: str) -> tuple[int, int]:
    """``"512x768"`` as ``(512, 768)`` (:class:`SettingError` otherwise)."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise SettingError(f"{LABELS['default_size']} must look like 512x768, not {text!r}.")
    return int(match.group(1)), int(match.group(2))


def parse_value(
    key: str,
    raw: Any,
    config: ConfigDefaults,
    stored: Mapping[str, Any],
    *,
    styles: Collection[str],
    models: Callable[[], Sequence[str]],
) -> Any:
    """The value to store for ``key`` given ``raw`` (what the member typed), or :class:`SettingError`.

    ``stored`` is the server's other values (a default is checked against the server's maximum).
    ``styles`` are the known style names; ``models()`` the names of the models that can run.
    """
    limits = config.limits
    if key == "default_steps":
        high = int(stored.get("max_steps", limits.max_steps))
        return _int(key, raw, 1, high, why=" (the max steps here)")
    if key == "default_guidance":
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= limits.max_guidance:
            raise SettingError(f"{LABELS[key]} must be between 0 and {limits.max_guidance:g}; you gave {raw!r}.")
        return float(raw)
    if key == "default_size":
        if isinstance(raw, str):
            width, height = parse_size(raw)
        elif isinstance(raw, list | tuple) and len(raw) == 2 and all(type(side) is int for side in raw):
            width, height = raw
        else:
            raise SettingError(f"{LABELS[key]} must look like 512x768, not {raw!r}.")
        max_pixels = int(stored.get("max_pixels", limits.max_pixels))
        for side in (width, height):
            if side % 8 or not limits.min_size <= side <= limits.max_size:
                raise SettingError(
                    f"Each side of the {LABELS[key].lower()} must be a multiple of 8 between "
                    f"{limits.min_size} and {limits.max_size}; you gave {width}x{height}."
                )
        if width * height > max_pixels:
            raise SettingError(
                f"{width}x{height} is {width * height:,} pixels; the limit here is {max_pixels:,}."
            )
        return [width, height]
    if key == "default_count":
        return _int(key, raw, 1, limits.max_count)
    if key == "default_style":
        name = str(raw).strip().lower()
        if name not in {s.lower() for s in styles}:
            raise SettingError(f"`{raw}` is not a style I know. Styles: {', '.join(sorted(styles)) or 'none'}.")
        return name
    if key == "default_model":
        known = list(models())
        if str(raw) not in known:
            raise SettingError(f"`{raw}` is not a model I run. Models: {', '.join(known) or 'none'}.")
        return str(raw)
    if key == "max_steps":
        return _int(key, raw, 1, limits.max_steps, why=" (the config's limit)")
    if key == "max_pixels":
        smallest = limits.min_size * limits.min_size
        return _int(key, raw, smallest, limits.max_pixels, why=" (the config's limit)")
    if key == "max_pending_per_member":
        return _int(key, raw, 1, config.max_pending_per_member, why=" (the config's limit)")
    if key == "cooldown_s":
        return _int(key, raw, 0, MAX_COOLDOWN_S)
    if key == "daily_images":
        return _int(key, raw, 0, MAX_DAILY_IMAGES)
    if key in ACCESS_KEYS:
        return _ids(key, raw)
    if key == "nsfw_action":
        if raw not in NSFW_ACTIONS:
            raise SettingError(f"{LABELS[key]} must be one of {', '.join(NSFW_ACTIONS)}; you gave {raw!r}.")
        return raw
    if key == "age_restricted_action":
        if raw not in AGE_RESTRICTED_ACTIONS:
            raise SettingError(
                f"{LABELS[key]} must be one of {', '.join(AGE_RESTRICTED_ACTIONS)}; you gave {raw!r}."
            )
        return raw
    if key == "kid_friendly":
        if not isinstance(raw, bool):
            raise SettingError(f"{LABELS[key]} must be true or false, not {raw!r}.")
        return raw
    if key == ROLE_LIMITS_KEY:
        if not isinstance(raw, Mapping):
            raise SettingError("Role limits must map role ids to limits.")
        parsed: dict[str, dict[str, int]] = {}
        for role, limit in raw.items():
            if not isinstance(limit, Mapping) or set(limit) - {"daily_images", "cooldown_s"}:
                raise SettingError("A role limit has daily_images and cooldown_s only.")
            checked = RoleLimit(
                daily_images=None if limit.get("daily_images") is None
                else _int("daily_images", limit["daily_images"], 0, MAX_DAILY_IMAGES),
                cooldown_s=None if limit.get("cooldown_s") is None
                else _int("cooldown_s", limit["cooldown_s"], 0, MAX_COOLDOWN_S),
            )
            if checked.to_json():
                parsed[str(int(role))] = checked.to_json()
        if len(parsed) > MAX_LISTED:
            raise SettingError(f"At most {MAX_LISTED} roles may have their own limits.")
        return parsed
    raise SettingError(f"`{key}` is not a setting; the settings are {', '.join(KEYS)}.")


def effective(config: ConfigDefaults, stored: Mapping[str, Any]) -> ServerSettings:
    """The config's values with a server's stored ones over them (unknown keys are ignored).

    Stored values were checked when set; a default above a maximum set later is lowered to it.
    """
    sources: dict[str, Source] = {key: ("server" if key in stored else "config") for key in KEYS}
    base = config.limits
    max_steps = min(int(stored.get("max_steps", base.max_steps)), base.max_steps)
    max_pixels = min(int(stored.get("max_pixels", base.max_pixels)), base.max_pixels)
    limits = dataclasses.replace(
        base,
        max_steps=max_steps,
        max_pixels=max_pixels,
        default_steps=min(int(stored.get("default_steps", base.default_steps)), max_steps),
        default_guidance=min(float(stored.get("default_guidance", base.default_guidance)), base.max_guidance),
        default_count=min(int(stored.get("default_count", base.default_count)), base.max_count),
    )
    size = stored.get("default_size")
    default_size = (int(size[0]), int(size[1])) if size else None
    if default_size is not None and default_size[0] * default_size[1] > max_pixels:
        default_size = None
        sources["default_size"] = "config"
    default_style = stored.get("default_style")
    if default_style is not None and config.styles and default_style not in config.styles:
        default_style = None  # removed from the config since: no default style
        sources["default_style"] = "config"
    kid_friendly = bool(stored.get("kid_friendly", False))
    safety = config.safety
    safety = dataclasses.replace(
        safety,
        nsfw_action=str(stored.get("nsfw_action", safety.nsfw_action)),
        age_restricted_action=str(stored.get("age_restricted_action", safety.age_restricted_action)),
    )
    if kid_friendly:
        # Flagged images are withheld everywhere; the extra words are refused in prompts.
        safety = dataclasses.replace(safety, nsfw_action="withhold", age_restricted_action="withhold")
        sources["nsfw_action"] = sources["age_restricted_action"] = "server"
    role_limits = {
        int(role): RoleLimit(limit.get("daily_images"), limit.get("cooldown_s"))
        for role, limit in dict(stored.get(ROLE_LIMITS_KEY, {})).items()
    }
    return ServerSettings(
        limits=limits,
        default_size=default_size,
        default_style=default_style,
        default_model=str(stored.get("default_model", config.model)),
        max_pending_per_member=min(
            int(stored.get("max_pending_per_member", config.max_pending_per_member)), config.max_pending_per_member
        ),
        cooldown_s=int(stored.get("cooldown_s", 0)),
        daily_images=int(stored.get("daily_images", 0)),
        role_limits=role_limits,
        channel_ids=tuple(int(c) for c in stored.get("channels", ())),
        role_ids=tuple(int(r) for r in stored.get("roles", ())),
        safety=safety,
        kid_friendly=kid_friendly,
        sources=sources,
    )


# -- the checks a job passes before it starts ------------------------------------------------------


def access_refusal(
    settings: ServerSettings,
    *,
    channel_ids: Iterable[int],
    role_ids: Iterable[int] | None,
) -> str | None:
    """Why a member may not draw here, or None.

    ``channel_ids`` are the channel and, for a thread, its parent (either may be listed).
    ``role_ids`` None: not a member's request (the studio's); the role rule does not apply.
    """
    if settings.channel_ids and not set(channel_ids) & set(settings.channel_ids):
        listed = ", ".join(f"<#{channel}>" for channel in settings.channel_ids[:10])
        more = "" if len(settings.channel_ids) <= 10 else f" and {len(settings.channel_ids) - 10} more"
        return f"This server only allows drawing in {listed}{more}."
    if settings.role_ids and role_ids is not None and not set(role_ids) & set(settings.role_ids):
        listed = ", ".join(f"<@&{role}>" for role in settings.role_ids[:10])
        return f"This server only lets members with these roles draw: {listed}."
    return None


def kid_friendly_refusal(settings: ServerSettings, prompt: str) -> str | None:
    """Why a kid-friendly server refuses this prompt, or None."""
    if not settings.kid_friendly:
        return None
    word = kid_friendly_words().blocked_word_in(prompt)
    if word is None:
        return None
    return f"This server is kid-friendly: your prompt contains `{word}`, which it doesn't allow."


@functools.cache
def kid_friendly_words() -> SafetyPolicy:
    """The kid-friendly word list as a policy (matched like ``[safety] blocked_words``)."""
    return SafetyPolicy(blocked_words=KID_FRIENDLY_WORDS)


def describe_duration(seconds: float) -> str:
    """``"40 s"``, ``"12 min"``, ``"3 h"`` (rounded up, so "try again in" is never too early)."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{math.ceil(seconds / 60)} min"
    return f"{math.ceil(seconds / 3600)} h"


@dataclass(frozen=True)
class Usage:
    """A member's recent jobs in one server: when each was asked for and how many images it makes."""

    #: ``(created_at, images)`` of the jobs that count toward the quota (not failed or cancelled), oldest first.
    counted: Sequence[tuple[float, int]]
    #: When the member's latest job in this server was asked for (any outcome), or None.
    last_request_at: float | None


def _images(count: int) -> str:
    return f"{count} image{'s' if count != 1 else ''}"


def quota_refusal(limits: MemberLimits, usage: Usage, asking: int, now: float) -> str | None:
    """Why this job (``asking`` images) would pass the member's cooldown or daily quota, or None."""
    if limits.cooldown_s and usage.last_request_at is not None:
        wait = usage.last_request_at + limits.cooldown_s - now
        if wait > 0:
            return (
                f"This server has a {describe_duration(limits.cooldown_s)} cooldown between requests; "
                f"try again in {describe_duration(wait)}."
            )
    if limits.daily_images:
        daily = limits.daily_images
        if asking > daily:
            return f"You can make {_images(daily)} a day here; ask for {daily} or fewer."
        window = [(at, images) for at, images in usage.counted if at > now - DAY_S]
        used = sum(images for _, images in window)
        if used + asking > daily:
            to_free, freed, retry_at = used + asking - daily, 0, now + DAY_S
            for at, images in sorted(window):
                freed += images
                if freed >= to_free:
                    retry_at = at + DAY_S
                    break
            return f"You can make {_images(daily)} a day here; try again in {describe_duration(retry_at - now)}."
    return None
