"""Characters' references and trained LoRAs in SQLite, the [training] config, and the rules that apply them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, parse_settings
from rules.characters import TRAINED_ROUTE, TrainedLook, apply_looks, mentioned
from rules.prompt_flags import FlagError, merge_options, parse_prompt
from rules.request import LoraUse
from rules.training import TrainingSpec, instance_prompt, rare_token
from storage import NotFound, Storage
from storage.characters import TooManyReferences
from storage.comics import CharacterRecord

GUILD = 9


async def character(storage: Storage, name: str = "Mira") -> CharacterRecord:
    comic = await storage.comics.create(
        owner_id=1, guild_id=GUILD, channel_id=5, title="Day", style=None, layout="auto", seed=1
    )
    record, _ = await storage.comics.set_character(comic.id, name, "a girl in a raincoat", max_characters=5)
    return record


async def test_references_are_ordered_deduplicated_and_capped(storage: Storage) -> None:
    mira = await character(storage)
    first, created = await storage.characters.add_reference(mira.id, "aa/a.png", "a" * 64, max_references=2)
    again, created_again = await storage.characters.add_reference(mira.id, "aa/a.png", "a" * 64, max_references=2)
    assert created and not created_again and again == first and first.position == 1
    second, _ = await storage.characters.add_reference(mira.id, "bb/b.png", "b" * 64, max_references=2)
    assert second.position == 2
    with pytest.raises(TooManyReferences, match="the most is 2"):
        await storage.characters.add_reference(mira.id, "cc/c.png", "c" * 64, max_references=2)
    assert [r.file for r in await storage.characters.references(mira.id)] == ["aa/a.png", "bb/b.png"]
    assert list(await storage.characters.references_of([mira.id, 999])) == [mira.id]


async def test_a_trained_lora_and_its_weight_survive_a_restart(tmp_path: Path) -> None:
    db, images = tmp_path / "bot.sqlite3", tmp_path / "images"
    storage = await Storage.open(db, images)
    mira = await character(storage)
    assert await storage.characters.lora(mira.id) is None
    assert await storage.characters.weight(mira.id) == 1.0
    await storage.characters.set_lora(mira.id, path="/x/old.safetensors", token="zwoq character", steps=10, job_id=None)
    await storage.characters.set_lora(mira.id, path="/x/new.safetensors", token="zwoq character", steps=20, job_id=None)
    await storage.characters.set_weight(mira.id, 0.7)
    await storage.close()

    storage = await Storage.open(db, images)
    try:
        lora = await storage.characters.lora(mira.id)
        assert lora is not None and lora.path == "/x/new.safetensors" and lora.steps == 20
        [trained] = await storage.characters.trained(mira.comic_id)
        assert (trained.name, trained.weight, trained.lora.token) == ("Mira", 0.7, "zwoq character")
        with pytest.raises(NotFound):
            await storage.characters.set_weight(999, 1.0)
        # Removing the character removes its references and LoRA row with it.
        await storage.characters.add_reference(mira.id, "aa/a.png", "a" * 64, max_references=2)
        await storage.comics.remove_character(mira.comic_id, "Mira")
        assert await storage.characters.lora(mira.id) is None
        assert await storage.characters.references(mira.id) == []
    finally:
        await storage.close()


def test_training_config_defaults_follow_the_dreambooth_lora_example_and_are_checked() -> None:
    training = parse_settings({"discord": {"token": "t"}}, env={}).training
    assert (training.rank, training.steps, training.learning_rate, training.batch_size) == (4, 500, 1e-4, 1)
    assert training.max_jobs_per_server == 1 and training.slice_steps == 50 and training.resolution == 0
    with pytest.raises(ConfigError) as error:
        parse_settings({"discord": {"token": "t"}, "training": {"steps": 3000}}, env={})
    assert "max_steps" in str(error.value)
    with pytest.raises(ConfigError, match=r"training\.resolution"):
        parse_settings({"discord": {"token": "t"}, "training": {"resolution": 100}}, env={})


def test_tokens_are_rare_made_up_words_one_per_character() -> None:
    tokens = {rare_token(character_id) for character_id in range(1, 200)}
    assert len(tokens) > 150 and all(len(token) == 4 and token.isalpha() for token in tokens)
    assert rare_token(7) == rare_token(7)
    assert instance_prompt("zwoq", "character") == "a photo of zwoq character"


def test_a_training_spec_round_trips_through_json_values() -> None:
    spec = TrainingSpec(character="Mira", token="zwoq", references=("/a.png", "/b.png"), lora_path="/l.safetensors",
                        checkpoint_dir="/c", steps=12)
    assert TrainingSpec.from_dict({**spec.to_dict(), "unknown": 1}) == spec


def test_two_trained_characters_in_one_prompt_apply_both() -> None:
    descriptions = {"Mira": "a girl in a raincoat", "Ben": "a tall man", "Ana": "a cat"}
    trained = {"Mira": TrainedLook("Mira", "zwoq character", "/m.safetensors", 0.8),
               "Ben": TrainedLook("Ben", "kdaf character", "/b.safetensors", 1.0)}
    prompt, loras, routes = apply_looks("Ben and mira at the beach", descriptions, trained)
    assert prompt == "Ben (kdaf character, a tall man) and mira (zwoq character, a girl in a raincoat) at the beach"
    assert loras == (LoraUse("Ben", "/b.safetensors", 1.0), LoraUse("Mira", "/m.safetensors", 0.8))
    assert routes == [["Ben", TRAINED_ROUTE], ["Mira", TRAINED_ROUTE]]
    assert apply_looks("Ana sleeps", descriptions, trained)[1:] == ((), [])
    assert mentioned("Anna Lee and Anna", ["Anna", "Anna Lee"]) == ["Anna Lee", "Anna"]


def test_cref_flag_names_characters_by_commas() -> None:
    parsed = parse_prompt("a portrait --cref Mira, Anna Lee --seed 3")
    assert parsed.flags["cref"] == ("Mira", "Anna Lee")
    assert merge_options(parsed, {})["cref"] == ("Mira", "Anna Lee")
    with pytest.raises(FlagError, match="--cref"):
        parse_prompt("a portrait --cref Mira,, Ben")
