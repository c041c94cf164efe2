//! The `plugin` detector: an external process (a script or an executable)
//! that speaks JSON lines on its stdin and stdout. Any detector entry with a
//! `plugin:` key is one, whatever its `type:` (e.g.
//! `type: custom_behavioral`, `plugin: /etc/sentinel/plugins/custom_detector.py`);
//! its `config:` block (with the entry's other extra keys) goes to the
//! plugin as is, and the plugin validates it.
//!
//! A `.py` program runs with `python3` (or the configured `interpreter`,
//! which runs any program); anything else is executed directly. A relative
//! path is relative to Sentinel's working directory.
//!
//! The plugin does not inherit Sentinel's environment (in the server it
//! holds the admin key and the database URL): it starts with an empty one,
//! plus the variables named in `env` passed through (default `[PATH]`),
//! the values of `env_vars`, and `PYTHONUNBUFFERED=1`.
//!
//! # Protocol
//!
//! This is the contract plugin authors follow (`examples/plugins/` at the
//! repository root has a complete plugin and an example session). Every
//! message is one JSON object on one line (UTF-8, `\n`-terminated, at most
//! 1 MiB); the plugin must flush stdout after every line and must write
//! nothing else to it (logs go to stderr, whose last lines Sentinel keeps for
//! [`PluginDetector::last_error`]).
//!
//! 1. Sentinel starts the process and writes
//!    `{"type":"init","detector_id":"…","config":{…}}`. The plugin answers
//!    `{"type":"ready"}`, or `{"type":"error","message":"…"}` when it refuses
//!    the config (the detector then fails to build, with that message).
//! 2. For each event Sentinel writes `{"type":"event","event":{…}}` (the
//!    [`TelemetryEvent`] as ingested) and reads exactly one line back:
//!    `{"type":"results","results":[…]}`, each result being a
//!    `DetectorResult`:
//!    `{"severity":"warning","score":0.85,"title":"…","description":"…",
//!    "affected_entity":{"type":"user","id":"u1","name":"…"},"metrics":{…}}`.
//!    - `severity` (`info`, `warning`, `critical`) defaults to the
//!      detector's configured severity; `score` (required) is clamped to
//!      `[0, 1]`; `title` (required) must not be empty; `description` is
//!      optional.
//!    - `affected_entity.type` is one of `application`, `tenant`, `user`,
//!      `model`, `session`, `ip`; `id` is 1-256 bytes without control
//!      characters; `name` is ignored.
//!    - `metrics` (optional): the numbers `baseline`, `observed`, `deviation`
//!      and `threshold` become the finding's fields of those names; every
//!      other metric is appended to the description as `(key=value, …)`,
//!      sorted by key.
//!    - Other keys (such as `anomaly_id`, `detector_id`) are ignored; the
//!      finding's window, event, application and tenant come from the event.
//!    - At most 100 results per event.
//!
//!    The plugin may instead answer `{"type":"error","message":"…"}` for an
//!    event it cannot handle: that event has no results and the error is
//!    counted, but the process is kept.
//! 3. When Sentinel closes the plugin's stdin the plugin should exit; it is
//!    killed anyway when the detector is dropped.
//!
//! # Failures
//!
//! An answer that is not one of the above (not JSON, an unknown `type`, an
//! invalid result, a line longer than 1 MiB, a line nobody asked for), no
//! answer within `timeout_ms`, or a process that exited: the event's results
//! are dropped, the error is counted ([`PluginDetector::errors`],
//! [`PluginDetector::last_error`]: there is no logger in this crate), and the
//! process is killed and reaped. The next event restarts it, at most
//! `max_restarts` times in any 10 minutes of the pipeline's clock (the `now`
//! passed to [`Detector::observe`], never the system clock); past that the
//! detector skips events until the oldest restart leaves the window.
//!
//! `observe` never waits longer than `timeout_ms` for the process: its
//! stdin is written by a writer thread and its stdout read by a reader
//! thread that forwards lines over a bounded channel, waited on with
//! `recv_timeout`; a third thread drains stderr. A restarted plugin gets up to
//! `start_timeout_ms` to answer `ready`: events that arrive while it starts
//! (past each one's `timeout_ms`) are skipped, not errors. Only the first
//! start, when the detector is built, blocks until `ready` (or
//! `start_timeout_ms`).
//!
//! Memory is bounded: at most two answer lines (1 MiB each) wait in the
//! channel, the event being written, and the last 10 stderr lines (1 KiB
//! each). Processes the plugin starts itself are its own business: only the
//! plugin process is killed.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::detector::{Detector, DetectorKind, Entity, EntityKind, Finding, Millis, Severity};
use crate::event::TelemetryEvent;

/// Longest line read from a plugin's stdout, in bytes (without the newline).
pub const MAX_LINE: usize = 1 << 20;
/// Most results accepted in one answer.
pub const MAX_RESULTS: usize = 100;
/// The window `max_restarts` counts restarts in.
pub const RESTART_WINDOW: Millis = 10 * 60_000;
/// Stderr lines kept.
const STDERR_LINES: usize = 10;
/// Longest stderr line kept (the rest of the line is skipped).
const STDERR_LINE: usize = 1024;
/// Answer lines waiting in the channel at most (the reader blocks beyond).
const CHANNEL_LINES: usize = 2;
/// How much of an unexpected line an error message quotes.
const EXCERPT: usize = 200;

/// How the plugin process is run: the spec keys `timeout_ms`,
/// `max_restarts`, `start_timeout_ms`, `interpreter`, `env` and
/// `env_vars`, written beside `plugin:` (not passed to the plugin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// How long to wait for the answer to one event, in milliseconds (default 200).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Restarts allowed in any 10 minutes (default 5); 0 never restarts.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// How long a starting plugin may take to answer `ready`, in
    /// milliseconds (default 5000).
    #[serde(default = "default_start_timeout_ms")]
    pub start_timeout_ms: u64,
    /// The program that runs the plugin (default: `python3` for a `.py`
    /// program, none otherwise). One program name or path, no arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Variables passed through from Sentinel's environment, by name
    /// (default `[PATH]`; written out, the list replaces the default). No
    /// other variable of Sentinel's reaches the plugin.
    #[serde(default = "default_env")]
    pub env: Vec<String>,
    /// Variables set for the plugin, by name; they win over `env`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_vars: BTreeMap<String, String>,
}

