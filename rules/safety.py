"""Prompt word filter and what to do with images the safety checker flags.

:class:`BlockedWords` matches whole words and phrases, case-insensitively, after normalising the
prompt: accents and invisible characters are dropped, punctuation and runs of spaces separate
words, light leetspeak is read as letters (``a55`` -> ``ass``, ``s3x`` -> ``sex``; a word made
only of digits is left alone), letters spelled out one by one are joined (``n u d e``,
``n.u.d.e``), and a plural ``s``/``es`` is ignored (``nudes`` hits ``nude``). Words are
never matched inside other words: ``class`` and ``assassin`` do not hit ``ass``.

:class:`SafetyPolicy` is the ``[safety]`` config section (plain ``str`` and ``tuple`` fields so
the generic config loader can read it).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import Final, Literal

from pydantic import ConfigDict, field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_core import PydanticCustomError

Decision = Literal["post", "spoiler", "withhold"]

NSFW_ACTIONS: Final[tuple[str, ...]] = ("withhold", "spoiler")
AGE_RESTRICTED_ACTIONS: Final[tuple[str, ...]] = ("allow", "withhold", "spoiler")

_LEET: Final = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
#: A word: letters and digits, plus the leet symbols ``@`` and ``$`` when inside or before letters.
_TOKEN_RE: Final = re.compile(r"[^\W_]+(?:[@$]+[^\W_]*)*|[@$]+[^\W_]+")


def _normalise(text: str) -> str:
    """Lower case without accents or invisible format characters (zero-width spaces...)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch) and unicodedata.category(ch) != "Cf")


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(_normalise(text))


def _forms(token: str) -> set[str]:
    """The spellings a prompt word may stand for: itself, its leet reading, each without a plural ending."""
    forms = {token}
    if any(ch.isalpha() for ch in token):
        forms.add(token.translate(_LEET))
    for form in list(forms):
        if len(form) > 3 and form.endswith("es"):
            forms.add(form[:-2])
        if len(form) > 3 and form.endswith("s"):
            forms.add(form[:-1])
    return forms


def _joined_letters(tokens: list[str]) -> list[tuple[int, int, str]]:
    """``(start, end, word)`` for each run of two or more one-character tokens: ``n u d e`` -> ``nude``."""
    runs: list[tuple[int, int, str]] = []
    start = 0
    while start < len(tokens):
        end = start
        while end < len(tokens) and len(tokens[end]) == 1:
            end += 1
        if end - start >= 2:
            runs.append((start, end, "".join(tokens[start:end])))
        start = max(end, start + 1)
    return runs


class BlockedWords:
    """A list of words and phrases no prompt may contain."""

    def __init__(self, words: Iterable[str]) -> None:
        self._entries: list[tuple[str, tuple[str, ...]]] = []
        for word in words:
            tokens = tuple(_tokens(word))
            if not tokens:
                raise ValueError(f"blocked word {word!r} has no letters or digits")
            self._entries.append((word.strip(), tokens))

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, prompt: str) -> str | None:
        """The first blocked word or phrase (as configured) that ``prompt`` contains, or ``None``."""
        if not self._entries:
            return None
        tokens = _tokens(prompt)
        forms = [_forms(token) for token in tokens]
        joined = {_form for _, _, word in _joined_letters(tokens) for _form in _forms(word)}
        for original, phrase in self._entries:
            if len(phrase) == 1 and phrase[0] in joined:
                return original
            last_start = len(tokens) - len(phrase)
            for start in range(last_start + 1):
                if all(part in forms[start + offset] for offset, part in enumerate(phrase)):
                    return original
        return None


#: ``checker``: ``auto``, ``off`` or ``package.module:function``.
_CHECKER_RE: Final = re.compile(r"auto|off|[^:]+:[^:]+")


def _rule_error(rule: str) -> PydanticCustomError:
    return PydanticCustomError("value_error", rule)


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class SafetyPolicy:
    """``[safety]``: blocked prompt words and what happens to images the safety checker flags.

    ``nsfw_action`` applies in ordinary channels: ``withhold`` (don't post; tell the requester) or
    ``spoiler`` (post behind a spoiler). ``age_restricted_action`` applies in age-restricted
    channels: ``allow`` (post normally), ``withhold`` or ``spoiler``. ``checker`` says which
    safety checker flags images: ``auto`` (the model's own, where it ships one), ``off``, or
    ``package.module:function``, a callable ``(images, prompts) -> flags`` the engine runs on each
    result in its worker thread. A bad value raises a pydantic ``ValidationError`` (a
    ``ValueError``) whose error ``loc`` names the field.
    """

    blocked_words: tuple[str, ...] = ()
    nsfw_action: str = "withhold"
    age_restricted_action: str = "spoiler"
    checker: str = "auto"

    @field_validator("blocked_words")
    @classmethod
    def _words_have_letters(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        for word in words:
            if not _tokens(word):
                raise _rule_error(f"contains {word!r}, which has no letters or digits")
        return words

    @field_validator("nsfw_action")
    @classmethod
    def _nsfw_action(cls, action: str) -> str:
        if action not in NSFW_ACTIONS:
            raise _rule_error(f"must be one of {', '.join(NSFW_ACTIONS)}, not {action!r}")
        return action

    @field_validator("age_restricted_action")
    @classmethod
    def _age_restricted_action(cls, action: str) -> str:
        if action not in AGE_RESTRICTED_ACTIONS:
            raise _rule_error(f"must be one of {', '.join(AGE_RESTRICTED_ACTIONS)}, not {action!r}")
        return action

    @field_validator("checker")
    @classmethod
    def _checker(cls, checker: str) -> str:
        if not _CHECKER_RE.fullmatch(checker):
            raise _rule_error(f"must be auto, off or package.module:function, not {checker!r}")
        return checker

    @functools.cached_property
    def blocked(self) -> BlockedWords:
        """The compiled word list."""
        return BlockedWords(self.blocked_words)

    def blocked_word_in(self, prompt: str) -> str | None:
        """The blocked word or phrase ``prompt`` contains, or ``None``."""
        return self.blocked.find(prompt)

    def decide(self, flagged: bool, age_restricted_channel: bool) -> Decision:
        """What to do with one image: ``post`` it, post it as a ``spoiler``, or ``withhold`` it."""
        if not flagged:
            return "post"
        action = self.age_restricted_action if age_restricted_channel else self.nsfw_action
        if action == "allow":
            return "post"
        return "spoiler" if action == "spoiler" else "withhold"
