"""AiiDAlab app (one folder per wizard step). See docs/source/developer.md for the layers."""
