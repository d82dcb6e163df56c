"""Tests of gateway/store/: the SQLite store's parts, each on its own where it can be."""
