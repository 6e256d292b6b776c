"""`python -m reidtricks.stats`: the command lives in reidtricks.cli.stats."""

from reidtricks.cli.stats import main

if __name__ == "__main__":
    main()
