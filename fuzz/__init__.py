"""Fuzz targets for every parser that reads network bytes.

One module per parser (``fuzz_<name>.py``) holds its driver, ``check(data)``
(the properties, raising ``AssertionError`` when one fails and letting any
unexpected exception through) and ``seeds()`` (valid inputs for the corpus).
Run under atheris with ``python fuzz/run.py --seconds N [name...]``; the
hypothesis state machines in ``tests/fuzz`` drive the same drivers, and every
crash the fuzzers find is kept there as a regression test.
"""