fn default_env() -> Vec<String> {
    vec!["PATH".to_owned()]
}

/// Whether `name` can be an environment variable's name.
fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

fn default_timeout_ms() -> u64 {
    200
}

fn default_max_restarts() -> u32 {
    5
}

fn default_start_timeout_ms() -> u64 {
    5000
}

impl Default for PluginSettings {
    fn default() -> PluginSettings {
        PluginSettings {
            timeout_ms: default_timeout_ms(),
            max_restarts: default_max_restarts(),
            start_timeout_ms: default_start_timeout_ms(),
            interpreter: None,
            env: default_env(),
            env_vars: BTreeMap::new(),
        }
    }
}

impl PluginSettings {
    /// The detector-entry keys that are settings.
    pub const KEYS: &'static [&'static str] =
        &["timeout_ms", "max_restarts", "start_timeout_ms", "interpreter", "env", "env_vars"];

    /// Reads the settings among a detector entry's keys (others are
    /// ignored). The error is the offending key and what is wrong.
    pub fn from_entry(entry: &serde_json::Map<String, serde_json::Value>) -> Result<PluginSettings, (String, String)> {
        let mut s = PluginSettings::default();
        let millis = |k: &str, v: &serde_json::Value| {
            v.as_u64()
                .filter(|ms| (1..=3_600_000).contains(ms))
                .ok_or_else(|| (k.to_owned(), "expected milliseconds, an integer in 1..=3600000".to_owned()))
        };
        for (k, v) in entry.iter().filter(|(k, _)| PluginSettings::KEYS.contains(&k.as_str())) {
            match k.as_str() {
                "timeout_ms" => s.timeout_ms = millis(k, v)?,
                "start_timeout_ms" => s.start_timeout_ms = millis(k, v)?,
                "max_restarts" => {
                    s.max_restarts = v
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| (k.clone(), "expected an integer ≥ 0".to_owned()))?;
                }
                "env" => {
                    let bad = || (k.clone(), "expected a list of variable names".to_owned());
                    let list = v.as_array().ok_or_else(bad)?;
                    s.env = list
                        .iter()
                        .map(|n| n.as_str().filter(|n| valid_env_name(n)).map(str::to_owned).ok_or_else(bad))
                        .collect::<Result<_, _>>()?;
                }
                "env_vars" => {
                    let map = v
                        .as_object()
                        .ok_or_else(|| (k.clone(), "expected a mapping of names to strings".to_owned()))?;
                    s.env_vars = BTreeMap::new();
                    for (name, value) in map {
                        if !valid_env_name(name) {
                            return Err((format!("{k}.{name}"), "not a variable name".to_owned()));
                        }
                        let value = value
                            .as_str()
                            .filter(|x| !x.contains('\0'))
                            .ok_or_else(|| (format!("{k}.{name}"), "expected a string without NUL".to_owned()))?;
                        s.env_vars.insert(name.clone(), value.to_owned());
                    }
                }
                _ => {
                    let i = v.as_str().filter(|i| !i.trim().is_empty());
                    s.interpreter =
                        Some(i.ok_or_else(|| (k.clone(), "expected a program name or path".to_owned()))?.to_owned());
                }
            }
        }
        Ok(s)
    }
}

/// What Sentinel writes to the plugin.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Request<'a> {
    Init { detector_id: &'a str, config: &'a serde_json::Value },
    Event { event: &'a TelemetryEvent },
}

/// What the plugin writes back.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply {
    Ready,
    Error {
        #[serde(default)]
        message: Option<String>,
    },
    Results {
        results: Vec<PluginResult>,
    },
}

