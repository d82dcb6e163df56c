"""marshmallow schemas of each vendor's documents: their members, types and enums.

Pure data, no I/O. Nothing here imports from :mod:`gateway.apis`: which members a caller
may change is a rule, kept in the style's rules module under ``gateway/apis/``.
"""
