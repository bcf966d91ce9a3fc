"""A handler module that fails while it is imported."""

raise RuntimeError("the database is not configured")
