"""reidtricks: the Bag of Tricks / BNNeck person re-identification baseline."""

__version__ = "0.1.0"
