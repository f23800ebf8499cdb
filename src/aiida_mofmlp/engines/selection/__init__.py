"""Selection engine (``mofmlp-select``): SOAP + k-means/FPS with de-duplication, CBAD, flat histogram,
2-D maps."""
