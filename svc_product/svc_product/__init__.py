"""Product service: the catalogue (everything of a product but its stock, which Inventory keeps)."""
