#!/bin/sh
# Made by `python ops/kafka_access.py > ops/docker/kafka-setup.sh` (tests/test_compose.py checks it
# is current): the shop's topics, one SCRAM user per service and the ACLs of ops/kafka_access.py.
# Passwords come from the environment (.env, made by `make compose-env`). Safe to run again.
set -eu
cat > /tmp/admin.properties <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
EOF
/opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --create --if-not-exists --topic shop.orders --partitions 3 --replication-factor 1
/opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --create --if-not-exists --topic shop.inventory --partitions 3 --replication-factor 1
/opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --create --if-not-exists --topic shop.payments --partitions 3 --replication-factor 1
/opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --create --if-not-exists --topic shop.deadletter --partitions 3 --replication-factor 1
/opt/kafka/bin/kafka-configs.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --alter --entity-type users --entity-name svc_user --add-config "SCRAM-SHA-512=[iterations=8192,password=$KAFKA_PASSWORD_SVC_USER]"
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_user --operation Describe --operation Read --topic shop.deadletter
/opt/kafka/bin/kafka-configs.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --alter --entity-type users --entity-name svc_product --add-config "SCRAM-SHA-512=[iterations=8192,password=$KAFKA_PASSWORD_SVC_PRODUCT]"
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_product --operation Describe --operation Read --topic shop.deadletter
/opt/kafka/bin/kafka-configs.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --alter --entity-type users --entity-name svc_inventory --add-config "SCRAM-SHA-512=[iterations=8192,password=$KAFKA_PASSWORD_SVC_INVENTORY]"
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_inventory --operation Describe --operation Read --operation Write --topic shop.deadletter
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_inventory --operation Describe --operation Write --topic shop.inventory
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_inventory --operation Describe --operation Read --topic shop.orders
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_inventory --operation Read --group inventory_service
/opt/kafka/bin/kafka-configs.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --alter --entity-type users --entity-name svc_order --add-config "SCRAM-SHA-512=[iterations=8192,password=$KAFKA_PASSWORD_SVC_ORDER]"
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_order --operation Describe --operation Read --operation Write --topic shop.deadletter
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_order --operation Describe --operation Read --topic shop.inventory
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_order --operation Describe --operation Write --topic shop.orders
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_order --operation Describe --operation Read --topic shop.payments
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_order --operation Read --group order_service
/opt/kafka/bin/kafka-configs.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --alter --entity-type users --entity-name svc_payment --add-config "SCRAM-SHA-512=[iterations=8192,password=$KAFKA_PASSWORD_SVC_PAYMENT]"
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_payment --operation Describe --operation Read --operation Write --topic shop.deadletter
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_payment --operation Describe --operation Read --topic shop.orders
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_payment --operation Describe --operation Write --topic shop.payments
/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties --add --allow-principal User:svc_payment --operation Read --group payment_service
