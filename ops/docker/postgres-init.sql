-- One PostgreSQL server, one database per owning service (Inventory shares products).
CREATE DATABASE shop_users;
CREATE DATABASE shop_products;
CREATE DATABASE shop_orders;
CREATE DATABASE shop_payments;
