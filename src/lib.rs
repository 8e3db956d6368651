//! canary-pilot: automated canary releases behind Traefik.
//!
//! The crate is a library with a thin binary: [`cli`] parses commands; [`server`] runs the
//! daemon, whose [`controller`] owns the state ([`rollout`]), persists it ([`store`]) and
//! publishes the Traefik configuration ([`provider`]) served by the HTTP [`api`].
#![forbid(unsafe_code)]

pub mod analysis;
pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod controller;
pub mod demo_backend;
pub mod demo_traffic;
pub mod event;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod provider;
pub mod redact;
pub mod rollout;
pub mod server;
pub mod signals;
pub mod store;
pub mod swarm;
pub mod telemetry;
pub mod traefik_api;
