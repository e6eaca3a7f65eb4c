"""The local Discord: a gateway and REST server the real, unmodified discord.py client runs against.

See :class:`DiscordEmulator`; the records it keeps are :class:`EmuMessage`, :class:`EmuAttachment`,
:class:`EmuInteraction` and :class:`RestRequest`. Discord's REST rate limits are opt-in
(:class:`RateLimits`); deliberate faults (429s, 5xx, missing permissions, broken attachments) are
armed on ``emu.faults`` (:mod:`playground.faults`), and ``emu.add_guild`` puts the bot in more guilds.
The browser page is :mod:`playground.web`, and ``run_bot.py --playground``
(:mod:`playground.app`) runs the whole bot against it.
"""

from .faults import Faults, RestFault
from .interactions import CommandUsageError
from .ratelimit import Limit, RateLimits
from .records import EmuAttachment, EmuInteraction, EmuMessage, RestRequest
from .server import DEFAULT_SPEC, DiscordEmulator
from .spec import SPEC_ENV_VAR

__all__ = [
    "DEFAULT_SPEC",
    "SPEC_ENV_VAR",
    "CommandUsageError",
    "DiscordEmulator",
    "EmuAttachment",
    "EmuInteraction",
    "EmuMessage",
    "Faults",
    "Limit",
    "RateLimits",
    "RestFault",
    "RestRequest",
]
