"""Operations: health and readiness, Prometheus metrics, request ids, access logs.

The public names live in ``dataserve.ops``; these modules are the parts.
Nothing here imports Starlette or uvicorn at import time except
``routes`` and ``connections``, which only the HTTP side loads.
"""
