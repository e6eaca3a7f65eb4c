"""Several models through the real bot and the emulator: the `model` and `sampler` options, `--model`, /models,
and a model that fails to load telling its requester why while the default model goes on serving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from generation.engine import DiffusionEngine
from playground import DiscordEmulator
from tests.harness import next_result, results, rows, settings_for, start_bot


def job_rows(db: Path) -> list[tuple[str, str, str | None]]:
    return rows(db, "SELECT status, request_json, error FROM jobs ORDER BY id")


async def test_members_pick_models_and_samplers_and_a_broken_model_fails_alone(
    emulator: DiscordEmulator, tiny_model_dir: Path, tiny_sdxl_model_dir: Path, broken_model_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "bot.sqlite3"
    settings = settings_for(
        emulator, tmp_path,
        model={"id": str(tiny_model_dir)},
        models={
            "xl": {"id": str(tiny_sdxl_model_dir), "display_name": "Tiny XL", "steps": 2, "scheduler": "euler a",
                   "negative_prompt": "blurry"},
            "broken": {"id": str(broken_model_dir)},
        },
        generation={"default_count": 1},
        queue={"preview_interval_s": 0},
    )
    engine = DiffusionEngine(str(tiny_model_dir), device="cpu", dtype="float32", models=settings.model_specs())
    engine.load()
    bot = await start_bot(emulator, engine, settings)
    try:
        ada = emulator.add_member("ada")
        # Autocomplete offers every configured model; typing narrows it.
        offered = await emulator.autocomplete("imagine", {"prompt": "x", "model": ""}, "model", user_id=ada)
        assert [c["value"] for c in offered] == ["tiny-sd", "xl", "broken"]
        assert "xl: Tiny XL" in [c["name"] for c in offered]
        typed = await emulator.autocomplete("imagine", {"prompt": "x", "model": "x"}, "model", user_id=ada)
        assert [c["value"] for c in typed] == ["xl"]

        # The same prompt and seed on each model: different pixels, each model's defaults.
        await emulator.send_slash_command("imagine", {"prompt": "a lighthouse", "seed": 5}, user_id=ada)
        default_result = await next_result(emulator, 0)
        await emulator.send_slash_command("imagine", {"prompt": "a lighthouse", "seed": 5, "model": "xl"}, user_id=ada)
        xl_result = await next_result(emulator, 1)
        first, second = (np.asarray(m.attachments[0].image().convert("RGB"), dtype=np.int16)
                         for m in (default_result, xl_result))
        assert np.abs(first - second).mean() > 5
        fields = {f["name"]: f["value"] for f in xl_result.embeds[0].get("fields", [])}
        assert fields.get("Model") == "Tiny XL"
        requests = [json.loads(text) for _, text, _ in job_rows(db)]
        assert requests[0]["model"] is None and requests[0]["scheduler"] is None
        assert requests[1]["model"] == "xl"
        assert (requests[1]["steps"], requests[1]["scheduler"], requests[1]["negative_prompt"]) == (
            2, "Euler a", "blurry"
        )

        # A sampler by its name, and the model by flag.
        await emulator.send_slash_command(
            "imagine", {"prompt": "a fox --model XL", "sampler": "DPM++ 2M Karras", "steps": 3}, user_id=ada
        )
        await next_result(emulator, 2)
        last = json.loads(job_rows(db)[-1][1])
        assert (last["model"], last["scheduler"], last["steps"]) == ("xl", "DPM++ 2M Karras", 3)

        # A model that can't load: its job fails with the reason; the default model goes on serving.
        failing = await emulator.send_slash_command("imagine", {"prompt": "a cat --model broken"}, user_id=ada)
        status = await emulator.wait_for(lambda: failing.original, 10)
        await emulator.wait_for(lambda: "could not be loaded" in status.content, 60)
        assert "`broken`" in status.content and "damaged" in status.content
        assert str(broken_model_dir) not in status.content  # no paths for members
        assert job_rows(db)[-1][0] == "failed" and "models.broken.id" in (job_rows(db)[-1][2] or "")
        await emulator.send_slash_command("imagine", {"prompt": "a lighthouse", "seed": 5}, user_id=ada)
        again = await next_result(emulator, 3)
        assert np.array_equal(np.asarray(again.attachments[0].image().convert("RGB"), dtype=np.int16), first)
        assert len(results(emulator)) == 4

        # /models: each model, its family, where it is loaded, its defaults, the failed load.
        listing = await emulator.send_slash_command("models", {}, user_id=ada)
        answer = await emulator.wait_for(lambda: listing.original, 10)
        assert answer.ephemeral
        shown: dict[str, Any] = {f["name"]: f["value"] for f in answer.embeds[0]["fields"]}
        assert list(shown) == ["tiny-sd (default)", "xl", "broken"]
        assert "Family: SD1" in shown["tiny-sd (default)"] and "loaded on cpu" in shown["tiny-sd (default)"]
        assert "Tiny XL" in shown["xl"] and "Family: SDXL" in shown["xl"] and "not loaded" in shown["xl"]
        assert "2 steps" in shown["xl"] and "Euler a" in shown["xl"] and "64x64" in shown["xl"]
        assert "last load failed" in shown["broken"]

        # Unknown names are refused before anything is queued, listing what there is.
        wrong = await emulator.send_slash_command("imagine", {"prompt": "a cat", "model": "dalle"}, user_id=ada)
        refusal = await emulator.wait_for(lambda: wrong.original, 10)
        assert refusal.ephemeral and "Models: tiny-sd, xl, broken" in refusal.content
        assert len(job_rows(db)) == 5
    finally:
        await bot.stop()
