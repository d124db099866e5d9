//! napi-rs binding: the host's ctx in, callbacks, the result out. Nothing else.
//!
//! The package's JavaScript (`lib/execute.js`) normalises the ctx before it
//! reaches us: data fields arrive as one JSON string (so `undefined` in arrays,
//! `NaN`, functions, cycles and throwing getters are dealt with in JS, where a
//! failure is a rejected promise), and each callback arrives wrapped in an
//! `async` function, so it always returns a Promise whatever the host's
//! function does. Here a callback is a strong [`ThreadsafeFunction`] that we
//! call with `call_async_catch` (a sync throw never reaches
//! `uncaughtException`) and whose Promise we await before the next call.
//!
//! Invariant: no Rust panic unwinds into Node — every entry point runs the
//! core under `catch_unwind` and turns a panic into a rejection.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex};

use claude_k8s_core::host::{CancellationToken, Host, HostError, LogStream};
use futures::FutureExt;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use serde_json::Value;

/// The addon's tasks run on **one** tokio worker thread, not napi-rs'
/// default of one per core. A run is I/O: watches, a log stream, a few
/// requests; its CPU is the line pipeline (1.2–1.7 CPU-s per GiB, bench:
/// `throughput`), so one thread carries many runs. With a worker per core,
/// every log chunk the socket brings is a hand-off between hyper's
/// connection task and the follower on different threads, each a futex
/// wake: on the real node's 2 cores the 100 MiB throughput run went ~20 %
/// slower with two workers than with one, its workers took ~30 CPU-s per
/// GiB against 19–25, and the apiserver more CPU besides, as the wake-ups
/// take the cores they share (bench: `throughput`, README "Benchmarks").
/// Blocking work has tokio's blocking pool, as before.
///
/// `TOKIO_WORKER_THREADS` set in the host's environment keeps napi-rs'
/// default runtime, which reads it: the escape hatch, should one thread
/// ever be the limit.
#[napi_derive::module_init]
fn init() {
    if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return;
    }
    // If it cannot be built, napi-rs builds its default runtime instead.
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        create_custom_tokio_runtime(rt);
    }
}

/// A JS callback taking `A`, returning a Promise we await.
type Callback<A> = ThreadsafeFunction<A, Promise<()>, A, Status, false>;
type LogArgs = FnArgs<(String, LogChunk)>;

/// A log chunk in the form V8 turns into a JS string fastest, on the JS
/// thread — which is the host's event loop. ASCII goes as UTF-8: V8 checks
/// it and copies it into a one-byte string (~10 GiB/s). Anything else is
/// converted to UTF-16 here, on a tokio thread, and V8 only copies it: its
/// own UTF-8 decoding of non-ASCII text runs at ~140 MiB/s, 7 ms of the
/// host's event loop per MiB (bench: `crossing`).
pub enum LogChunk {
    /// ASCII (or, for the bench's comparison only, text V8 is to decode).
    Utf8(String),
    Utf16(Utf16String),
}

impl LogChunk {
    fn new(chunk: String) -> Self {
        if chunk.is_ascii() {
            return LogChunk::Utf8(chunk);
        }
        // UTF-16 never needs more units than the UTF-8 has bytes.
        let mut units = vec![0u16; chunk.len()];
        let n = encoding_rs::mem::convert_str_to_utf16(&chunk, &mut units);
        units.truncate(n);
        LogChunk::Utf16(Utf16String::from(units))
    }
}

impl ToNapiValue for LogChunk {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        // SAFETY: called by napi-rs on the JS thread with its live env, as
        // for the String or Utf16String this delegates to.
        unsafe {
            match val {
                LogChunk::Utf8(s) => String::to_napi_value(env, s),
                LogChunk::Utf16(s) => Utf16String::to_napi_value(env, s),
            }
        }
    }
}

struct JsHost {
    on_log: Callback<LogArgs>,
    on_meta: Option<Callback<Value>>,
    cancel: CancellationToken,
}

/// Cancellation tokens by id: JS cannot hold a Rust value across the async
/// call, so it asks for an id first (`createCancelToken`), passes it to
/// `executeNative`, and cancels by id when the host's AbortSignal fires.
/// An entry lives until its `executeNative` settles.
static CANCELS: LazyLock<Mutex<HashMap<u32, CancellationToken>>> = LazyLock::new(Default::default);
static NEXT_CANCEL: AtomicU32 = AtomicU32::new(1);

fn cancels() -> std::sync::MutexGuard<'static, HashMap<u32, CancellationToken>> {
    CANCELS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A new cancellation id for one `executeNative` call.
