"""Calcfunctions: every transformation of frames and every decision of the work chains, with provenance."""
