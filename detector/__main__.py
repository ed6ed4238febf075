"""``python -m detector`` is the ``exfil-detector`` command."""

from detector.commands.cli import main

raise SystemExit(main())
