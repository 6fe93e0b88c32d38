"""The shop's REST gateway."""
