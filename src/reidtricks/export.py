"""`python -m reidtricks.export`: the command lives in reidtricks.cli.export."""

from reidtricks.cli.export import main

if __name__ == "__main__":
    main()
