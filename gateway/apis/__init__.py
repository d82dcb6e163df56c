"""The API styles. Each module owns one vendor's URLs, field names, rules and error
body, and exposes ``STYLE``, ``PATH_PATTERN``, ``setup(app)``, ``render_error(err,
request_id)`` and ``import_task(doc, now)``."""
