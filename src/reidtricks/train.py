"""`python -m reidtricks.train`: the command lives in reidtricks.cli.train."""

from reidtricks.cli.train import main

if __name__ == "__main__":
    main()
