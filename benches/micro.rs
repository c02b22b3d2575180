//! Micro benches (criterion): the per-command and per-event costs on the engine's critical
//! path. `cargo bench --bench micro` from the repository's root (a bench of the root
//! package; the workload comes from the harness crate, crates/grantflow-bench); CI only
//! builds them (`cargo bench --no-run`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use grantflow_bench::workload::generate;
use grantflow_domain::{decide, evolve, parse_command, CommandRequest, World};
use grantflow_store::envelope::chain_hash;
use grantflow_store::Envelope;

/// The workload's first commands, parsed, split into a warm-up prefix and a measured part.
fn parsed(prefix: usize, measured: usize) -> (World, Vec<CommandRequest>) {
    let workload = generate(42, 16, prefix + measured, 0);
    let mut requests = workload
        .commands
        .iter()
        .filter_map(|c| parse_command(&c.body).ok());
    let mut world = World::default();
    let mut position = 0;
    for request in requests.by_ref().take(prefix) {
        let actor = request.actor.clone().unwrap_or_default();
        if let Ok(events) = decide(&world, &actor, &request) {
            for event in &events {
                position += 1;
                evolve(&mut world, position, event);
            }
        }
    }
    (world, requests.collect())
}

fn sample_envelope() -> Envelope {
    Envelope {
        position: 123_456,
        stream: "grant-G0042-00017".into(),
        version: 37,
        event_type: "grant.disbursement_recorded".into(),
        schema: 1,
        recorded_at: "2026-11-29T10:00:00.123456Z".into(),
        actor: "finance.k.sato".into(),
        command_id: "s42-l42-1234".into(),
        correlation_id: "s42-l42-1234".into(),
        payload: r#"{"grant":"G0042-00017","agency":"UNHCR","amount":"41250.17","paid_on":"2014-03-02","reference":"TR-2014-001234"}"#.into(),
        prev_hash: [7; 32],
        hash: [9; 32],
    }
}

fn bench_parse(c: &mut Criterion) {
    let workload = generate(42, 16, 2_000, 0);
    let bodies: Vec<_> = workload.commands.iter().map(|c| c.body.clone()).collect();
    let mut group = c.benchmark_group("parse_command");
    group.throughput(Throughput::Elements(bodies.len() as u64));
    group.bench_function("workload_mix", |b| {
        b.iter(|| {
            for body in &bodies {
                let _ = black_box(parse_command(black_box(body)));
            }
        })
    });
    group.finish();
}

fn bench_decide_evolve(c: &mut Criterion) {
    let (world, requests) = parsed(3_000, 1_000);
    let mut group = c.benchmark_group("decide_evolve");
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function("per_command", |b| {
        b.iter_batched(
            || world.clone(),
            |mut world| {
                let mut position = 1_000_000;
                for request in &requests {
                    let actor = request.actor.as_deref().unwrap_or_default();
                    if let Ok(events) = decide(&world, actor, request) {
                        for event in &events {
                            position += 1;
                            evolve(&mut world, position, event);
                        }
                    }
                }
                world
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_envelope(c: &mut Criterion) {
    let envelope = sample_envelope();
    let bytes = envelope.canonical_bytes();
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    group.bench_function("canonical_bytes", |b| {
        b.iter(|| black_box(black_box(&envelope).canonical_bytes()))
    });
    group.bench_function("to_line", |b| {
        b.iter(|| black_box(black_box(&envelope).to_line()))
    });
    group.bench_function("chain_hash", |b| {
        b.iter(|| {
            black_box(chain_hash(
                black_box(&envelope.prev_hash),
                black_box(&bytes),
            ))
        })
    });
    group.bench_function("compute_hash", |b| {
        b.iter(|| black_box(black_box(&envelope).compute_hash()))
    });
    group.bench_function("decode_payload", |b| {
        b.iter(|| black_box(grantflow_engine::decode(black_box(&envelope))))
    });
    group.finish();
}

criterion_group!(benches, bench_parse, bench_decide_evolve, bench_envelope);
criterion_main!(benches);
