#!/usr/bin/env bash
# Generated from the code (signalhub.apps.kafka_access): do not edit, regenerate with
#   SIGNALHUB_PARTITIONS=6 signalhub kafka init-script > deploy/kafka/init.sh
# docker-compose.yml's kafka-init runs it beside the broker (localhost:19092).
# Inputs: partitions=6, enforcer group signalhub-enforcer, bundler group signalhub-bundler, audit group signalhub-audit-store.
set -euo pipefail
bin=/opt/kafka/bin
bs=localhost:19092
topic() { "$bin/kafka-topics.sh" --bootstrap-server "$bs" --create --if-not-exists --topic "$@"; }
user() {
  "$bin/kafka-configs.sh" --bootstrap-server "$bs" --alter --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[password=$(cat "/run/secrets/kafka_password_$1")]" > /dev/null
}
acl() { "$bin/kafka-acls.sh" --bootstrap-server "$bs" --add "$@" > /dev/null; }

# -- topics
topic audit --partitions 1 --config retention.ms=157680000000
topic deliveries.blocked --partitions 1 --config retention.ms=7776000000
topic deliveries.gemeente --partitions 1 --config retention.ms=7776000000
topic deliveries.jeugdzorg --partitions 1 --config retention.ms=7776000000
topic deliveries.om --partitions 1 --config retention.ms=7776000000
topic deliveries.politie --partitions 1 --config retention.ms=7776000000
topic deliveries.reclassering --partitions 1 --config retention.ms=7776000000
topic deliveries.reclassering.failed --partitions 1 --config retention.ms=7776000000
topic deliveries.schuldhulpverlening --partitions 1 --config retention.ms=7776000000
topic deliveries.woningcorporatie --partitions 1 --config retention.ms=7776000000
topic deliveries.zvh --partitions 1 --config retention.ms=7776000000
topic policies --partitions 1 --config cleanup.policy=compact
topic schemas.views --partitions 1 --config cleanup.policy=compact
topic signals.casework_alert --partitions 6 --config retention.ms=2592000000
topic signals.casework_referral --partitions 6 --config retention.ms=2592000000
topic signals.debt_signal --partitions 6 --config retention.ms=2592000000
topic signals.dlq --partitions 1 --config retention.ms=2592000000
topic signals.drug_signal --partitions 6 --config retention.ms=2592000000
topic signals.housing_closure --partitions 6 --config retention.ms=2592000000
topic signals.intimidation_report --partitions 6 --config retention.ms=2592000000
topic signals.neighbourhood_report --partitions 6 --config retention.ms=2592000000
topic signals.nuisance_report --partitions 6 --config retention.ms=2592000000
topic signals.parked --partitions 1 --config retention.ms=2592000000
topic signals.radicalisation_concern --partitions 6 --config retention.ms=2592000000
topic signals.school_absence --partitions 6 --config retention.ms=2592000000
topic signals.youth_protection_concern --partitions 6 --config retention.ms=2592000000

# -- SCRAM users, one per secret file /run/secrets/kafka_password_<user>
user audit-ingest
user bundler
user connector
user enforcer
user gemeente
user http
user jeugdzorg
user om
user politie
user reclassering
user schuldhulpverlening
user webhooks
user woningcorporatie
user zvh

# -- ACLs: StandardAuthorizer denies whatever is not allowed here
# audit-ingest (audit-ingest)
acl --allow-principal User:audit-ingest --operation Read --operation Describe \
  --topic audit
acl --allow-principal User:audit-ingest --operation Read \
  --group signalhub-audit-store
# bundler (bundler)
acl --allow-principal User:bundler --operation Read --operation Create --operation Describe \
  --topic signals.casework_referral \
  --topic signals.debt_signal \
  --topic signals.drug_signal \
  --topic signals.housing_closure \
  --topic signals.intimidation_report \
  --topic signals.neighbourhood_report \
  --topic signals.nuisance_report \
  --topic signals.radicalisation_concern \
  --topic signals.school_absence \
  --topic signals.youth_protection_concern
acl --allow-principal User:bundler --operation Write --operation Create --operation Describe \
  --topic signals.casework_alert
acl --allow-principal User:bundler --operation Read \
  --group signalhub-bundler
# connector (connector)
acl --allow-principal User:connector --operation Write --operation Describe \
  --topic signals.casework_referral \
  --topic signals.debt_signal \
  --topic signals.drug_signal \
  --topic signals.housing_closure \
  --topic signals.intimidation_report \
  --topic signals.neighbourhood_report \
  --topic signals.nuisance_report \
  --topic signals.radicalisation_concern \
  --topic signals.school_absence \
  --topic signals.youth_protection_concern
