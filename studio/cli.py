"""``panelbot-studio --config config.toml``: the same as ``streamlit run studio/app.py -- --config config.toml``.

Binds to 127.0.0.1 unless ``[studio] public = true`` (then to every interface, showing only the
servers and channels listed); ``--port`` picks the port (Streamlit's 8501 by default).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio.settings import LOOPBACK, ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    """Start Streamlit on the studio's app; returns the exit status."""
    parser = argparse.ArgumentParser(description="Run the panelbot studio (Streamlit).")
    parser.add_argument("--config", type=Path, default=Path("config.toml"), help="the bot's TOML settings file")
    parser.add_argument("--port", type=int, default=8501, help="the web port (default 8501)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    from streamlit.web import cli as streamlit_cli

    address = "0.0.0.0" if config.studio.public else LOOPBACK
    app = Path(__file__).resolve().parent / "app.py"
    sys.argv = [
        "streamlit", "run", str(app), "--server.address", address, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--", "--config", str(args.config),
    ]
    return int(streamlit_cli.main() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
