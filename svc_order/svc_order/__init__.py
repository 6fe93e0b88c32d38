"""Order service: places orders and drives each one to its final status."""
