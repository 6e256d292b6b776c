"""The command-line programs: thin Hydra mains over the library (`python -m reidtricks.NAME`)."""
