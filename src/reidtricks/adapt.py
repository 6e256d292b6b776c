"""`python -m reidtricks.adapt`: the command lives in reidtricks.cli.adapt."""

from reidtricks.cli.adapt import main

if __name__ == "__main__":
    main()
