"""User service: accounts, credentials and profiles."""