/// One result (a `DetectorResult` in the protocol above).
#[derive(Deserialize)]
struct PluginResult {
    #[serde(default)]
    severity: Option<Severity>,
    score: f64,
    title: String,
    #[serde(default)]
    description: Option<String>,
    affected_entity: PluginEntity,
    #[serde(default)]
    metrics: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct PluginEntity {
    #[serde(rename = "type")]
    kind: EntityKind,
    id: String,
}

/// A line from the reader thread, or why there are no more.
#[derive(Debug)]
enum Line {
    Text(String),
    End(String),
}

/// The last stderr lines of one process.
type Tail = Arc<Mutex<VecDeque<String>>>;

fn tail_text(tail: &Tail) -> String {
    let lines = tail.lock().unwrap_or_else(|e| e.into_inner());
    lines.iter().map(String::as_str).collect::<Vec<_>>().join(" | ")
}

/// A running plugin process and its threads' ends.
#[derive(Debug)]
struct Process {
    child: Child,
    /// To the writer thread (dropping it closes the plugin's stdin).
    stdin: Option<Sender<Vec<u8>>>,
    /// From the reader thread.
    lines: Receiver<Line>,
    stderr: Tail,
    /// Disconnects when the stderr thread is done.
    stderr_done: Receiver<()>,
    /// While no `ready` came: the deadline for it.
    starting: Option<Instant>,
}

impl Process {
    fn spawn(cmd: &mut Command, detector_id: &str, init: Vec<u8>, start_timeout: Duration) -> Result<Process, String> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONUNBUFFERED", "1")
            .spawn()
            .map_err(|e| format!("cannot start: {e}"))?;
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            kill(&mut child);
            return Err("cannot start: no pipes".to_owned());
        };
        let (to_stdin, from_main) = mpsc::channel::<Vec<u8>>();
        let (to_main, lines) = mpsc::sync_channel(CHANNEL_LINES);
        let tail: Tail = Arc::default();
        let (done, stderr_done) = mpsc::channel();
        let id: String = detector_id.chars().filter(|&c| c != '\0').collect();
        let name = |what: &str| format!("plugin-{id}-{what}");
        let mut process =
            Process { child, stdin: Some(to_stdin), lines, stderr: tail.clone(), stderr_done, starting: None };
        let started = thread::Builder::new()
            .name(name("stdin"))
            .spawn(move || write_stdin(stdin, from_main))
            .and_then(|_| thread::Builder::new().name(name("stdout")).spawn(move || read_stdout(stdout, to_main)))
            .and_then(|_| thread::Builder::new().name(name("stderr")).spawn(move || drain_stderr(stderr, tail, done)));
        // On error `process` is dropped, which kills the child; the threads
        // started so far end with its pipes.
        started.map_err(|e| format!("cannot start a thread: {e}"))?;
        process.send(init)?;
        process.starting = Some(Instant::now() + start_timeout);
        Ok(process)
    }

    fn send(&mut self, line: Vec<u8>) -> Result<(), String> {
        match &self.stdin {
            Some(tx) if tx.send(line).is_ok() => Ok(()),
            _ => Err("its stdin is closed".to_owned()),
        }
    }

    /// The next line, waiting until `deadline`; `None` on timeout.
    fn recv(&mut self, deadline: Instant) -> Result<Option<String>, String> {
        match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Line::Text(l)) => Ok(Some(l)),
            Ok(Line::End(why)) => Err(why),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err("its stdout is closed".to_owned()),
        }
    }

    /// Waits until `deadline` for the answer to `init`: true when ready,
    /// false when none came yet.
    fn await_ready(&mut self, deadline: Instant) -> Result<bool, String> {
        let Some(line) = self.recv(deadline)? else { return Ok(false) };
        match serde_json::from_str::<Reply>(&line) {
            Ok(Reply::Ready) => {
                self.starting = None;
                Ok(true)
            }
            Ok(Reply::Error { message }) => {
                Err(format!("it refused its config: {}", message.as_deref().unwrap_or("(no message)")))
            }
            Ok(_) => Err(format!("expected a ready answer to init, got {}", excerpt(&line))),
            Err(e) => Err(format!("invalid answer to init ({e}): {}", excerpt(&line))),
        }
    }

    /// Sends the event and reads its answer: the results, or the message of
    /// an `error` answer.
    fn exchange(
        &mut self,
        event: &TelemetryEvent,
        deadline: Instant,
        timeout_ms: u64,
    ) -> Result<Result<Vec<PluginResult>, String>, String> {
        match self.lines.try_recv() {
            Ok(Line::Text(l)) => return Err(format!("it wrote a line nobody asked for: {}", excerpt(&l))),
            Ok(Line::End(why)) => return Err(why),
            Err(TryRecvError::Disconnected) => return Err("its stdout is closed".to_owned()),
            Err(TryRecvError::Empty) => {}
        }
        self.send(encode(&Request::Event { event })?)?;
        let Some(line) = self.recv(deadline)? else { return Err(format!("no answer within {timeout_ms} ms")) };
        match serde_json::from_str::<Reply>(&line) {
            Ok(Reply::Results { results }) if results.len() > MAX_RESULTS => {
                Err(format!("{} results, more than {MAX_RESULTS}", results.len()))
            }
            Ok(Reply::Results { results }) => Ok(Ok(results)),
            Ok(Reply::Error { message }) => Ok(Err(message.unwrap_or_else(|| "(no message)".to_owned()))),
            Ok(Reply::Ready) => Err("expected results, got ready".to_owned()),
            Err(e) => Err(format!("invalid answer ({e}): {}", excerpt(&line))),
        }
    }

    /// Kills and reaps the process; says how it ended when it had exited on its own.
    fn stop(&mut self) -> Option<String> {
        self.stdin = None;
        let exited = self.child.try_wait().ok().flatten();
        kill(&mut self.child);
        exited.map(|s| format!("it exited ({s})"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kill(child: &mut Child) {
    // Fails only when it already exited; `wait` reaps it either way.
    let _ = child.kill();
    let _ = child.wait();
}

fn encode(r: &Request<'_>) -> Result<Vec<u8>, String> {
    let mut v = serde_json::to_vec(r).map_err(|e| format!("cannot encode the message: {e}"))?;
    v.push(b'\n');
    Ok(v)
}

/// The start of `s`, for error messages.
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT) {
        Some((i, _)) => format!("{:?}…", &s[..i]),
        None => format!("{s:?}"),
    }
}

fn write_stdin(mut stdin: std::process::ChildStdin, lines: Receiver<Vec<u8>>) {
    for line in lines {
        if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
            return;
        }
    }
}

/// How a capped line read ended.
#[derive(Debug, PartialEq, Eq)]
enum Capped {
    Line,
    TooLong,
    Eof,
}

/// Reads one line into `buf` without its `\n` (or `\r\n`). Stops at `cap`
/// bytes with [`Capped::TooLong`], the rest of the line unread.
fn read_line_capped(r: &mut impl BufRead, cap: usize, buf: &mut Vec<u8>) -> io::Result<Capped> {
    buf.clear();
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(if any { Capped::Line } else { Capped::Eof });
        }
        any = true;
        let (part, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if buf.len() + part.len() > cap {
            let room = cap - buf.len();
            buf.extend_from_slice(&part[..room]);
            r.consume(room);
            return Ok(Capped::TooLong);
        }
        buf.extend_from_slice(part);
        r.consume(used);
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Capped::Line);
        }
    }
}

fn read_stdout(out: ChildStdout, tx: SyncSender<Line>) {
    let mut r = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        let line = match read_line_capped(&mut r, MAX_LINE, &mut buf) {
            Ok(Capped::Line) => match String::from_utf8(std::mem::take(&mut buf)) {
                Ok(s) => Line::Text(s),
                Err(_) => Line::End("it wrote a line that is not UTF-8".to_owned()),
            },
            Ok(Capped::TooLong) => Line::End(format!("it wrote a line longer than {MAX_LINE} bytes")),
            Ok(Capped::Eof) => Line::End("it closed its stdout".to_owned()),
            Err(e) => Line::End(format!("reading its stdout: {e}")),
        };
        let end = matches!(line, Line::End(_));
        if tx.send(line).is_err() || end {
            return;
        }
    }
}

