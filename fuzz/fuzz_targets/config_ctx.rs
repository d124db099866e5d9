//! The readers of what the host hands `execute`: the ctx as JSON and the
//! adapterConfig in it (any shape, any type in any field). No input may
//! panic; bad config is an error value.
#![no_main]

use claude_k8s_core::config::AdapterConfig;
use claude_k8s_core::ctx::{RunContext, as_object};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let rc = RunContext::from_json(&v);
    let _ = rc.session_id();
    let _ = rc.task_id();
    let _ = AdapterConfig::from_ctx(&rc);
    let _ = AdapterConfig::from_map(&as_object(&v));
    if let Some(cfg) = v.get("config") {
        let _ = AdapterConfig::from_map(&as_object(cfg));
    }
});
