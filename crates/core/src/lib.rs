//! The `claude_k8s` adapter's `execute` pipeline, free of napi.
//!
//! One module per stage, named in the domain's words. The binding crate (the
//! repository's `src/`) only converts the host's ctx into [`ctx::RunContext`],
//! implements [`host::Host`] over the JS callbacks, and converts the
//! [`outcome::RunResult`] back. Everything here can be driven by `cargo test`
//! with a Rust host.

pub mod ctx;
pub mod host;
pub mod diagnostics;

// Building the Job (pure).
pub mod config;
pub mod names;
pub mod shell;
pub mod prompt;
pub mod envvars;
pub mod rtk;
pub mod selfpod;
pub mod bundle;
pub mod mcp;
pub mod withhold;
pub mod job;
pub mod egress;

// Reading what the pod prints (pure).
pub mod lines;
pub mod transcript;
pub mod dedup;
pub mod failure;
pub mod outcome;
pub mod retry;

// Running it on the cluster.
pub mod guard;
pub mod pod;
pub mod cancel;
pub mod cluster;
pub mod watch;
pub mod report;
pub mod logs;
pub mod job_events;
pub mod run;
pub mod env_test;
pub mod probe;