fn drain_stderr(err: ChildStderr, tail: Tail, _done: Sender<()>) {
    let mut r = BufReader::new(err);
    let mut buf = Vec::new();
    loop {
        match read_line_capped(&mut r, STDERR_LINE, &mut buf) {
            Ok(Capped::Eof) | Err(_) => return,
            Ok(Capped::Line) => {}
            Ok(Capped::TooLong) => {
                // Skip the rest of the line.
                let mut rest = Vec::new();
                while let Ok(Capped::TooLong) = read_line_capped(&mut r, STDERR_LINE, &mut rest) {}
            }
        }
        let s = String::from_utf8_lossy(&buf);
        let s = s.trim_end();
        if !s.is_empty() {
            let mut lines = tail.lock().unwrap_or_else(|e| e.into_inner());
            if lines.len() == STDERR_LINES {
                lines.pop_front();
            }
            lines.push_back(s.to_owned());
        }
    }
}

/// The `plugin` detector: see the module documentation.
#[derive(Debug)]
pub struct PluginDetector {
    id: String,
    severity: Severity,
    program: String,
    /// The interpreter (if any) and the program path it runs.
    command: (Option<String>, PathBuf),
    settings: PluginSettings,
    /// The encoded init line.
    init: Vec<u8>,
    process: Option<Process>,
    /// When recent restarts happened (pipeline time), oldest first.
    restarts: VecDeque<Millis>,
    restarts_total: u64,
    errors: u64,
    skipped: u64,
    /// The last error and the stderr tail of the process it happened in.
    last_error: Option<(String, Tail)>,
}

impl PluginDetector {
    /// Starts `program` and sends it `config`; fails when the program does
    /// not exist, cannot start, or does not answer `ready` within
    /// `settings.start_timeout_ms` (with the plugin's message when it
    /// refused the config).
    pub fn new(
        id: &str,
        severity: Severity,
        program: &str,
        config: serde_json::Value,
        settings: PluginSettings,
    ) -> Result<PluginDetector, String> {
        if settings.timeout_ms == 0 || settings.start_timeout_ms == 0 {
            return Err("timeout_ms and start_timeout_ms must be at least 1".to_owned());
        }
        if let Some(n) = settings.env.iter().chain(settings.env_vars.keys()).find(|n| !valid_env_name(n)) {
            return Err(format!("{n:?} is not an environment variable name"));
        }
        let path = Path::new(program);
        if program.is_empty() || !path.is_file() {
            return Err(format!("plugin program {program:?} not found (or not a file)"));
        }
        let interpreter = settings
            .interpreter
            .clone()
            .or_else(|| path.extension().is_some_and(|x| x == "py").then(|| "python3".to_owned()));
        // A bare file name would be looked up in PATH: run the file we checked.
        let path =
            if path.is_relative() && interpreter.is_none() { Path::new(".").join(path) } else { path.to_path_buf() };
        let init = encode(&Request::Init { detector_id: id, config: &config })?;
        let mut d = PluginDetector {
            id: id.to_owned(),
            severity,
            program: program.to_owned(),
            command: (interpreter, path),
            settings,
            init,
            process: None,
            restarts: VecDeque::new(),
            restarts_total: 0,
            errors: 0,
            skipped: 0,
            last_error: None,
        };
        let mut p = d.spawn().map_err(|e| format!("plugin {program:?}: {e}"))?;
        let deadline = p.starting.unwrap_or_else(Instant::now);
        match p.await_ready(deadline) {
            Ok(true) => {
                d.process = Some(p);
                Ok(d)
            }
            Ok(false) => Err(d.build_error(p, format!("no ready answer within {} ms", d.settings.start_timeout_ms))),
            Err(e) => Err(d.build_error(p, e)),
        }
    }

    fn spawn(&self) -> Result<Process, String> {
        let mut cmd = match &self.command {
            (Some(interpreter), path) => {
                let mut c = Command::new(interpreter);
                c.arg(path);
                c
            }
            (None, path) => Command::new(path),
        };
        cmd.env_clear();
        for name in &self.settings.env {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        cmd.envs(&self.settings.env_vars);
        Process::spawn(&mut cmd, &self.id, self.init.clone(), Duration::from_millis(self.settings.start_timeout_ms))
    }

    /// The error of a failed first start, with how the process ended and
    /// its last stderr lines (waiting briefly for them).
    fn build_error(&self, mut p: Process, e: String) -> String {
        let exited = p.stop();
        let _ = p.stderr_done.recv_timeout(Duration::from_millis(500));
        let mut msg = format!("plugin {:?}: {e}", self.program);
        if let Some(x) = exited {
            msg.push_str(&format!("; {x}"));
        }
        let tail = tail_text(&p.stderr);
        if !tail.is_empty() {
            msg.push_str(&format!("; stderr: {tail}"));
        }
        msg
    }

    /// The program as configured.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Errors so far: failed exchanges (each killed the process), failed
    /// restarts, and `error` answers (which did not).
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Restarts so far (the first start not counted).
    pub fn restarts(&self) -> u64 {
        self.restarts_total
    }

    /// Events skipped because the plugin was still starting or restarts were
    /// exhausted.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The last error, with the last lines the failing process wrote to its
    /// stderr (as far as they were read).
    pub fn last_error(&self) -> Option<String> {
        let (msg, tail) = self.last_error.as_ref()?;
        let tail = tail_text(tail);
        Some(if tail.is_empty() { msg.clone() } else { format!("{msg}; stderr: {tail}") })
    }

    /// The plugin process id, while one runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.child.id())
    }

    /// Counts an error; `kill` also stops the process (the next event restarts it).
    fn error(&mut self, msg: String, kill: bool) {
        self.errors += 1;
        let mut msg = format!("plugin {:?}: {msg}", self.program);
        let tail = match self.process.as_mut() {
            Some(p) if kill => {
                if let Some(x) = p.stop() {
                    msg.push_str(&format!("; {x}"));
                }
                self.process.take().map(|p| p.stderr.clone())
            }
            Some(p) => Some(p.stderr.clone()),
            None => None,
        };
        self.last_error = Some((msg, tail.unwrap_or_default()));
    }

