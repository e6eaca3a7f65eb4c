"""The one "not found" of every repository.

A repository method that reads or changes a row the caller names by its key (a job, image or
comic id, a message id, a panel position, a character name) raises :class:`NotFound` when there
is no such row; it never returns None for one. Queries that may match nothing (a member's active
comic, a job's panel, a list) say so in their return type instead.
"""

from __future__ import annotations


class NotFound(KeyError):
    """No row has the key the caller named; ``str()`` is a short message a member can read.

    A :class:`KeyError`, so code that caught the repositories' earlier ``KeyError`` still works.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "not found"
