"""A console request refused: the page it answers says why, with the status it names."""

from __future__ import annotations


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
