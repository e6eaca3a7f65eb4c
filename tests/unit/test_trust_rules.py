"""Pure rules behind the members' trust fixes: slot reservation, source fitting, prompt quoting."""

from __future__ import annotations

from typing import Any

import pytest

from bot.embeds import quote_prompt
from generation.errors import QueueFull
from generation.queue import JobQueue
from rules.request import GenerationLimits, fit_source


def test_reserved_slots_count_against_the_member_and_the_server(engine: Any) -> None:
    queue = JobQueue([engine], max_pending_per_user=3, max_pending_total=10, max_pending_per_guild=4)
    for _ in range(3):
        queue.reserve(1, 100)
    with pytest.raises(QueueFull, match="the limit is 3"):
        queue.reserve(1, 100)
    queue.reserve(2, 100)
    with pytest.raises(QueueFull, match="This server already has 4 jobs"):
        queue.reserve(3, 100)
    queue.reserve(3, 200)  # another server has its own share
    queue.unreserve(1, 100)
    queue.reserve(3, 100)
    with pytest.raises(QueueFull):
        queue.check_capacity(4, 100)
    queue.check_capacity(4, None)  # a DM counts toward no server's share


@pytest.mark.parametrize(
    ("size", "limits", "expected"),
    [
        ((2048, 2048), GenerationLimits(), (1024, 1024)),
        ((128, 128), GenerationLimits(max_pixels=64 * 64), (64, 64)),
        ((4096, 1024), GenerationLimits(), (2048, 512)),
        ((512, 512), GenerationLimits(), (512, 512)),
        ((3000, 1000), GenerationLimits(max_pixels=512 * 512), (880, 288)),
    ],
)
def test_fit_source_keeps_the_aspect_within_the_limits(
    size: tuple[int, int], limits: GenerationLimits, expected: tuple[int, int]
) -> None:
    width, height = fit_source(*size, limits)
    assert (width, height) == expected
    assert width % 8 == 0 and height % 8 == 0
    assert width * height <= limits.max_pixels
    assert limits.min_size <= min(width, height) and max(width, height) <= limits.max_size


def test_quote_prompt_breaks_masked_links_markdown_and_mentions() -> None:
    quoted = quote_prompt("[free nitro](https://evil.example) **now** <@123> _x_", 200)
    assert "](" not in quoted and "**now**" not in quoted and "<@123>" not in quoted and "_x_" not in quoted
    assert "free nitro" in quoted and "evil.example" in quoted
    assert quote_prompt("a lighthouse at dusk", 200) == "a lighthouse at dusk"
