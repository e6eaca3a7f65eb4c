"""Style presets: the shipped ones, applying them, reading [styles.NAME] tables, autocomplete."""

from __future__ import annotations

import tomllib

import pytest

from rules.prompt_flags import parse_prompt
from rules.styles import (
    DEFAULT_STYLES,
    StyleConfigError,
    StylePreset,
    apply_style,
    match_styles,
    styles_from_config,
)

SHIPPED = {"comic", "manga", "watercolor", "photo", "pixel-art", "oil-painting", "anime"}


def test_shipped_presets_are_complete() -> None:
    assert set(DEFAULT_STYLES) == SHIPPED
    for name, preset in DEFAULT_STYLES.items():
        assert preset.name == name
        assert preset.prompt_prefix and preset.prompt_suffix and preset.negative_prompt and preset.description
        assert "watermark" in preset.negative_prompt
        # Every name works after --style.
        assert parse_prompt(f"x --style {name}", styles=DEFAULT_STYLES).flags == {"style": name}


def test_apply_style_wraps_prompt_and_appends_negative() -> None:
    preset = StylePreset("t", prompt_prefix="pixel art", prompt_suffix="16-bit", negative_prompt="blurry")
    assert apply_style("a knight", "", preset) == ("pixel art, a knight, 16-bit", "blurry")
    assert apply_style("a knight", "text, ", preset) == ("pixel art, a knight, 16-bit", "text, blurry")
    assert apply_style("a knight", "text", None) == ("a knight", "text")
    assert apply_style("a knight", "", StylePreset("bare")) == ("a knight", "")


def test_config_changes_one_key_of_a_shipped_preset_and_adds_new_ones() -> None:
    raw = tomllib.loads(
        """
        [styles.comic]
        steps = 25

        [styles.noir]
        prefix = "film noir still"
        suffix = "high contrast black and white"
        negative = "color"
        guidance = 8
        description = "1940s crime film"

        [styles.anime]
        enabled = false
        """
    )["styles"]
    styles = styles_from_config(raw)
    assert set(styles) == (SHIPPED - {"anime"}) | {"noir"}
    assert styles["comic"].steps == 25
    assert styles["comic"].prompt_prefix == DEFAULT_STYLES["comic"].prompt_prefix
    assert styles["noir"] == StylePreset(
        "noir", "film noir still", "high contrast black and white", "color", None, 8.0, "1940s crime film"
    )
    assert isinstance(styles["noir"].guidance, float)
    assert styles_from_config({}) == dict(DEFAULT_STYLES)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"comic": {"colour": "red"}}, "styles.comic.colour"),
        ({"comic": {"steps": "many"}}, "styles.comic.steps"),
        ({"comic": {"steps": 2.5}}, "styles.comic.steps"),
        ({"comic": {"steps": 0}}, "styles.comic.steps"),
        ({"comic": {"steps": True}}, "styles.comic.steps"),
        ({"comic": {"guidance": -1}}, "styles.comic.guidance"),
        ({"comic": {"prefix": 3}}, "styles.comic.prefix"),
        ({"comic": {"enabled": "no"}}, "styles.comic.enabled"),
        ({"Oil Paint": {}}, "styles.Oil Paint"),
        ({"noir": "dark"}, "styles.noir"),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(StyleConfigError) as caught:
        styles_from_config(raw)
    assert caught.value.key == key
    assert str(caught.value).startswith(key + ": ")
    assert isinstance(caught.value, ValueError)


def test_match_styles_prefix_first_then_substring() -> None:
    names = ["comic", "manga", "anime", "oil-painting", "pixel-art", "photo", "watercolor"]
    assert match_styles("", names) == sorted(names)
    assert match_styles("P", names) == ["photo", "pixel-art", "oil-painting"]
    assert match_styles("ART", names) == ["pixel-art"]
    assert match_styles("zzz", names) == []
    many = {f"style-{i:02d}": StylePreset(f"style-{i:02d}") for i in range(40)}
    assert match_styles("style", many) == [f"style-{i:02d}" for i in range(25)]
