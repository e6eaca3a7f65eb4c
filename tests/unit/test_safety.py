"""Blocked prompt words (whole words, punctuation, light leetspeak) and the NSFW posting policy."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from rules.safety import BlockedWords, SafetyPolicy

WORDS = BlockedWords(["ass", "nude", "gore", "Blood Bath", "r34"])


@pytest.mark.parametrize(
    ("prompt", "hit"),
    [
        ("a NUDE statue", "nude"),
        ("nude, (masterpiece)", "nude"),
        ("[nude]!!!", "nude"),
        ("nudes on a beach", "nude"),
        ("n.u.d.e beach", "nude"),
        ("n u d e", "nude"),
        ("NÜDE", "nude"),
        ("nu\u200bde", "nude"),  # zero-width space
        ("a55 shot", "ass"),
        ("g0r3 everywhere", "gore"),
        ("a blood   bath", "Blood Bath"),
        ("BLOOD-BATH", "Blood Bath"),
        ("blood, bath", "Blood Bath"),  # punctuation between the words of a phrase
        ("r34 art", "r34"),
    ],
)
def test_blocked_words_are_found(prompt: str, hit: str) -> None:
    assert WORDS.find(prompt) == hit


@pytest.mark.parametrize(
    "prompt",
    [
        "a classic class photo",
        "assassin in the grass",
        "passage to the embassy",
        "gory details",  # a different word: list variants you want blocked
        "bloodbath",  # the phrase is two words
        "a 1girl portrait, 4k, 3d render",
        "1955 photo of 455 people",
        "blood moon over the bath house",
        "",
    ],
)
def test_no_false_hits_inside_words(prompt: str) -> None:
    assert WORDS.find(prompt) is None


def test_empty_list_and_bad_entries() -> None:
    assert BlockedWords([]).find("anything nude") is None
    assert len(WORDS) == 5
    with pytest.raises(ValueError, match="no letters"):
        BlockedWords(["!!!"])


@pytest.mark.parametrize(
    ("nsfw", "age", "expected"),
    [
        # flagged in an ordinary channel, flagged in an age-restricted one
        ("withhold", "allow", ("withhold", "post")),
        ("withhold", "spoiler", ("withhold", "spoiler")),
        ("spoiler", "withhold", ("spoiler", "withhold")),
        ("spoiler", "allow", ("spoiler", "post")),
    ],
)
def test_policy_decide(nsfw: str, age: str, expected: tuple[str, str]) -> None:
    policy = SafetyPolicy(nsfw_action=nsfw, age_restricted_action=age)
    assert (policy.decide(True, False), policy.decide(True, True)) == expected
    assert policy.decide(False, False) == policy.decide(False, True) == "post"


def test_policy_defaults_validation_and_words() -> None:
    policy = SafetyPolicy()
    assert (policy.nsfw_action, policy.age_restricted_action) == ("withhold", "spoiler")
    assert policy.blocked_word_in("nude") is None
    strict = SafetyPolicy(blocked_words=("nude",))
    assert strict.blocked_word_in("Nude figure") == "nude"
    with pytest.raises(dataclasses.FrozenInstanceError):
        strict.nsfw_action = "spoiler"  # type: ignore[misc]
    # Each error names its field in pydantic's error location, which the config loader reports.
    for bad, field, message in [
        ({"nsfw_action": "allow"}, "nsfw_action", "must be one of withhold, spoiler, not 'allow'"),
        ({"age_restricted_action": "maybe"}, "age_restricted_action", "must be one of allow, withhold, spoiler"),
        ({"blocked_words": ("ok", "...")}, "blocked_words", "contains '...', which has no letters or digits"),
        ({"checker": "not a path"}, "checker", "must be auto, off or package.module:function"),
    ]:
        with pytest.raises(ValidationError) as caught:
            SafetyPolicy(**bad)
        (error,) = caught.value.errors()
        assert error["loc"] == (field,) and error["msg"].startswith(message)
