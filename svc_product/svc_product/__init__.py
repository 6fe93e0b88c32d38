"""Product service: the catalog and its stock levels."""