# enforcer (enforcer)
acl --allow-principal User:enforcer --operation Read --operation Create --operation Describe \
  --topic policies \
  --topic signals.casework_alert \
  --topic signals.casework_referral \
  --topic signals.debt_signal \
  --topic signals.drug_signal \
  --topic signals.housing_closure \
  --topic signals.intimidation_report \
  --topic signals.neighbourhood_report \
  --topic signals.nuisance_report \
  --topic signals.radicalisation_concern \
  --topic signals.school_absence \
  --topic signals.youth_protection_concern
acl --allow-principal User:enforcer --operation Write --operation Create --operation Describe \
  --topic audit \
  --topic deliveries.blocked \
  --topic deliveries.gemeente \
  --topic deliveries.jeugdzorg \
  --topic deliveries.om \
  --topic deliveries.politie \
  --topic deliveries.reclassering \
  --topic deliveries.schuldhulpverlening \
  --topic deliveries.woningcorporatie \
  --topic deliveries.zvh \
  --topic schemas.views \
  --topic signals.dlq \
  --topic signals.parked
acl --allow-principal User:enforcer --operation Read \
  --group signalhub-enforcer
# gemeente (subscriber)
acl --allow-principal User:gemeente --operation Read --operation Describe \
  --topic deliveries.gemeente
acl --allow-principal User:gemeente --operation Read --resource-pattern-type prefixed \
  --group gemeente.
# http (http)
acl --allow-principal User:http --operation Read --operation Describe \
  --topic audit \
  --topic deliveries.schuldhulpverlening \
  --topic schemas.views \
  --topic signals.dlq
acl --allow-principal User:http --operation Read --operation Write --operation Create --operation Describe \
  --topic policies
acl --allow-principal User:http --operation Read --operation Write --operation Describe \
  --topic signals.casework_alert \
  --topic signals.casework_referral \
  --topic signals.debt_signal \
  --topic signals.drug_signal \
  --topic signals.housing_closure \
  --topic signals.intimidation_report \
  --topic signals.neighbourhood_report \
  --topic signals.nuisance_report \
  --topic signals.radicalisation_concern \
  --topic signals.school_absence \
  --topic signals.youth_protection_concern
acl --allow-principal User:http --operation Read \
  --group signalhub-audit-store
# jeugdzorg (subscriber)
acl --allow-principal User:jeugdzorg --operation Read --operation Describe \
  --topic deliveries.jeugdzorg
acl --allow-principal User:jeugdzorg --operation Read --resource-pattern-type prefixed \
  --group jeugdzorg.
# om (subscriber)
acl --allow-principal User:om --operation Read --operation Describe \
  --topic deliveries.om
acl --allow-principal User:om --operation Read --resource-pattern-type prefixed \
  --group om.
# politie (subscriber)
acl --allow-principal User:politie --operation Read --operation Describe \
  --topic deliveries.politie
acl --allow-principal User:politie --operation Read --resource-pattern-type prefixed \
  --group politie.
# reclassering (subscriber)
acl --allow-principal User:reclassering --operation Read --operation Describe \
  --topic deliveries.reclassering
acl --allow-principal User:reclassering --operation Read --resource-pattern-type prefixed \
  --group reclassering.
# schuldhulpverlening (subscriber)
acl --allow-principal User:schuldhulpverlening --operation Read --operation Describe \
  --topic deliveries.schuldhulpverlening
acl --allow-principal User:schuldhulpverlening --operation Read --resource-pattern-type prefixed \
  --group schuldhulpverlening.
# webhooks (webhooks)
acl --allow-principal User:webhooks --operation Read --operation Describe \
  --topic deliveries.reclassering \
  --topic schemas.views
acl --allow-principal User:webhooks --operation Write --operation Describe \
  --topic deliveries.reclassering.failed
acl --allow-principal User:webhooks --operation Read \
  --group signalhub-webhook-reclassering
# woningcorporatie (subscriber)
acl --allow-principal User:woningcorporatie --operation Read --operation Describe \
  --topic deliveries.woningcorporatie
acl --allow-principal User:woningcorporatie --operation Read --resource-pattern-type prefixed \
  --group woningcorporatie.
# zvh (subscriber)
acl --allow-principal User:zvh --operation Read --operation Describe \
  --topic deliveries.zvh
acl --allow-principal User:zvh --operation Read --resource-pattern-type prefixed \
  --group zvh.

echo "kafka-init: topics, users and ACLs in place"
