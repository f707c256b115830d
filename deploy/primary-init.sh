#!/bin/bash
# Runs once when the primary's data directory is created: replication connections from the
# compose network may log in with the password.
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
