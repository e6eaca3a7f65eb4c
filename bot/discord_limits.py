"""Discord's limits on what a bot posts: text lengths, files per message, upload sizes."""

from __future__ import annotations

from typing import Final

#: A message's content.
CONTENT_MAX: Final = 2000
EMBED_TITLE_MAX: Final = 256
EMBED_DESCRIPTION_MAX: Final = 4096
EMBED_FIELD_MAX: Final = 1024
#: Attachments on one message.
MAX_FILES_PER_MESSAGE: Final = 10
#: The upload limit where nothing better is known (an unboosted server).
DEFAULT_UPLOAD_LIMIT: Final = 10 * 1024 * 1024
#: Bytes kept free under an upload limit for the rest of the multipart body (JSON payload, boundaries).
UPLOAD_HEADROOM: Final = 16 * 1024
