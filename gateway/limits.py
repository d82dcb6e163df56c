"""Limits on what a client can make taskgate hold or compute, in one place.

They keep every request's cost bounded: the recursive code downstream (deep copies,
diffs, schema validation) never nears Python's recursion limit, and no patch can grow
a stored document without bound.
"""

__all__ = ["MAX_DEPTH", "MAX_DOCUMENT_BYTES", "MAX_OPERATIONS"]

#: deepest nesting of arrays and objects accepted in a body or kept in a document
MAX_DEPTH = 64
#: the largest stored document, serialized as compact UTF-8 JSON
MAX_DOCUMENT_BYTES = 1_048_576
#: most operations in one JSON Patch
MAX_OPERATIONS = 1000
