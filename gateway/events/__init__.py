"""Telling clients when tasks change: the change feed from the audit trail
(:mod:`gateway.events.feed`), who may see which event (:mod:`gateway.events.access`), the
``GET /events`` stream (:mod:`gateway.events.sse`) and ``taskgate events tail``
(:mod:`gateway.events.tail`). Importing the package imports none of them."""
