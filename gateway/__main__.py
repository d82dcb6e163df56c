"""`python -m gateway` runs the command line; nothing else lives here."""

from gateway.cli import main

raise SystemExit(main())
