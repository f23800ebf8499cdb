"""Selection work chain and the in-process selection calcfunction."""
