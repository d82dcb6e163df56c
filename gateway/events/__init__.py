"""Telling others when tasks change, from the audit trail: the change feed
(:mod:`gateway.events.feed`), who may see which event (:mod:`gateway.events.access`), the
``GET /events`` stream (:mod:`gateway.events.sse`), ``taskgate events tail``
(:mod:`gateway.events.tail`) and the vendors' webhooks (:mod:`gateway.events.webhooks`).
Importing the package imports none of them."""
