"""`python -m reidtricks.search`: the command lives in reidtricks.cli.search."""

from reidtricks.cli.search import main

if __name__ == "__main__":
    main()
