"""placeholder"""
from __future__ import annotations
from ..context import Context
from ..results import Section
NAME = "scale"
TITLE = "scale"
PEERS: tuple[str, ...] = ()
def run(ctx: Context) -> Section:
    return Section(NAME, TITLE, skipped="not written yet")
