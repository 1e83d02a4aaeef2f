"""``python -m streams.cli`` = ``hotline`` (used where the console script is not on PATH)."""

from streams.cli import main

if __name__ == "__main__":  # not when a spawned child (the classifier pool) imports it as __mp_main__
    main()
