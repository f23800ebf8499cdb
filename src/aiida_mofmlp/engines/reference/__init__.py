"""The reference check: properties with the labelling method beside each model."""
