//! End-to-end tests of the agent: in-process on an ephemeral port, and the real binary.

mod activemq;
mod api;
mod api_hardening;
mod auth;
mod backfill;
mod binary;
mod browser;
mod clients;
mod clock;
mod crash;
mod dashboard;
mod days;
mod examples;
mod flood;
mod fold;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod frozen;
mod ingest;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod janssen;
mod keycloak;
mod metrics;
mod otlp;
mod outage;
mod ownership;
mod reload;
mod sources;
mod startup;
mod support;
mod tls;
mod toy_plugins;
