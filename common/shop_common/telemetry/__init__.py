"""Logs (JSON, redacted), metrics and health probes, traces."""
