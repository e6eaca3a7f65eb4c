"""Image and page composition with Pillow: comic pages, result grids, fitting uploads to a limit.

``comic_layout`` (frames), ``comic_lettering`` (captions and bubbles), ``comic_render`` (pages),
``comic_export`` (PNG/PDF/CBZ), ``grid`` (2x2 result grids) and ``upload_fit`` (re-encoding under
Discord's upload limit). The lettering fonts are package data in ``fonts/``. No torch, no discord.
"""
