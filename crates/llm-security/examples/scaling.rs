//! Throughput of one shared engine under 1, 2 and 4 threads: `analyze_input`
//! on 1 KiB of benign prose, each thread calling in a loop for a few
//! seconds. Reports calls per second, the ratio to one thread, and CPU
//! time per call (process CPU time over calls), which rises when calls
//! running at once slow each other down (shared caches, atomics, locks).
//!
//! ```text
//! cargo run --release -p llm-security --example scaling [-- SECONDS]
//! ```

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use llm_security::SecurityEngine;

#[path = "../benches/support/corpus.rs"]
mod corpus;

/// Process CPU time (user + system) so far.
fn cpu_time() -> Duration {
    // /proc/self/stat fields 14 and 15 are utime and stime in clock ticks;
    // reading them needs no libc binding. Elsewhere CPU time is reported as 0.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return Duration::ZERO };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

/// (calls per second, CPU microseconds per call) of `threads` threads.
fn run(engine: &SecurityEngine, text: &str, threads: usize, seconds: f64) -> (f64, f64) {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(threads + 1);
    let (calls, elapsed, cpu) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..32 {
                            let a = engine.analyze_input_sync(text).expect("1 KiB is under the input limit");
                            std::hint::black_box(a);
                        }
                        n += 32;
                    }
                    n
                })
            })
            .collect();
        let (t0, c0) = (Instant::now(), cpu_time());
        start.wait();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        let calls: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
        (calls, t0.elapsed(), cpu_time().saturating_sub(c0))
    });
    (calls as f64 / elapsed.as_secs_f64(), cpu.as_secs_f64() * 1e6 / calls as f64)
}

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let engine = SecurityEngine::new();
    let text = corpus::prose(1024);
    // Warm up every thread count once so lazily built automata and per-thread caches exist.
    for t in [1, 2, 4] {
        run(&engine, &text, t, 0.3);
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("analyze_input, 1 KiB benign prose, one shared engine, {cores} cores available, {seconds} s per row");
    println!("{:>8} {:>12} {:>10} {:>14}", "threads", "calls/s", "× 1 thread", "CPU µs/call");
    let mut base = None;
    for t in [1, 2, 4] {
        let (rate, cpu_us) = run(&engine, &text, t, seconds);
        let base = *base.get_or_insert(rate);
        println!("{t:>8} {rate:>12.0} {:>10.2} {cpu_us:>14.1}", rate / base);
    }
}
