"""The playground's rate limits: fixed windows per route and major parameter, and a global limit."""

from __future__ import annotations

from playground import Limit, RateLimits

MESSAGES = "/channels/{channel_id}/messages"
CALLBACK = "/interactions/{interaction_id}/{interaction_token}/callback"
FOLLOWUP = "/webhooks/{webhook_id}/{webhook_token}"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_route_bucket_per_channel_resets_after_its_window() -> None:
    clock = Clock()
    limits = RateLimits(default=Limit(2, 5.0), clock=clock)
    first = limits.hit("POST", MESSAGES, {"channel_id": "1"})
    assert first.retry_after is None and first.headers["X-RateLimit-Remaining"] == "1"
    assert limits.hit("POST", MESSAGES, {"channel_id": "1"}).headers["X-RateLimit-Remaining"] == "0"
    refused = limits.hit("POST", MESSAGES, {"channel_id": "1"})
    assert refused.retry_after == 5.0 and not refused.is_global
    assert limits.hit("POST", MESSAGES, {"channel_id": "2"}).retry_after is None  # another channel, another bucket
    clock.now += 5.0
    assert limits.hit("POST", MESSAGES, {"channel_id": "1"}).retry_after is None


def test_global_limit_spares_interaction_callbacks_and_webhooks() -> None:
    clock = Clock()
    limits = RateLimits(default=Limit(100, 1.0), global_limit=Limit(3, 1.0), clock=clock)
    for channel in range(3):
        assert limits.hit("POST", MESSAGES, {"channel_id": str(channel)}).retry_after is None
    over = limits.hit("POST", MESSAGES, {"channel_id": "9"})
    assert over.is_global and over.headers["X-RateLimit-Global"] == "true"
    assert limits.hit("POST", CALLBACK, {"interaction_id": "1", "interaction_token": "t"}).retry_after is None
    assert limits.hit("POST", FOLLOWUP, {"webhook_id": "1", "webhook_token": "t"}).retry_after is None
    clock.now += 1.0
    assert limits.hit("POST", MESSAGES, {"channel_id": "9"}).retry_after is None


def test_reactions_are_one_per_quarter_second() -> None:
    clock = Clock()
    limits = RateLimits(clock=clock)
    route = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me"
    params = {"channel_id": "1", "message_id": "2", "emoji_name": "x"}
    assert limits.hit("PUT", route, params).retry_after is None
    assert limits.hit("PUT", route, params).retry_after == 0.25
    clock.now += 0.25
    assert limits.hit("PUT", route, params).retry_after is None
