"""`python -m reidtricks.extract`: the command lives in reidtricks.cli.extract."""

from reidtricks.cli.extract import main

if __name__ == "__main__":
    main()
