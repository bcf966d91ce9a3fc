"""Peer servers and clients, each a standalone script run in its own interpreter.

They import nothing from this repository, so each can run with ``PYTHONPATH``
pointing at the peer's own folder in ``.bench-env`` (the original dataserve
0.1.0 has our import name). A server prints ``http://127.0.0.1:PORT`` (or
``tcp://...``) on its first line once it listens.
"""
