#!/bin/sh
# The runtime role a service serves with: SELECT, INSERT, UPDATE and DELETE on the
# tables its owner role (POSTGRES_USER, which runs the migrations) creates now or
# later, nothing else: no DDL, no TRUNCATE, no temporary tables, no other database.
#
# The official postgres image runs this once, when it initialises an empty data
# directory (/docker-entrypoint-initdb.d). docker compose mounts it from here, and
# Kubernetes from a ConfigMap generated from it (k8s/base/kustomization.yaml): one
# copy. The test kit and `microcosm up` grant the same (crates/testkit, provision.rs).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set app="$APP_USER" --set app_password="$APP_PASSWORD" \
     --set owner="$POSTGRES_USER" --set db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"app" LOGIN PASSWORD :'app_password';
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"owner", :"app";
GRANT USAGE ON SCHEMA public TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
SQL
