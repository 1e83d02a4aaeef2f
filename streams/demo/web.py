"""The demo's web console process: ``python -m streams.demo.web`` serves :func:`streams.console.serve`.

A process of its own (like the worker) so that the demo can stop it with a signal and wait for it;
its settings come from the ``HOTLINE_*`` environment the demo gives it.
"""

from __future__ import annotations

import sys


def main() -> int:
    from config.settings import get_settings
    from streams.console import serve
    from streams.runner import setup_logging

    settings = get_settings()
    setup_logging(settings.log_level)
    serve(settings)  # blocks; returns on SIGINT/SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())
