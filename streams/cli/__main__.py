"""``python -m streams.cli`` = ``hotline`` (used where the console script is not on PATH)."""

from streams.cli import main

main()
