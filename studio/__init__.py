"""The studio: a Streamlit web app over the bot's archive (gallery, comics) and its queue (generate).

Run it with ``streamlit run studio/app.py -- --config config.toml``. It reads the bot's SQLite
database read-only and never loads a model: generations go to the running bot's local HTTP API
(:mod:`bot.local_api`).
"""
