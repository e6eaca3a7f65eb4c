"""The emoji the bot puts on buttons and reactions, and reads back from members' reactions."""

from __future__ import annotations

from typing import Final

#: Re-roll: the same request with a new seed.
REROLL: Final = "🔄"
#: Upscale one image.
UPSCALE: Final = "🔍"
#: A variation of one image.
VARY: Final = "🎨"
#: Cancel a job (on its status message), delete a result (on the result).
CANCEL: Final = "❌"
#: Every parameter of an image.
INFO: Final = "ℹ️"
#: The delete button on a result.
TRASH: Final = "🗑️"
#: Add an image to the member's active comic.
ADD_TO_COMIC: Final = "📖"
#: Add as reference: a result's image becomes a reference picture of a comic character.
REFERENCE: Final = "🖼️"
#: 1️⃣-4️⃣ on a grid (up to 6️⃣ on a storyboard's): upscale that image.
NUMBERS: Final[tuple[str, ...]] = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣")
#: The reactions the bot puts on a single-image result, so members can click them.
RESULT_REACTIONS: Final[tuple[str, ...]] = (REROLL, UPSCALE, VARY)
