"""Error codes: one table for every front end. A result records the name (``error_code`` in
its JSON); the PLC servers publish the number. The README's table is this one.

Numbers are part of the PLC contract: never renumber, only add.
"""
from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Why a result is not a plain OK/NG, or why a PLC request was refused."""
    NONE = 0
    NOT_READY = 1  # a trigger while the camera or the engine is not ready: refused at once
    BUSY = 2  # a trigger while one is in flight or a result waits for its ack: refused
    DEADLINE = 3  # no frame from the camera within the trigger's deadline: FAULT
    UNKNOWN_RECIPE = 4  # the selected recipe is not configured: FAULT until a known one is selected
    RECIPE_LOADING = 5  # the selected recipe's engine is still loading: not ready
    ENGINE = 6  # the engine failed or hung on this frame: FAULT
    IMAGE_QUALITY = 7  # the frame was dark, bright, blurred or frozen: INVALID
    ACK_TIMEOUT = 8  # a ready result was not acknowledged in time and was withdrawn
    CAMERA_DOWN = 9  # the camera delivers no frames: FAULT
    TRIGGERS_FULL = 10  # too many triggers already wait for frames on this camera
    STALE = 11  # the newest result is too old to stand for the line: FAULT
    INTERNAL = 99  # anything else; the text says what


def code_number(name: str | None) -> int:
    """The PLC's number for a result's ``error_code`` name (unknown names are INTERNAL)."""
    if not name:
        return ErrorCode.NONE
    try:
        return ErrorCode[name]
    except KeyError:
        return ErrorCode.INTERNAL
