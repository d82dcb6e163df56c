"""taskgate as a stand-in test suites drive: namespaces, reset and checkpoints, seeding, a
request journal, faults in the vendor's shape, a controllable clock, scripted progress, and
a pytest plugin (:mod:`gateway.testing.plugin`). All of it is off unless ``[testing]
enabled`` (or ``taskgate serve --testing``); see docs/testing.md.

This package imports nothing at import time: the server wires :mod:`.api` in only when
testing is on, and the plugin must stay cheap to load in suites that never use it.
"""