#[napi(js_name = "createCancelToken")]
pub fn create_cancel_token() -> u32 {
    let id = NEXT_CANCEL.fetch_add(1, Ordering::Relaxed);
    cancels().insert(id, CancellationToken::new());
    id
}

/// Cancels the run holding `id` (the Job is deleted, the result is `cancelled`).
/// Unknown or finished ids are ignored.
#[napi(js_name = "cancelExecution")]
pub fn cancel_execution(id: u32) {
    if let Some(token) = cancels().get(&id) {
        token.cancel();
    }
}

async fn call<A: 'static + JsValuesTupleIntoVec>(
    callback: &'static str,
    f: &Callback<A>,
    arg: A,
) -> std::result::Result<(), HostError> {
    let to_host = |e: napi::Error| HostError { callback, message: e.reason.clone() };
    let promise = f.call_async_catch(arg).await.map_err(to_host)?;
    promise.await.map_err(to_host)
}

impl Host for JsHost {
    async fn on_log(&self, stream: LogStream, chunk: String) -> std::result::Result<(), HostError> {
        call("onLog", &self.on_log, (stream.as_str().to_owned(), LogChunk::new(chunk)).into()).await
    }

    async fn on_meta(&self, meta: Value) -> std::result::Result<(), HostError> {
        match &self.on_meta {
            Some(f) => call("onMeta", f, meta).await,
            None => Ok(()),
        }
    }

    fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// Runs `fut`, turning a panic into a rejection instead of unwinding into Node.
async fn guarded<T>(what: &str, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(Error::new(Status::GenericFailure, format!("[INTERNAL] {what} panicked: {detail}")))
        }
    }
}

fn parse_ctx(ctx_json: &str) -> Result<Value> {
    serde_json::from_str(ctx_json)
        .map_err(|e| Error::new(Status::InvalidArg, format!("[INVALID_CTX] ctx is not valid JSON: {e}")))
}

/// Low-level entry used by `lib/execute.js`; call the package's `execute(ctx)` instead.
#[napi(js_name = "executeNative")]
pub async fn execute_native(
    ctx_json: String,
    #[napi(ts_arg_type = "(stream: 'stdout' | 'stderr', chunk: string) => Promise<void>")] on_log: Callback<LogArgs>,
    #[napi(ts_arg_type = "((meta: Record<string, unknown>) => Promise<void>) | undefined | null")] on_meta: Option<
        Callback<Value>,
    >,
    cancel_id: Option<u32>,
) -> Result<Value> {
    let cancel = cancel_id.and_then(|id| cancels().get(&id).cloned()).unwrap_or_default();
    let outcome = guarded("execute", async move {
        let ctx = parse_ctx(&ctx_json)?;
        let host = std::sync::Arc::new(JsHost { on_log, on_meta, cancel });
        let outcome = claude_k8s_core::run::execute(&ctx, host).await;
        match outcome {
            Ok(result) => serde_json::to_value(result)
                .map_err(|e| Error::new(Status::GenericFailure, format!("[INTERNAL] result: {e}"))),
            Err(e) => Err(Error::new(Status::GenericFailure, e.to_string())),
        }
    })
    .await;
    if let Some(id) = cancel_id {
        cancels().remove(&id);
    }
    outcome
}

/// The most one [`bench_log_crossing`] call may copy (its chunks are built up front).
const CROSSING_MAX_BYTES: u64 = 1 << 30;

