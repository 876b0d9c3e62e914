#!/bin/sh
# Run once by the MariaDB image on the primary's first start (docker-entrypoint-initdb.d): the
# read-only account the apps use on replicas (mysql.replicas[].dsn). It replicates with the
# rest of the grants.
set -eu
mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" <<SQL
CREATE USER IF NOT EXISTS 'reader'@'%' IDENTIFIED BY '${MYSQL_READER_PASSWORD}';
GRANT SELECT ON go_example.* TO 'reader'@'%';
SQL