    /// Starts the process again unless `max_restarts` were used in the last
    /// 10 minutes; true when one runs.
    fn restart(&mut self, now: Millis) -> bool {
        while self.restarts.front().is_some_and(|&t| now.saturating_sub(t) >= RESTART_WINDOW) {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= self.settings.max_restarts as usize {
            return false;
        }
        self.restarts.push_back(now);
        self.restarts_total += 1;
        match self.spawn() {
            Ok(p) => {
                self.process = Some(p);
                true
            }
            Err(e) => {
                self.error(e, true);
                false
            }
        }
    }

    /// Turns one result into a finding about `e`.
    fn finding(&self, r: PluginResult, e: &TelemetryEvent) -> Result<Finding, String> {
        if !r.score.is_finite() {
            return Err("a result's score is not a finite number".to_owned());
        }
        if r.title.trim().is_empty() {
            return Err("a result has an empty title".to_owned());
        }
        let id = r.affected_entity.id;
        if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
            return Err(format!("affected_entity.id {} must be 1-256 bytes without control characters", excerpt(&id)));
        }
        let entity = Entity::new(r.affected_entity.kind, id);
        let mut f = Finding::from_event(e, entity, r.severity.unwrap_or(self.severity), r.score, r.title);
        f.description = r.description.unwrap_or_default();
        let mut rest = Vec::new();
        for (k, v) in r.metrics.unwrap_or_default() {
            let slot = match k.as_str() {
                "baseline" => &mut f.baseline,
                "observed" => &mut f.observed,
                "deviation" => &mut f.deviation,
                "threshold" => &mut f.threshold,
                _ => {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        v => v.to_string(),
                    };
                    rest.push((k, v));
                    continue;
                }
            };
            match v.as_f64().filter(|x| x.is_finite()) {
                Some(x) => *slot = Some(x),
                None => rest.push((k, v.to_string())),
            }
        }
        if !rest.is_empty() {
            // Sorted by key, whatever order the map keeps.
            rest.sort();
            let rest = rest.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
            f.description = if f.description.is_empty() { rest } else { format!("{} ({rest})", f.description) };
        }
        Ok(f)
    }
}

impl Detector for PluginDetector {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> DetectorKind {
        DetectorKind::Plugin
    }

