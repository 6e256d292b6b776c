"""`python -m reidtricks.synthetic`: the command lives in reidtricks.cli.synthetic."""

from reidtricks.cli.synthetic import main

if __name__ == "__main__":
    main()
