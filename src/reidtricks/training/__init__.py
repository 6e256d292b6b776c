"""Training: the LightningModule, its optimiser and LR schedule, typed settings and run safety."""
