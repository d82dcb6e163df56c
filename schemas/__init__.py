"""marshmallow schemas of each vendor's documents; pure data, no I/O."""
