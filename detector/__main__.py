"""``python -m detector`` is the ``exfil-detector`` command."""

from detector.cli import main

raise SystemExit(main())