    fn observe(&mut self, event: &TelemetryEvent, now: Millis, out: &mut Vec<Finding>) {
        if self.process.is_none() && !self.restart(now) {
            self.skipped += 1;
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(self.settings.timeout_ms);
        let Some(p) = self.process.as_mut() else { return };
        if let Some(start_deadline) = p.starting {
            match p.await_ready(deadline.min(start_deadline)) {
                Ok(true) => {}
                Ok(false) if Instant::now() < start_deadline => {
                    self.skipped += 1;
                    return;
                }
                Ok(false) => {
                    let ms = self.settings.start_timeout_ms;
                    return self.error(format!("no ready answer within {ms} ms of a restart"), true);
                }
                Err(e) => return self.error(e, true),
            }
        }
        let at = |e: String| format!("event {:?}: {e}", event.event_id);
        match p.exchange(event, deadline, self.settings.timeout_ms) {
            Ok(Ok(results)) => {
                let findings = results.into_iter().map(|r| self.finding(r, event)).collect::<Result<Vec<_>, _>>();
                match findings {
                    Ok(f) => out.extend(f),
                    Err(e) => self.error(at(format!("invalid result: {e}")), true),
                }
            }
            Ok(Err(message)) => self.error(at(format!("it answered an error: {message}")), false),
            Err(e) => self.error(at(e), true),
        }
    }

    fn tracked(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::event;

    const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/plugins/model_switching.py");

    /// Answers init with ready, then runs `body` per event (`e` is the event).
    const PRELUDE: &str = "import json, sys, time\n\
        def say(m): print(json.dumps(m), flush=True)\n\
        for line in sys.stdin:\n    \
            m = json.loads(line)\n    \
            if m['type'] == 'init':\n        say({'type': 'ready'}); continue\n    \
            e = m['event']\n    ";

    /// One finding about the event's user.
    const FINDING: &str = "say({'type': 'results', 'results': [{'severity': 'info', 'score': 0.9, 'title': 'seen', \
        'affected_entity': {'type': 'user', 'id': e['metadata']['user_id']}}]})";

    /// A test plugin (`PRELUDE` + `body`) in a temp dir removed on drop.
    struct Script {
        dir: PathBuf,
        path: String,
    }

    impl Drop for Script {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn script(name: &str, body: &str) -> Script {
        let dir = std::env::temp_dir().join(format!("sentinel-plugin-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.py"));
        std::fs::write(&path, format!("{PRELUDE}{body}\n")).unwrap();
        Script { path: path.to_str().unwrap().to_owned(), dir }
    }

    fn settings(timeout_ms: u64, max_restarts: u32) -> PluginSettings {
        PluginSettings { timeout_ms, max_restarts, start_timeout_ms: 5000, ..Default::default() }
    }

    fn start(program: &str, timeout_ms: u64, max_restarts: u32) -> PluginDetector {
        PluginDetector::new("p", Severity::Warning, program, serde_json::json!({}), settings(timeout_ms, max_restarts))
            .unwrap()
    }

    fn ev(id: &str, ms: Millis, user: &str, model: &str) -> TelemetryEvent {
        let mut e = event(id, ms);
        e.metadata.user_id = Some(user.into());
        e.data.model = Some(model.into());
        e
    }

    fn observe(d: &mut PluginDetector, e: &TelemetryEvent, now: Millis) -> Vec<Finding> {
        let mut out = Vec::new();
        d.observe(e, now, &mut out);
        out
    }

    /// Observes until the (re)started plugin answers ready: a starting
    /// plugin's events are skipped, not errors.
    fn observe_started(d: &mut PluginDetector, e: &TelemetryEvent, now: Millis) -> Vec<Finding> {
        for _ in 0..50 {
            let skipped = d.skipped();
            let out = observe(d, e, now);
            if d.skipped() == skipped {
                return out;
            }
        }
        panic!("the plugin did not start: {:?}", d.last_error());
    }

    #[cfg(target_os = "linux")]
    fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn the_example_plugin_flags_a_user_cycling_through_models() {
        let config = serde_json::json!({"threshold": 0.5, "window_size": 4});
        let mut d = PluginDetector::new("switching", Severity::Warning, EXAMPLE, config, settings(2000, 1)).unwrap();
        assert_eq!((d.kind(), d.tracked(), d.id()), (DetectorKind::Plugin, 0, "switching"));
        let mut found = Vec::new();
        for i in 0..8 {
            let t = 1_000 * i;
            let cycling = observe(&mut d, &ev(&format!("c{i}"), t, "cycler", &format!("m{}", i % 4)), t);
            assert!(observe(&mut d, &ev(&format!("s{i}"), t, "steady", "gpt-4o"), t).is_empty());
            // Nothing until the window (4 events) is full.
            assert_eq!(cycling.len(), usize::from(i >= 3), "event {i}");
            found.extend(cycling);
        }
        assert_eq!((d.errors(), d.restarts(), d.skipped()), (0, 0, 0), "{:?}", d.last_error());
        let f = &found[0];
        assert_eq!(f.title, "Unusual behavioral pattern detected");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(f.entity, Entity::new(EntityKind::User, "cycler"));
        assert_eq!((f.observed, f.threshold, f.baseline, f.deviation), (Some(1.0), Some(0.5), None, None));
        assert!((f.score - 1.0 / 1.5).abs() < 1e-3, "{}", f.score);
        assert!(f.description.starts_with("User is rapidly switching between different models ("), "{}", f.description);
        assert!(f.description.contains("unique_models=4") && f.description.contains("window_size=4"));
        assert_eq!(
            (f.event_id.as_deref(), f.window_start, f.application_id.as_deref()),
            (Some("c3"), 3_000, Some("chatbot"))
        );
    }

    #[test]
    fn the_example_plugin_refuses_a_bad_config_at_build() {
        let bad = serde_json::json!({"threshold": 1.5, "window_size": 100});
        let e = PluginDetector::new("p", Severity::Warning, EXAMPLE, bad, settings(500, 1)).unwrap_err();
        assert!(e.contains("refused its config: threshold must be in [0, 1], got 1.5"), "{e}");
        let bad = serde_json::json!({"window_size": 1});
        let e = PluginDetector::new("p", Severity::Warning, EXAMPLE, bad, settings(500, 1)).unwrap_err();
        assert!(e.contains("window_size must be an integer >= 2"), "{e}");
    }

    /// What a plugin sees of its environment: one result whose description
    /// is `os.environ` as JSON.
    fn plugin_environment(settings: PluginSettings) -> serde_json::Map<String, serde_json::Value> {
        let body = "say({'type': 'results', 'results': [{'score': 1, 'title': 'env', \
                    'description': json.dumps(dict(__import__('os').environ)), \
                    'affected_entity': {'type': 'user', 'id': 'u'}}]})";
        let plugin = script("environ", body);
        let mut d = PluginDetector::new("p", Severity::Warning, &plugin.path, serde_json::json!({}), settings).unwrap();
        let found = observe(&mut d, &ev("e1", 0, "u", "m"), 0);
        assert_eq!(found.len(), 1, "{:?}", d.last_error());
        serde_json::from_str(&found[0].description).unwrap()
    }

    /// Set by [`a_plugin_gets_only_the_allowed_environment`] in the process it
    /// runs the check in, whose environment holds the server's variables.
    const ENV_CHECK: &str = "SENTINEL_PLUGIN_ENV_CHECK";

    #[test]
    fn a_plugin_gets_only_the_allowed_environment() {
        // The check runs in a child test process whose environment holds
        // what a server's does (this one's cannot be changed safely).
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "detectors::plugin::tests::plugin_environment_in_a_server_like_process", "--nocapture"])
            .env(ENV_CHECK, "1")
            .env("LLMSEC_ADMIN_KEY", "admin-key-0123456789")
            .env("LLMSEC_DATABASE_URL", "postgres://llmsec:secret@db/llmsec")
            .env("PLUGIN_HOME", "/srv/plugin")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the check ran: {text}");
    }

    #[test]
    fn plugin_environment_in_a_server_like_process() {
        if std::env::var_os(ENV_CHECK).is_none() {
            return;
        }
        assert!(std::env::var_os("LLMSEC_ADMIN_KEY").is_some());
        // The Python binary itself: a launcher script (pyenv's shim) would
        // add variables of its own.
        let python =
            std::process::Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
        let python = String::from_utf8(python.stdout).unwrap().trim().to_owned();
        let allow = |env: Vec<&str>, env_vars: &[(&str, &str)]| PluginSettings {
            interpreter: Some(python.clone()),
            env: env.into_iter().map(str::to_owned).collect(),
            env_vars: env_vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..settings(2000, 0)
        };
        // Python sets LC_CTYPE itself when it starts in the C locale (PEP 538).
        let names = |env: &serde_json::Map<String, serde_json::Value>| {
            let mut v: Vec<String> = env.keys().filter(|k| *k != "LC_CTYPE").cloned().collect();
            v.sort();
            v
        };
        // By default: PATH, and what makes Python flush its output.
        let env = plugin_environment(PluginSettings { interpreter: Some(python.clone()), ..settings(2000, 0) });
        assert_eq!(names(&env), ["PATH", "PYTHONUNBUFFERED"]);
        assert_eq!(env["PATH"].as_str(), std::env::var("PATH").ok().as_deref());
        // Names passed through, and values set; a name Sentinel lacks is left out.
        let env = plugin_environment(allow(vec!["PLUGIN_HOME", "PATH", "NOT_SET_ANYWHERE"], &[("MODE", "strict")]));
        assert_eq!(names(&env), ["MODE", "PATH", "PLUGIN_HOME", "PYTHONUNBUFFERED"]);
        assert_eq!((env["PLUGIN_HOME"].as_str(), env["MODE"].as_str()), (Some("/srv/plugin"), Some("strict")));
        assert!(!env.keys().any(|k| k.starts_with("LLMSEC_")));
    }

    #[test]
    fn a_missing_program_is_an_error_at_build() {
        let e = PluginDetector::new(
            "p",
            Severity::Warning,
            "/nonexistent/plugin.py",
            serde_json::json!({}),
            settings(200, 1),
        )
        .unwrap_err();
        assert!(e.contains("\"/nonexistent/plugin.py\" not found"), "{e}");
    }

    #[test]
    fn a_plugin_that_never_answers_init_fails_to_build() {
        let mute = script("mute", "");
        let program = &mute.path;
        std::fs::write(program, "import time\ntime.sleep(30)\n").unwrap();
        let s = PluginSettings { start_timeout_ms: 300, ..settings(200, 1) };
        let t = Instant::now();
        let e = PluginDetector::new("p", Severity::Warning, program, serde_json::json!({}), s).unwrap_err();
        assert!(e.contains("no ready answer within 300 ms"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn garbage_is_an_error_and_restarts_the_plugin() {
        let plugin = script("garbage", "print('this is not json', flush=True)");
        let mut d = start(&plugin.path, 2000, 5);
        let first = d.pid().unwrap();
        assert!(observe(&mut d, &ev("e1", 0, "u", "m"), 0).is_empty());
        assert_eq!((d.errors(), d.pid()), (1, None));
        let err = d.last_error().unwrap();
        assert!(err.contains("event \"e1\": invalid answer") && err.contains("this is not json"), "{err}");
        #[cfg(target_os = "linux")]
        assert!(!alive(first), "the killed plugin was reaped");
        // The next event restarts it (and it answers garbage again).
        assert!(observe_started(&mut d, &ev("e2", 1, "u", "m"), 1).is_empty());
        assert_eq!((d.errors(), d.restarts()), (2, 1));
    }

    #[test]
    fn an_invalid_result_is_an_error() {
        let body = "say({'type': 'results', 'results': [{'score': 0.5, 'title': 't', \
                    'affected_entity': {'type': 'planet', 'id': 'mars'}}]})";
        let plugin = script("planet", body);
        let mut d = start(&plugin.path, 2000, 5);
        assert!(observe(&mut d, &ev("e1", 0, "u", "m"), 0).is_empty());
        assert_eq!(d.errors(), 1);
        assert!(d.last_error().unwrap().contains("planet"), "{:?}", d.last_error());
    }

    #[test]
    fn an_error_answer_is_counted_but_keeps_the_plugin() {
        let body = format!("say({{'type': 'error', 'message': 'cannot'}}) if e['event_id'] == 'bad' else {FINDING}");
        let plugin = script("refuses", &body);
        let mut d = start(&plugin.path, 2000, 5);
        let pid = d.pid();
        assert!(observe(&mut d, &ev("bad", 0, "u", "m"), 0).is_empty());
        assert_eq!(d.errors(), 1);
        assert!(d.last_error().unwrap().contains("it answered an error: cannot"));
        assert_eq!(observe(&mut d, &ev("ok", 1, "u", "m"), 1).len(), 1);
        assert_eq!((d.pid(), d.restarts()), (pid, 0));
    }

    #[test]
    fn a_slow_plugin_times_out_and_restarts_are_capped() {
        let plugin = script("slow", "time.sleep(10)");
        let mut d = start(&plugin.path, 300, 1);
        let t = Instant::now();
        assert!(observe(&mut d, &ev("e1", 0, "u", "m"), 0).is_empty());
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1500), "{took:?}");
        assert_eq!(d.errors(), 1);
        assert!(d.last_error().unwrap().contains("no answer within 300 ms"), "{:?}", d.last_error());
        // One restart; it times out too.
        for i in 0..20 {
            if d.errors() == 2 {
                break;
            }
            let t = Instant::now();
            observe(&mut d, &ev("e2", i, "u", "m"), i);
            assert!(t.elapsed() < Duration::from_millis(1500));
        }
        assert_eq!((d.errors(), d.restarts()), (2, 1));
        // The cap (1 per 10 minutes) is reached: no process, events skipped at once.
        let t = Instant::now();
        assert!(observe(&mut d, &ev("e3", 100, "u", "m"), 100).is_empty());
        assert!(t.elapsed() < Duration::from_millis(100));
        assert_eq!((d.restarts(), d.pid()), (1, None));
    }

    #[test]
    fn a_crashed_plugin_restarts_until_the_cap_then_after_the_window() {
        let body = format!(
            "if e['event_id'].startswith('crash'):\n        \
             print('boom', file=sys.stderr, flush=True); sys.exit(3)\n    {FINDING}"
        );
        let plugin = script("crash", &body);
        let mut d = start(&plugin.path, 2000, 2);
        assert_eq!(observe(&mut d, &ev("ok1", 0, "u", "m"), 0).len(), 1);
        assert!(observe(&mut d, &ev("crash1", 1, "u", "m"), 1).is_empty());
        assert_eq!((d.errors(), d.pid()), (1, None));
        // The stderr thread may still be reading the plugin's last words.
        for _ in 0..100 {
            if d.last_error().unwrap().contains("boom") {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let err = d.last_error().unwrap();
        assert!(err.contains("event \"crash1\"") && err.contains("stderr: boom"), "{err}");
        // The restart works.
        assert_eq!(observe_started(&mut d, &ev("ok2", 2, "u", "m"), 2).len(), 1);
        assert_eq!((d.restarts(), d.errors()), (1, 1));
        // Crash, restart, crash: two restarts in the window, the cap.
        observe(&mut d, &ev("crash2", 3, "u", "m"), 3);
        observe_started(&mut d, &ev("crash3", 4, "u", "m"), 4);
        assert_eq!((d.restarts(), d.errors()), (2, 3));
        assert!(observe(&mut d, &ev("ok3", 5, "u", "m"), 5).is_empty());
        assert_eq!((d.restarts(), d.pid()), (2, None));
        assert!(observe(&mut d, &ev("ok4", 1 + RESTART_WINDOW, "u", "m"), 1 + RESTART_WINDOW).is_empty());
        assert_eq!(d.restarts(), 2, "the restart at 2 ms is still in the window");
        // Ten minutes after those restarts (pipeline time), one more is allowed.
        let later = 4 + RESTART_WINDOW;
        assert_eq!(observe_started(&mut d, &ev("ok5", later, "u", "m"), later).len(), 1);
        assert_eq!(d.restarts(), 3);
    }

    #[test]
    fn a_line_longer_than_1_mib_is_an_error() {
        let plugin = script("long", "print('x' * (2 << 20), flush=True)");
        let mut d = start(&plugin.path, 2000, 5);
        assert!(observe(&mut d, &ev("e1", 0, "u", "m"), 0).is_empty());
        assert!(d.last_error().unwrap().contains("longer than 1048576 bytes"), "{:?}", d.last_error());
    }

    #[test]
    fn a_line_nobody_asked_for_is_an_error() {
        let body = format!("{FINDING}; say({{'type': 'results', 'results': []}})");
        let plugin = script("chatty", &body);
        let mut d = start(&plugin.path, 2000, 5);
        assert_eq!(observe(&mut d, &ev("e1", 0, "u", "m"), 0).len(), 1);
        // Give the extra line time to arrive.
        thread::sleep(Duration::from_millis(200));
        assert!(observe(&mut d, &ev("e2", 1, "u", "m"), 1).is_empty());
        assert!(d.last_error().unwrap().contains("a line nobody asked for"), "{:?}", d.last_error());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn drop_kills_and_reaps_the_plugin() {
        let d = start(EXAMPLE, 500, 1);
        let pid = d.pid().unwrap();
        assert!(alive(pid));
        drop(d);
        assert!(!alive(pid));
    }

    #[test]
    fn results_map_metrics_and_defaults() {
        let d = start(EXAMPLE, 500, 1);
        let e = ev("e1", 5_000, "u1", "m");
        let r: PluginResult = serde_json::from_value(serde_json::json!({
            "anomaly_id": "ignored", "score": 1.7, "title": "t", "description": "d",
            "affected_entity": {"type": "ip", "id": "203.0.113.7", "name": "x"},
            "metrics": {"baseline": 2, "observed": 9.5, "deviation": 3, "threshold": "high", "rate": 0.25, "who": "bob"}
        }))
        .unwrap();
        let f = d.finding(r, &e).unwrap();
        assert_eq!(
            (f.severity, f.score, f.entity.clone()),
            (Severity::Warning, 1.0, Entity::new(EntityKind::Ip, "203.0.113.7"))
        );
        assert_eq!((f.baseline, f.observed, f.deviation, f.threshold), (Some(2.0), Some(9.5), Some(3.0), None));
        assert_eq!(f.description, "d (rate=0.25, threshold=\"high\", who=bob)");
        assert_eq!((f.window_start, f.event_id.as_deref(), f.tenant_id.as_deref()), (5_000, Some("e1"), Some("acme")));
        let bad = |v: serde_json::Value| d.finding(serde_json::from_value(v).unwrap(), &e).unwrap_err();
        let entity = serde_json::json!({"type": "user", "id": "u"});
        assert!(
            bad(serde_json::json!({"score": 0.5, "title": " ", "affected_entity": entity})).contains("empty title")
        );
        let long = serde_json::json!({"type": "user", "id": "x".repeat(300)});
        assert!(bad(serde_json::json!({"score": 0.5, "title": "t", "affected_entity": long})).contains("1-256 bytes"));
    }

    #[test]
    fn capped_lines() {
        let mut r = io::Cursor::new(b"ab\r\nabcdef\nxyz".to_vec());
        let mut buf = Vec::new();
        assert_eq!(read_line_capped(&mut r, 4, &mut buf).unwrap(), Capped::Line);
        assert_eq!(buf, b"ab");
        assert_eq!(read_line_capped(&mut r, 4, &mut buf).unwrap(), Capped::TooLong);
        assert_eq!(buf, b"abcd");
        assert_eq!(read_line_capped(&mut r, 4, &mut buf).unwrap(), Capped::Line);
        assert_eq!(buf, b"ef");
        assert_eq!(read_line_capped(&mut r, 4, &mut buf).unwrap(), Capped::Line);
        assert_eq!(buf, b"xyz");
        assert_eq!(read_line_capped(&mut r, 4, &mut buf).unwrap(), Capped::Eof);
    }

    #[test]
    fn settings_from_entry_keys() {
        let entry =
            serde_json::json!({"plugin": "x", "timeout_ms": 50, "max_restarts": 0, "interpreter": "python3.12"});
        let s = PluginSettings::from_entry(entry.as_object().unwrap()).unwrap();
        assert_eq!(
            s,
            PluginSettings {
                timeout_ms: 50,
                max_restarts: 0,
                interpreter: Some("python3.12".into()),
                ..Default::default()
            }
        );
        let entry = serde_json::json!({"timeout_ms": 0});
        assert_eq!(PluginSettings::from_entry(entry.as_object().unwrap()).unwrap_err().0, "timeout_ms");
        let entry = serde_json::json!({"interpreter": ""});
        assert_eq!(PluginSettings::from_entry(entry.as_object().unwrap()).unwrap_err().0, "interpreter");
        let entry = serde_json::json!({"env": ["HOME"], "env_vars": {"MODE": "strict"}});
        let s = PluginSettings::from_entry(entry.as_object().unwrap()).unwrap();
        assert_eq!((s.env, s.env_vars), (vec!["HOME".to_owned()], BTreeMap::from([("MODE".into(), "strict".into())])));
        for (entry, key) in [
            (serde_json::json!({"env": "PATH"}), "env"),
            (serde_json::json!({"env": ["A=B"]}), "env"),
            (serde_json::json!({"env": [""]}), "env"),
            (serde_json::json!({"env_vars": ["A"]}), "env_vars"),
            (serde_json::json!({"env_vars": {"A=B": "x"}}), "env_vars.A=B"),
            (serde_json::json!({"env_vars": {"PORT": 8080}}), "env_vars.PORT"),
        ] {
            assert_eq!(PluginSettings::from_entry(entry.as_object().unwrap()).unwrap_err().0, key, "{entry}");
        }
    }
}
