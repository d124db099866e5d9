//! Diagnostics an operator switches on (issue 25): a `tracing` subscriber
//! installed from the host process's environment.
//!
//! - `CLAUDE_K8S_LOG` — a filter in `EnvFilter` syntax, e.g.
//!   `claude_k8s=debug,kube=info` (a directive's target matches by prefix, so
//!   `claude_k8s` covers this crate's `claude_k8s_core::…` modules).
//!   Unset or blank: no subscriber at all, and every `tracing` macro in the
//!   core and in kube-rs costs one relaxed atomic load.
//! - `CLAUDE_K8S_LOG_FORMAT` — `text` (default) or `json`: one JSON object per
//!   line, like the host's own logs, with the span list of each event.
//!
//! Written to the host's stderr; each span's close is logged with its busy
//! and idle time, which is how phases are timed. Invariants: installed at most
//! once per process, whatever number of runs (the first run or environment
//! test decides); never replaces a subscriber the host already has — then
//! ours stays off and says so once on stderr. Fields are identifiers (run,
//! agent, Job, namespace, pod) and counts, never a token, key or prompt.

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::prelude::*;

use crate::config::HostEnv;

pub const FILTER_VAR: &str = "CLAUDE_K8S_LOG";
pub const FORMAT_VAR: &str = "CLAUDE_K8S_LOG_FORMAT";

/// What [`install_from_env`] did, once for the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscriber {
    /// `CLAUDE_K8S_LOG` unset or blank.
    Off,
    On { filter: String, json: bool },
    /// Not installed: the filter does not parse, or the process has a global
    /// subscriber already.
    NotInstalled(String),
}

static INSTALLED: OnceLock<Subscriber> = OnceLock::new();

/// Installs the subscriber `env` asks for, the first time it is called in
/// this process; later calls return what the first one did.
pub fn install_from_env(env: &HostEnv) -> &'static Subscriber {
    INSTALLED.get_or_init(|| {
        let outcome = install(env);
        if let Subscriber::NotInstalled(why) = &outcome {
            eprintln!("claude_k8s: diagnostics stay off: {why}");
        }
        outcome
    })
}

fn install(env: &HostEnv) -> Subscriber {
    let Some(filter) = env.non_blank(FILTER_VAR).map(str::trim) else { return Subscriber::Off };
    let directives = match EnvFilter::builder().parse(filter) {
        Ok(f) => f,
        Err(e) => return Subscriber::NotInstalled(format!("{FILTER_VAR} is not a filter ({e})")),
    };
    let json = match env.non_blank(FORMAT_VAR).map(str::trim) {
        None => false,
        Some(f) if f.eq_ignore_ascii_case("text") => false,
        Some(f) if f.eq_ignore_ascii_case("json") => true,
        Some(f) => return Subscriber::NotInstalled(format!("{FORMAT_VAR} is {f:?}; it takes text or json")),
    };
    let installed = if json {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_span_events(FmtSpan::CLOSE)
            .with_writer(std::io::stderr);
        tracing_subscriber::registry().with(directives).with(layer).try_init()
    } else {
        let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_span_events(FmtSpan::CLOSE).with_writer(std::io::stderr);
        tracing_subscriber::registry().with(directives).with(layer).try_init()
    };
    match installed {
        Ok(()) => Subscriber::On { filter: filter.to_owned(), json },
        Err(e) => Subscriber::NotInstalled(format!("the process has a tracing subscriber already ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The global subscriber can be set once per process: the parsing paths are
    // tested without reaching it; installing is shown end to end
    // (__tests__/e2e/diagnostics.test.js, a host process of its own per case).
    #[test]
    fn off_and_bad_settings_install_nothing() {
        assert_eq!(install(&HostEnv::default()), Subscriber::Off);
        assert_eq!(install(&HostEnv::from_pairs([(FILTER_VAR, "  ")])), Subscriber::Off);
        let bad = install(&HostEnv::from_pairs([(FILTER_VAR, "claude_k8s=loud")]));
        assert!(matches!(&bad, Subscriber::NotInstalled(m) if m.starts_with("CLAUDE_K8S_LOG is not a filter")), "{bad:?}");
        let fmt = install(&HostEnv::from_pairs([(FILTER_VAR, "debug"), (FORMAT_VAR, "xml")]));
        assert_eq!(fmt, Subscriber::NotInstalled("CLAUDE_K8S_LOG_FORMAT is \"xml\"; it takes text or json".into()));
    }
}
