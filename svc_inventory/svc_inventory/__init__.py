"""Inventory service: stock deductions and restorations driven by order events."""
