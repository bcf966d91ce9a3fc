"""The ASGI app's import path of earlier releases, kept for users.

``uvicorn --factory dataserve.app:from_env`` and ``from dataserve.app import
create_app`` keep working; the app lives in ``dataserve.http.app`` and the
worker factory in ``dataserve.workers``.
"""

from __future__ import annotations

from .http.app import DataEndpoint as DataEndpoint
from .http.app import DataServeApp as DataServeApp
from .http.app import create_app as create_app
from .workers import from_env as from_env

__all__ = ["DataEndpoint", "DataServeApp", "create_app", "from_env"]
