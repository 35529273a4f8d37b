"""Run the ``labkit`` command as ``python -m labkit``."""

from labkit.cli import main

raise SystemExit(main())
