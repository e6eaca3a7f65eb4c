"""A safety checker for tests, configured like any operator's own checker.

``[safety] checker = "tests.safety_checkers:flag_keyword"``.

The tiny test model ships no safety checker; this one flags every image whose prompt contains
:data:`KEYWORD`, so tests can tell exactly which images must never be posted visibly.
"""

from __future__ import annotations

from PIL import Image

KEYWORD = "forbidden"


def flag_keyword(images: list[Image.Image], prompts: list[str]) -> list[bool]:
    """One verdict per image: flagged when its prompt contains the keyword."""
    return [KEYWORD in prompt.lower() for prompt in prompts]
