"""Training of the suite's own small models on Fashion-MNIST (`python -m sdo.train ...`, `make models`)."""
