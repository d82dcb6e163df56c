"""marshmallow schemas of each vendor's documents: their members, types and enums.

Pure data, no I/O. Nothing here imports from the styles' modules: which members a caller
may change is a rule, kept in the style's rules module.
"""