/// Diagnostics for `npm run bench`, not part of the package's API: hands
/// `onLog` `calls` chunks of `chunkBytes` bytes of stream-json lines through
/// exactly the path a run's log takes ([`JsHost::on_log`]: the same
/// threadsafe function, each Promise awaited before the next call) and
/// resolves with the wall-clock nanoseconds the calls took. The chunks are
/// built before the clock starts, so the figure is the crossing alone:
/// queueing onto the JS thread, `String` → JS string, the call, the Promise.
/// `text` is `"ascii"`, `"nonAscii"` (multi-byte characters in every line:
/// the chunk crosses as UTF-16, see [`LogChunk`]) or `"nonAsciiUtf8"` (the
/// same text handed to V8 as UTF-8 to decode, as before `LogChunk`: the
/// comparison that justifies it).
#[napi(js_name = "benchLogCrossing")]
pub async fn bench_log_crossing(
    #[napi(ts_arg_type = "(stream: 'stdout' | 'stderr', chunk: string) => Promise<void>")] on_log: Callback<LogArgs>,
    chunk_bytes: u32,
    calls: u32,
    #[napi(ts_arg_type = "'ascii' | 'nonAscii' | 'nonAsciiUtf8'")] text: String,
) -> Result<f64> {
    guarded("benchLogCrossing", async move {
        if chunk_bytes == 0 || calls == 0 || u64::from(chunk_bytes) * u64::from(calls) > CROSSING_MAX_BYTES {
            return Err(Error::new(
                Status::InvalidArg,
                format!("[INVALID_ARG] chunkBytes × calls must be 1 B … 1 GiB, got {chunk_bytes} × {calls}"),
            ));
        }
        let as_utf8 = match text.as_str() {
            "ascii" | "nonAscii" => false,
            "nonAsciiUtf8" => true,
            other => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("[INVALID_ARG] text must be \"ascii\", \"nonAscii\" or \"nonAsciiUtf8\", got {other:?}"),
                ));
            }
        };
        let chunk = crossing_chunk(chunk_bytes as usize, text != "ascii");
        let chunks: Vec<String> = (0..calls).map(|_| chunk.clone()).collect();
        let host = JsHost { on_log, on_meta: None, cancel: CancellationToken::new() };
        let failed = |e: HostError| Error::new(Status::GenericFailure, e.to_string());
        let start = std::time::Instant::now();
        for c in chunks {
            if as_utf8 {
                call("onLog", &host.on_log, ("stdout".to_owned(), LogChunk::Utf8(c)).into()).await.map_err(failed)?;
            } else {
                host.on_log(LogStream::Stdout, c).await.map_err(failed)?;
            }
        }
        Ok(start.elapsed().as_nanos() as f64)
    })
    .await
}

/// `len` bytes of assistant lines, newline-terminated where the length allows.
fn crossing_chunk(len: usize, non_ascii: bool) -> String {
    let text = if non_ascii { "Grüße, ünïcödé — 日本語のテキスト ✓ 🎉 " } else { "plain ASCII assistant text of a turn " };
    let mut out = String::with_capacity(len + 256);
    let mut n = 0u64;
    while out.len() < len {
        n += 1;
        out.push_str(&format!(
            "{{\"type\":\"assistant\",\"message\":{{\"id\":\"msg_{n}\",\"content\":[{{\"type\":\"text\",\"text\":\"{}\"}}]}}}}\n",
            text.repeat(4)
        ));
    }
    // Cut back to `len` on a character boundary; the last line may lose its end.
    let mut cut = len.min(out.len());
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out
}

/// Low-level entry used by `lib/environment.js`; call `testEnvironment(ctx)` instead.
#[napi(js_name = "testEnvironmentNative")]
pub async fn test_environment_native(ctx_json: String) -> Result<Value> {
    guarded("testEnvironment", async move {
        let ctx = parse_ctx(&ctx_json)?;
        let env = claude_k8s_core::config::HostEnv::from_process();
        let report = claude_k8s_core::env_test::test_environment(&ctx, &env).await;
        serde_json::to_value(report).map_err(|e| Error::new(Status::GenericFailure, format!("[INTERNAL] result: {e}")))
    })
    .await
}

fn skills(ctx_json: &str, desired_json: Option<&str>) -> Result<Value> {
    let ctx = parse_ctx(ctx_json)?;
    let config = claude_k8s_core::ctx::as_object(ctx.get("config").unwrap_or(&Value::Null));
    let desired: Option<Vec<String>> = match desired_json {
        Some(d) => match parse_ctx(d)? {
            Value::Array(a) => Some(a.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()),
            _ => None,
        },
        None => None,
    };
    let snapshot = claude_k8s_core::bundle::skills_snapshot(
        &config,
        desired.as_deref(),
        std::path::Path::new("/paperclip/.claude/skills"),
    );
    serde_json::to_value(snapshot).map_err(|e| Error::new(Status::GenericFailure, format!("[INTERNAL] result: {e}")))
}

/// Low-level entry used by `lib/environment.js`; call `listSkills(ctx)` instead.
#[napi(js_name = "listSkillsNative")]
pub async fn list_skills_native(ctx_json: String) -> Result<Value> {
    guarded("listSkills", async move { skills(&ctx_json, None) }).await
}

/// Low-level entry used by `lib/environment.js`; call `syncSkills(ctx, desired)` instead.
#[napi(js_name = "syncSkillsNative")]
pub async fn sync_skills_native(ctx_json: String, desired_json: String) -> Result<Value> {
    guarded("syncSkills", async move { skills(&ctx_json, Some(&desired_json)) }).await
}
