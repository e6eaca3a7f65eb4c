"""Request rules: what a member may ask for and how it is read.

``request`` (the validated :class:`~rules.request.GenerationRequest`), ``prompt_flags``
(Midjourney-style ``--ar``/``--seed``/... flags), ``styles`` (presets), ``safety`` (blocked words,
safety policy) and ``image_checks`` (uploads). Pure Python and Pillow: no torch, no discord.
"""
