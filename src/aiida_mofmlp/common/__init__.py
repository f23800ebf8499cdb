"""Small pure helpers shared by several layers (no AiiDA imports in the modules listed here)."""
