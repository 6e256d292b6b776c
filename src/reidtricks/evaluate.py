"""`python -m reidtricks.evaluate`: the command lives in reidtricks.cli.evaluate."""

from reidtricks.cli.evaluate import main

if __name__ == "__main__":
    main()
