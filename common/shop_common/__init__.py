"""Pieces every service of the shop shares, and nothing else."""
