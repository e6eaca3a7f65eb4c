"""Hostile input, generated with hypothesis: no crash, no stuck job, each answered with a clear message.

Most cases run through the bot's real validation path, the functions /imagine calls (prompt flags,
styles and blocked words in ``build_request``, ``rules.request.validate``, ``check_upload`` for
attachments); a smaller set goes end to end, through the emulator to one running bot. Every run is
derandomized, so CI sees the same cases each time. Counts go to docs/RELIABILITY.md.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.cogs.imagine._build import ImagineOptions, build_request
from playground import DiscordEmulator
from rules.image_checks import UploadError, check_upload
from rules.request import GenerationLimits, RequestError, validate
from rules.safety import SafetyPolicy
from rules.styles import StylePreset
from tests.harness import RunningBot, rows
from tests.reliability import record_reliability

T = TypeVar("T")
LIMITS = GenerationLimits()
SAFETY = SafetyPolicy(blocked_words=("gore", "blood bath"))
STYLES = {"anime": StylePreset(name="anime", prompt_prefix="anime style, ")}
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

# -- strategies --------------------------------------------------------------------------------

RTL_AND_INVISIBLE = ["\u202e", "\u202d", "\u200f", "\u200e", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u061c"]
LOOKALIKES = {"o": ["о", "ο", "0", "ᴏ"], "e": ["е", "ε", "3"], "g": ["ɡ", "ց"], "r": ["г", "ʀ"]}
HOSTILE_BITS = [
    "@everyone", "@here", "<@123456789012345678>", "<@&123456789012345678>", "<#1>", "[click](http://x.invalid)",
    "**bold**", "`code`", "```", "||spoiler||", "> quote", "'; DROP TABLE jobs; --", "\" OR 1=1 --",
    "--steps 9999", "--ar 1:0", "--seed -1", "--style nope", "--no", "\x00", "\x1b[31m", "\r\n", "\t", "%s%n",
]


@st.composite
def lookalike_blocked(draw: st.DrawFn) -> str:
    word = list("gore")
    for index, letter in enumerate(word):
        if letter in LOOKALIKES and draw(st.booleans()):
            word[index] = draw(st.sampled_from(LOOKALIKES[letter]))
    glue = draw(st.sampled_from(["", *RTL_AND_INVISIBLE]))
    return draw(st.text(max_size=20)) + glue.join(word) + draw(st.text(max_size=20))


PROMPTS = st.one_of(
    st.text(min_size=0, max_size=1200),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.lists(st.sampled_from(HOSTILE_BITS + RTL_AND_INVISIBLE), max_size=12).map(" ".join),
    st.tuples(st.text(max_size=40), st.sampled_from(HOSTILE_BITS)).map(lambda t: t[0] + t[1]),
    lookalike_blocked(),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Mn"]), max_size=80),
)

NUMBERS = st.fixed_dictionaries({}, optional={
    "seed": st.integers(-(2**70), 2**70),
    "steps": st.integers(-5, 10_000),
    "guidance": st.floats(allow_nan=True, allow_infinity=True),
    "width": st.integers(-10, 100_000),
    "height": st.integers(-10, 100_000),
    "count": st.integers(-3, 50),
})


def collect(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` deterministic examples of ``strategy`` (derandomized, so the same on every run)."""
    found: list[T] = []

    @settings(max_examples=count, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(value: T) -> None:
        found.append(value)

    draw()
    return found


def answer(options: ImagineOptions) -> str:
    """What the bot's /imagine validation says: "ok" or the member's message; any other exception escapes."""
    try:
        request = build_request(options, limits=LIMITS, native=64, styles=STYLES, safety=SAFETY)
        validate(request, LIMITS)
    except RequestError as error:
        message = str(error)
        assert message.strip() and len(message) <= 2000, message
        return message
    return "ok"


# -- the validation path -------------------------------------------------------------------------

def test_hostile_prompts_get_a_request_or_a_message() -> None:
    tried = 0

    @SETTINGS
    @given(PROMPTS, st.one_of(st.none(), PROMPTS))
    def check(prompt: str, negative: str | None) -> None:
        nonlocal tried
        tried += 1
        answer(ImagineOptions(prompt=prompt, negative=negative))

    check()
    record_reliability("hostile", "prompts: unicode, RTL/zero-width, look-alikes, control chars, mentions, "
                       "markdown, SQL, flags (validation path)", tried, "ok: request or clear message, 0 crashes")


def test_blocked_words_with_invisible_glue_are_refused() -> None:
    tried = 0

    @SETTINGS
    @given(st.sampled_from(RTL_AND_INVISIBLE), st.text(alphabet="abc ", max_size=10))
    def check(glue: str, around: str) -> None:
        nonlocal tried
        tried += 1
        assert "doesn't allow" in answer(ImagineOptions(prompt=f"{around} {glue.join('gore')} {around}"))

    check()
    record_reliability("hostile", "blocked word split by zero-width/RTL characters (validation path)", tried,
                       "ok: refused with message")


def test_numeric_options_at_and_beyond_their_limits() -> None:
    tried = 0

    @SETTINGS
    @given(NUMBERS)
    def check(numbers: dict[str, Any]) -> None:
        nonlocal tried
        tried += 1
        verdict = answer(ImagineOptions(prompt="a lighthouse", **numbers))
        steps, count = numbers.get("steps"), numbers.get("count")
        if (steps is not None and not 1 <= steps <= LIMITS.max_steps) or (
            count is not None and not 1 <= count <= LIMITS.max_count
        ):
            assert verdict != "ok"

    check()
    record_reliability("hostile", "numeric options (seed, steps, guidance incl. NaN/inf, width, height, count) "
                       "at and beyond limits (validation path)", tried, "ok: out-of-range refused, 0 crashes")


# -- attachments -------------------------------------------------------------------------------

def encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with one tiny compressed row of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + data + chunk(b"IEND", b"")


def bomb() -> bytes:
    """A small PNG that inflates to gigabytes of pixels (all zeros compress to almost nothing)."""
    return png_header_only(30_000, 30_000)


def gif_animated() -> bytes:
    frames = [Image.new("P", (32, 32), i) for i in range(3)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])


