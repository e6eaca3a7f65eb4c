"""Generate: the /imagine form; the job goes into the running bot's own queue and lands in the gallery.

The studio never loads a model: with no bot running, it says so and offers nothing to submit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import streamlit as st

from studio import context
from studio.bot_client import BotUnavailable, Refused

#: Seconds between looks at a running job, and the longest the page follows one.
POLL_S = 0.5
FOLLOW_LIMIT_S = 15 * 60
NO_STYLE = "(none)"

current = context.studio()
context.require_password(current)
settings = current.config.studio
client = current.client

st.header("Generate")
if not settings.generation_enabled:
    st.info(
        "Generating from the studio is off: set `secret` and `channel_id` in the config's `[studio]` "
        "table, and restart the bot and the studio."
    )
    st.stop()
if settings.public and not settings.password:
    st.info("Generating is off in public mode unless the studio has a password (`[studio] password`).")
    st.stop()
try:
    status = client.status()
except BotUnavailable:
    st.warning(
        "The bot is not running, so nothing can be generated now: start it with "
        "`python run_bot.py --config config.toml` (its local API is what queues the job). "
        "The gallery and comics work without it."
    )
    st.stop()

limits = status["limits"]
queue = status["queue"]
st.caption(
    f"Model **{status['model']}** · {queue['waiting']} job(s) waiting, {queue['running']} running · "
    f"results are posted to channel {status['channel_id']} and land in the gallery."
)
styles = [style["name"] for style in status["styles"]]

with st.form("imagine"):
    prompt = st.text_area(
        "Prompt", max_chars=1000, key="prompt",
        help="What to draw; flags may follow: --ar 16:9 --seed 42 --no text --steps 30 --cfg 6 --n 2 --style comic",
    )
    negative = st.text_input("Negative prompt", max_chars=1000, key="negative", help="What to keep out of the image")
    style = st.selectbox("Style", [NO_STYLE, *styles], key="style")
    first, second, third = st.columns(3)
    with first:
        seed = st.number_input("Seed (empty: random)", min_value=0, max_value=2**32 - 1, value=None, step=1,
                               key="seed")
        count = st.number_input("Images", min_value=1, max_value=4, value=None, step=1, key="count",
                                placeholder=f"default {limits['default_count']}")
    with second:
        steps = st.number_input("Steps", min_value=1, max_value=150, value=None, step=1, key="steps",
                                placeholder=f"default {limits['default_steps']}")
        guidance = st.number_input("Guidance", min_value=0.0, max_value=30.0, value=None, step=0.5, key="guidance",
                                   placeholder=f"default {limits['default_guidance']:g}")
    with third:
        width = st.number_input("Width", min_value=64, max_value=2048, value=None, step=8, key="width",
                                placeholder=f"default {status['native_size']}")
        height = st.number_input("Height", min_value=64, max_value=2048, value=None, step=8, key="height",
                                 placeholder=f"default {status['native_size']}")
    submitted = st.form_submit_button("Generate", type="primary")

if submitted:
    options = {
        "prompt": prompt, "negative": negative or None, "style": None if style == NO_STYLE else style,
        "seed": seed, "steps": steps, "guidance": guidance, "width": width, "height": height, "count": count,
    }
    try:
        queued = client.imagine({key: value for key, value in options.items() if value is not None})
    except Refused as error:
        st.error(str(error))
    except BotUnavailable:
        st.warning("The bot stopped answering; try again once it runs.")
    else:
        st.session_state["studio_job"] = int(queued["job_id"])


def follow(job_id: int) -> None:
    """Show the job's place, progress and preview live, then its images."""
    place, line, preview = st.empty(), st.empty(), st.empty()
    started = time.monotonic()
    job: dict[str, object] = {}
    while time.monotonic() - started < FOLLOW_LIMIT_S:
        try:
            job = client.job(job_id)
        except (BotUnavailable, Refused) as error:
            place.warning(f"Lost track of job {job_id}: {error}")
            return
        state = job["status"]
        if state in ("done", "failed", "cancelled"):
            break
        position = job.get("position")
        place.info(f"Job {job_id}: " + ("running now" if position == 0 else f"position {position} in the queue"))
        if job.get("text"):
            line.markdown(str(job["text"]))
        if job.get("has_preview"):
            data = client.preview(job_id)
            if data:
                preview.image(data, caption="Preview", width=256)
        time.sleep(POLL_S)
    preview.empty()
    line.empty()
    if job.get("status") != "done":
        place.error(f"Job {job_id} ended: {job.get('status', 'unknown')} {job.get('error') or ''}".strip())
        return
    ids = [int(i) for i in job.get("image_ids", [])]  # type: ignore[attr-defined]
    place.success(f"Job {job_id} is done: image(s) {', '.join(f'#{i}' for i in ids) or 'none shown'}.")
    if job.get("withheld"):
        st.warning(f"{job['withheld']} image(s) were withheld by the safety checker.")
    cells = st.columns(max(len(ids), 1))
    for cell, image_id in zip(cells, ids, strict=False):
        with cell:
            row, _ = context.image(str(current.config.database), current.scope, image_id)
            if row is not None:
                path = context.thumb_of(current, row)
                if path is not None:
                    st.image(path)
            st.markdown(f"[Open #{image_id} in the gallery](./?image={image_id})")


job_id = st.session_state.get("studio_job")
if job_id is not None:
    follow(int(job_id))
