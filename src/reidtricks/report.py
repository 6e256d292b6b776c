"""`python -m reidtricks.report`: the command lives in reidtricks.cli.report."""

from reidtricks.cli.report import main

if __name__ == "__main__":
    main()