def progressive_jpeg_many_scans() -> bytes:
    """A progressive JPEG with its scan segment repeated thousands of times."""
    data = encoded(Image.new("RGB", (64, 64), (10, 200, 30)), "JPEG", progressive=True)
    sos = data.index(b"\xff\xda")
    return data[:sos] + data[sos:-2] * 1 + b"".join([data[sos:-2]] * 3000) + b"\xff\xd9"


FIXED_UPLOADS: dict[str, tuple[str, bytes, str]] = {
    "text named .png": ("notes.png", b"hello, this is not an image\n" * 10, "image/png"),
    "20000x20000 header": ("huge.png", png_header_only(20_000, 20_000), "image/png"),
    "decompression bomb": ("bomb.png", bomb(), "image/png"),
    "animated GIF": ("anim.gif", gif_animated(), "image/gif"),
    "animated GIF named .png": ("anim.png", gif_animated(), "image/png"),
    "CMYK JPEG": ("cmyk.jpg", encoded(Image.new("CMYK", (64, 64), (0, 50, 100, 0)), "JPEG"), "image/jpeg"),
    "16-bit PNG": ("deep.png", encoded(Image.new("I;16", (64, 64), 40000), "PNG"), "image/png"),
    "progressive JPEG, 3000 scans": ("scans.jpg", progressive_jpeg_many_scans(), "image/jpeg"),
    "empty file": ("empty.png", b"", "image/png"),
}
GOOD_PNG = encoded(Image.new("RGB", (64, 64), (200, 10, 10)), "PNG")


def upload_verdict(filename: str, data: bytes, content_type: str | None) -> str:
    try:
        image = check_upload(data, content_type=content_type, filename=filename,
                             max_bytes=LIMITS.max_upload_bytes, max_pixels=LIMITS.max_upload_pixels)
    except UploadError as error:
        assert str(error).strip()
        return str(error)
    assert image.mode == "RGB" and image.width * image.height <= LIMITS.max_upload_pixels
    return "ok"


