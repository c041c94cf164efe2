//! Red-team trials per second against the engine in-process: the built-in
//! suite under every converter (one trial = converters applied, the
//! engine's analysis of the prompt or document, the judgement).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llm_security::SecurityEngine;
use llmsec_redteam::converters::{Chain, Converter};
use llmsec_redteam::judge::{Judge, Scenario};
use llmsec_redteam::run::{self, RunOptions};
use llmsec_redteam::suite;
use llmsec_redteam::target::EngineTarget;

fn bench(c: &mut Criterion) {
    let engine = Arc::new(SecurityEngine::new());
    let scenario = Scenario::new(&engine, 1);
    let judge = Judge::new(&engine, &scenario);
    let target = EngineTarget::new(engine.clone());
    let chains = Chain::combinations(&Converter::ALL, 1);
    let trials = run::plan(&suite::builtin(), &chains);
    let options = RunOptions { concurrency: 1, ..RunOptions::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let mut group = c.benchmark_group("redteam");
    group.throughput(Throughput::Elements(trials.len() as u64));
    group.sample_size(20);
    group.bench_function("engine_builtin_all_converters", |b| {
        b.iter(|| rt.block_on(run::run(black_box(&trials), &target, &scenario, &judge, &options, |_| {})))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
