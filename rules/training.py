"""What a character training job is: its spec (stored in the job's request), its rare token and prompt.

Plain Python, shared by the bot (which builds a training job) and ``generation.training`` (which
runs it). A trained character is drawn by its rare token, a made-up word the text encoder has
no meaning for, bound to the character by training (DreamBooth's "sks"): each character gets its
own, so two trained characters in one panel do not blur into one.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

#: Where a job's training spec rides in its request (``GenerationRequest.extra``).
TRAINING_KEY = "training"
#: The kind of a training job's row (``jobs.kind``) and the queue's name for its work.
TRAIN_KIND = "train"

_CONSONANTS = "bcdfghjklmnpqrstvwxz"
_VOWELS = "aeiouy"


def rare_token(character_id: int) -> str:
    """A short made-up word for a character, the same for the same id (``zwoq``-like)."""
    digest = hashlib.sha256(f"panelbot-character:{character_id}".encode()).digest()
    letters = [
        _CONSONANTS[digest[0] % len(_CONSONANTS)],
        _CONSONANTS[digest[1] % len(_CONSONANTS)],
        _VOWELS[digest[2] % len(_VOWELS)],
        _CONSONANTS[digest[3] % len(_CONSONANTS)],
    ]
    return "".join(letters)


def instance_prompt(token: str, class_word: str) -> str:
    """The prompt the references are trained under: ``a photo of <token> <class>``."""
    return f"a photo of {token} {class_word}".strip()


@dataclass(frozen=True)
class TrainingSpec:
    """Everything one training job needs; stored as JSON in its request so a restart can resume it."""

    character: str
    token: str
    references: tuple[str, ...]
    lora_path: str
    checkpoint_dir: str
    character_id: int = 0
    class_word: str = "character"
    steps: int = 500
    rank: int = 4
    learning_rate: float = 1e-4
    resolution: int = 512
    batch_size: int = 1
    slice_steps: int = 50
    checkpoint_every: int = 0
    train_text_encoder: bool = False
    seed: int = 0
    mixed_precision: str = "auto"
    gradient_checkpointing: str = "auto"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingSpec:
        """Read back :meth:`to_dict` (unknown keys ignored)."""
        names = set(cls.__dataclass_fields__)
        values = {key: value for key, value in data.items() if key in names}
        values["references"] = tuple(values.get("references", ()))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        data = asdict(self)
        data["references"] = list(self.references)
        return data
