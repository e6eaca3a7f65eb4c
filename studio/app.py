"""The studio: ``streamlit run studio/app.py -- --config config.toml``.

One page per purpose (Gallery, Comics, Generate), a wide layout, and the password gate of
``[studio] password`` before any of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st

from studio import context

st.set_page_config(page_title="panelbot studio", page_icon="🎨", layout="wide")
context.require_password(context.studio())
HERE = Path(__file__).resolve().parent
navigation = st.navigation([
    st.Page(HERE / "pages" / "gallery.py", title="Gallery", icon="🖼️", default=True),
    st.Page(HERE / "pages" / "comics.py", title="Comics", icon="📖"),
    st.Page(HERE / "pages" / "generate.py", title="Generate", icon="🎨"),
])
navigation.run()