@pytest.mark.parametrize("name", sorted(FIXED_UPLOADS))
def test_hostile_attachment_classes(name: str) -> None:
    filename, data, content_type = FIXED_UPLOADS[name]
    verdict = upload_verdict(filename, data, content_type)
    if name in ("text named .png", "20000x20000 header", "decompression bomb", "animated GIF",
                "animated GIF named .png", "empty file"):
        assert verdict != "ok", name
    record_reliability("hostile", f"attachment: {name} (validation path)", 1,
                       "ok: accepted and converted" if verdict == "ok" else "ok: refused with message")


def test_truncated_and_corrupted_pngs() -> None:
    tried = 0

    @SETTINGS
    @given(st.integers(0, len(GOOD_PNG)), st.lists(st.tuples(st.integers(0, len(GOOD_PNG) - 1),
                                                             st.integers(0, 255)), max_size=4))
    def check(cut: int, flips: list[tuple[int, int]]) -> None:
        nonlocal tried
        tried += 1
        data = bytearray(GOOD_PNG[:cut])
        for where, value in flips:
            if where < len(data):
                data[where] = value
        upload_verdict("cut.png", bytes(data), "image/png")

    check()
    record_reliability("hostile", "attachment: truncated or bit-flipped PNG (validation path)", tried,
                       "ok: accepted or refused with message, 0 crashes")


# -- end to end: one bot, the emulator -----------------------------------------------------------

E2E_PROMPTS = 60
E2E_NUMBERS = 25


async def test_hostile_input_end_to_end(emulator: DiscordEmulator, running_bot: RunningBot, tmp_path: Path) -> None:
    prompts = collect(PROMPTS.filter(lambda p: 1 <= len(p) <= 1000), E2E_PROMPTS)
    numbers = collect(NUMBERS, E2E_NUMBERS)
    members = [emulator.add_member(f"m{i}") for i in range(12)]
    sent = []
    cases: list[tuple[dict[str, Any], dict[str, tuple[str, bytes, str]] | None]] = []
    cases += [({"prompt": p, "count": 1, "width": 64, "height": 64}, None) for p in prompts]
    cases += [({"prompt": "numbers", **n}, None) for n in numbers]
    cases += [({"prompt": "from an upload"}, {"image": upload}) for upload in FIXED_UPLOADS.values()
              if upload[1]]
    for index, (options, attachments) in enumerate(cases):
        inter = await emulator.send_slash_command(
            "imagine", options, user_id=members[index % len(members)], attachments=attachments,
            check_values=False, ack_timeout=10,
        )
        assert inter.ack_ms is not None and inter.ack_ms < 3000
        sent.append(inter)
    # Every job the bot accepted ends (done, failed or cancelled), none stuck.
    db = tmp_path / "bot.sqlite3"
    await emulator.wait_for(
        lambda: rows(db, "SELECT count(*) FROM jobs WHERE status NOT IN ('done', 'failed', 'cancelled')") == [(0,)],
        timeout=240,
    )
    answered = [inter for inter in sent if inter.responded_at is not None]
    assert len(answered) == len(sent)
    # Each one became a job, or got a message saying why not.
    queued = {token for (token,) in rows(db, "SELECT interaction_token FROM jobs")}
    for inter in sent:
        if inter.token in queued:
            continue
        said = [m.content for m in emulator.world.messages.values() if m.interaction_id == inter.id and m.content]
        assert said and all(len(text) <= 2000 for text in said), inter
    # The bot still works after all of it.
    await emulator.send_slash_command("imagine", {"prompt": "still alive", "count": 1}, user_id=members[0])
    await emulator.wait_for(lambda: rows(db, "SELECT status FROM jobs ORDER BY id DESC LIMIT 1") == [("done",)], 60)
    record_reliability("hostile", "end to end through the emulator: prompts, numbers beyond the client's limits, "
                       "hostile attachments", len(cases), "ok: every one acknowledged < 3 s, no stuck job, 0 crashes")
