"""taskgate: one aiohttp server, one SQLite file, three vendors' task-update APIs."""

__version__ = "0.1.0"
