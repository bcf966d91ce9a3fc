"""The original libraries the interoperability tests run against, fetched ahead.

``python -m tests.interop`` fetches every one of them from PyPI into
``.interop/`` (what ``.ci/run`` does before the tests); the tests otherwise
fetch each on first use, and skip, saying so, when they cannot.
"""

from __future__ import annotations

import sys

#: folder under .interop/ -> what pip installs into it
ORIGINALS: dict[str, tuple[str, ...]] = {
    "dataserve-0.1.0": ("dataserve==0.1.0", "requests"),
    "tinyproto2": ("tinyproto==2.0.1",),
    "tinyproto3": ("tinyproto==3.0",),
}


def main() -> int:
    import _pytest.outcomes

    from tests.conftest import interop_target

    failed = 0
    for name, requirements in ORIGINALS.items():
        try:
            print(f"{name}: {interop_target(name, *requirements)}")
        except (_pytest.outcomes.Skipped, _pytest.outcomes.Failed) as exc:
            print(f"{name}: {exc.msg}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
