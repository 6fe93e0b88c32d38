#!/bin/sh
# Runs once, when the data volume is new (docker-entrypoint-initdb.d). One role per service, with
# rights on its own database only; Inventory works in the products database beside Product (its own
# tables, and the stock column it alone changes). Passwords come from .env (make compose-env).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v user_pw="$PG_PASSWORD_SVC_USER" -v product_pw="$PG_PASSWORD_SVC_PRODUCT" \
     -v inventory_pw="$PG_PASSWORD_SVC_INVENTORY" -v order_pw="$PG_PASSWORD_SVC_ORDER" \
     -v payment_pw="$PG_PASSWORD_SVC_PAYMENT" <<'SQL'
CREATE ROLE svc_user LOGIN PASSWORD :'user_pw';
CREATE ROLE svc_product LOGIN PASSWORD :'product_pw';
CREATE ROLE svc_inventory LOGIN PASSWORD :'inventory_pw';
CREATE ROLE svc_order LOGIN PASSWORD :'order_pw';
CREATE ROLE svc_payment LOGIN PASSWORD :'payment_pw';
CREATE DATABASE shop_users OWNER svc_user;
CREATE DATABASE shop_products OWNER svc_product;
CREATE DATABASE shop_orders OWNER svc_order;
CREATE DATABASE shop_payments OWNER svc_payment;
REVOKE ALL ON DATABASE shop_users, shop_products, shop_orders, shop_payments FROM PUBLIC;
GRANT CONNECT ON DATABASE shop_products TO svc_inventory;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname shop_products <<'SQL'
GRANT USAGE, CREATE ON SCHEMA public TO svc_inventory;
-- Product's tables, as Product's migrations create them: Inventory reads them and sets stock.
ALTER DEFAULT PRIVILEGES FOR ROLE svc_product IN SCHEMA public GRANT SELECT, UPDATE ON TABLES TO svc_inventory;
SQL
