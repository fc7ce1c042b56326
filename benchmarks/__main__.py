"""``python -m benchmarks [options]``: run the suite and write the report."""

from .run import main

raise SystemExit(main())
