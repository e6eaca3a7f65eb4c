"""rules.server_settings: checking a server's values, merging them over the config, and the job checks."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, get_args

import pytest

from bot.cogs.admin._cog import ResetChoice
from rules.request import GenerationLimits
from rules.safety import SafetyPolicy
from rules.server_settings import (
    DAY_S,
    KEYS,
    ConfigDefaults,
    MemberLimits,
    SettingError,
    Usage,
    access_refusal,
    describe_duration,
    effective,
    kid_friendly_refusal,
    parse_value,
    quota_refusal,
)

CONFIG = ConfigDefaults(
    limits=GenerationLimits(default_steps=30, max_steps=50, max_pixels=512 * 512),
    safety=SafetyPolicy(nsfw_action="withhold", age_restricted_action="allow"),
    max_pending_per_member=5,
    native_size=512,
    model="tiny-sd",
)
STYLES = ("comic", "ink")


def parse(key: str, raw: Any, stored: dict[str, Any] | None = None) -> Any:
    return parse_value(key, raw, CONFIG, stored or {}, styles=STYLES, models=lambda: ("tiny-sd",))


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("default_steps", 51, "between 1 and 50"),
        ("default_steps", 2.5, "whole number"),
        ("default_steps", True, "whole number"),
        ("default_guidance", 31.0, "between 0 and 30"),
        ("default_size", "65x64", "multiple of 8"),
        ("default_size", "big", "look like 512x768"),
        ("default_size", "1024x1024", "the limit here is 262,144"),
        ("default_count", 5, "between 1 and 4"),
        ("default_style", "oil", "not a style I know"),
        ("default_model", "sdxl", "not a model I run. Models: tiny-sd"),
        ("max_steps", 51, "between 1 and 50 (the config's limit)"),
        ("max_pixels", 10, "between 4,096 and 262,144"),
        ("max_pending_per_member", 6, "between 1 and 5"),
        ("cooldown_s", -1, "between 0 and 86,400"),
        ("daily_images", 10_001, "between 0 and 10,000"),
        ("channels", ["general"], "list of ids"),
        ("nsfw_action", "allow", "withhold, spoiler"),
        ("age_restricted_action", "show", "allow, withhold, spoiler"),
        ("kid_friendly", "yes", "true or false"),
        ("role_limits", {"1": {"quota": 3}}, "daily_images and cooldown_s only"),
        ("colour", 1, "is not a setting"),
    ],
)
def test_bad_values_are_refused_saying_what_to_change(key: str, raw: Any, message: str) -> None:
    with pytest.raises(SettingError, match=re.escape(message)):
        parse(key, raw)


def test_a_default_is_checked_against_the_servers_own_maximum() -> None:
    with pytest.raises(SettingError, match="between 1 and 20 \\(the max steps here\\)"):
        parse("default_steps", 21, {"max_steps": 20})
    with pytest.raises(SettingError, match="the limit here is 4,096"):
        parse("default_size", "128x64", {"max_pixels": 4096})


def test_good_values_are_stored_normalised() -> None:
    assert parse("default_size", " 256 x 384 ") == [256, 384]
    assert parse("default_style", "INK") == "ink"
    assert parse("default_guidance", 6) == 6.0
    assert parse("channels", [3, 1, 3]) == [3, 1]
    assert parse("role_limits", {7: {"daily_images": 9}, 8: {}}) == {"7": {"daily_images": 9}}


def test_every_key_can_be_reset() -> None:
    assert set(get_args(ResetChoice)) == {"everything", *KEYS}


def test_the_merge_says_where_each_value_comes_from() -> None:
    plain = effective(CONFIG, {})
    assert plain.limits == CONFIG.limits and plain.safety == CONFIG.safety
    assert set(plain.sources.values()) == {"config"}
    server = effective(CONFIG, {"max_steps": 20, "default_count": 1, "default_size": [256, 256], "cooldown_s": 30})
    assert (server.limits.max_steps, server.limits.default_steps, server.limits.default_count) == (20, 20, 1)
    assert server.default_size == (256, 256) and server.cooldown_s == 30
    assert server.sources["max_steps"] == "server" and server.sources["default_steps"] == "config"
    assert server.default_model == "tiny-sd"


def test_a_server_can_only_tighten_the_config() -> None:
    # Values stored before the config was lowered are held under the config's new limits.
    server = effective(CONFIG, {"max_steps": 80, "max_pixels": 1024 * 1024, "max_pending_per_member": 9})
    assert (server.limits.max_steps, server.limits.max_pixels, server.max_pending_per_member) == (50, 512 * 512, 5)


def test_a_default_size_over_a_later_max_pixels_falls_back_to_the_config() -> None:
    server = effective(CONFIG, {"default_size": [512, 512], "max_pixels": 4096})
    assert server.default_size is None and server.sources["default_size"] == "config"


def test_nsfw_policy_and_kid_friendly() -> None:
    spoiler = effective(CONFIG, {"nsfw_action": "spoiler"})
    assert spoiler.safety.decide(True, age_restricted_channel=False) == "spoiler"
    assert spoiler.safety.decide(True, age_restricted_channel=True) == "post"
    kid = effective(CONFIG, {"kid_friendly": True, "nsfw_action": "spoiler"})
    assert kid.safety.decide(True, age_restricted_channel=True) == "withhold"
    assert kid.safety.decide(True, age_restricted_channel=False) == "withhold"
    assert kid.sources["age_restricted_action"] == "server"
    assert kid_friendly_refusal(kid, "a NUDE statue") is not None
    assert "`gore`" in (kid_friendly_refusal(kid, "g0re everywhere") or "")
    assert kid_friendly_refusal(kid, "a bloodhound") is None  # whole words only
    assert kid_friendly_refusal(spoiler, "a nude statue") is None


def test_channel_and_role_rules() -> None:
    open_server = effective(CONFIG, {})
    assert access_refusal(open_server, channel_ids=[1], role_ids=[]) is None
    server = effective(CONFIG, {"channels": [10, 11], "roles": [7]})
    assert access_refusal(server, channel_ids=[12], role_ids=[7]) == "This server only allows drawing in <#10>, <#11>."
    assert access_refusal(server, channel_ids=[99, 10], role_ids=[7]) is None  # a thread of #10
    assert "<@&7>" in (access_refusal(server, channel_ids=[10], role_ids=[1, 2]) or "")
    assert access_refusal(server, channel_ids=[10], role_ids=None) is None  # the studio's jobs: no roles


def test_role_limits_give_the_most_generous_of_a_members_roles() -> None:
    server = effective(CONFIG, {
        "daily_images": 10, "cooldown_s": 60,
        "role_limits": {"1": {"daily_images": 20}, "2": {"daily_images": 0, "cooldown_s": 5}, "3": {"cooldown_s": 30}},
    })
    assert server.member_limits([]) == MemberLimits(10, 60, "server", "server")
    assert server.member_limits([1, 3]) == MemberLimits(20, 30, "role <@&1>", "role <@&3>")
    assert server.member_limits([1, 2]).daily_images == 0  # no limit beats 20
    assert server.member_limits([2, 3]).cooldown_s == 5


NOW = 1_000_000.0


def test_cooldown_names_the_rule_and_the_wait() -> None:
    limits = MemberLimits(daily_images=0, cooldown_s=600, daily_source="", cooldown_source="")
    usage = Usage(counted=[], last_request_at=NOW - 120)
    assert quota_refusal(limits, usage, 1, NOW) == (
        "This server has a 10 min cooldown between requests; try again in 8 min."
    )
    assert quota_refusal(limits, Usage([], NOW - 600), 1, NOW) is None
    assert quota_refusal(limits, Usage([], None), 1, NOW) is None


def test_daily_quota_counts_a_rolling_day_and_says_when_room_comes_back() -> None:
    limits = MemberLimits(daily_images=5, cooldown_s=0, daily_source="", cooldown_source="")
    counted = [(NOW - DAY_S - 10, 4), (NOW - 5 * 3600, 2), (NOW - 3600, 2)]  # the first is over a day old
    usage = Usage(counted, NOW - 3600)
    assert quota_refusal(limits, usage, 1, NOW) is None
    # 4 used + 2 asked = 6 > 5: the oldest 2 leave the window 19 h from now.
    assert quota_refusal(limits, usage, 2, NOW) == "You can make 5 images a day here; try again in 19 h."
    assert quota_refusal(limits, usage, 6, NOW) == "You can make 5 images a day here; ask for 5 or fewer."
    unlimited = dataclasses.replace(limits, daily_images=0)
    assert quota_refusal(unlimited, usage, 4, NOW) is None


@pytest.mark.parametrize(("seconds", "text"), [(0.2, "1 s"), (40, "40 s"), (89, "89 s"), (90, "2 min"),
                                               (3600, "60 min"), (5400, "2 h"), (3 * 3600 - 1, "3 h")])
def test_durations_round_up(seconds: float, text: str) -> None:
    assert describe_duration(seconds) == text


def test_a_default_style_removed_from_the_config_falls_back_to_none() -> None:
    config = dataclasses.replace(CONFIG, styles=frozenset({"comic"}))
    assert effective(config, {"default_style": "comic"}).default_style == "comic"
    gone = effective(config, {"default_style": "ink"})
    assert gone.default_style is None and gone.sources["default_style"] == "config"


@pytest.mark.parametrize("raw", [512, [512], ["512", "512"], None])
def test_a_default_size_must_be_two_whole_numbers(raw: Any) -> None:
    with pytest.raises(SettingError, match="look like 512x768"):
        parse("default_size", raw)
