//! Criterion benchmarks of the evaluation engine (never run by `make test`):
//!
//! ```text
//! cargo bench -p shared --bench evaluation
//! ```
//!
//! Flags are prepared once ([`FlagSet::new`], as a warm Lambda keeps them); each iteration
//! evaluates one request. Preparing the 100 flags is measured separately.

mod support;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use shared::evaluation::{EvaluationInput, FlagSet};
use support::*;

fn one_flag_rollout(c: &mut Criterion) {
    let set = FlagSet::new(&[rollout_flag()], &[]);
    c.bench_function("one flag, 50% rollout", |b| {
        b.iter(|| set.evaluate(black_box(&EvaluationInput::new("user-42", now()))))
    });
}

fn one_flag_three_properties(c: &mut Criterion) {
    let set = FlagSet::new(&[three_property_flag()], &[]);
    let person = bench_person();
    c.bench_function("one flag, 3 property filters", |b| {
        b.iter(|| {
            let mut input = EvaluationInput::new("user-42", now());
            input.person_properties = &person.properties;
            set.evaluate(black_box(&input))
        })
    });
}

fn hundred_mixed_flags(c: &mut Criterion) {
    let flags = mixed_flags();
    let set = FlagSet::new(&flags, &[]);
    let person = bench_person();
    let input = || {
        let mut input = EvaluationInput::new("user-42", now());
        input.person_properties = &person.properties;
        input.groups = &person.groups;
        input.group_properties = &person.group_properties;
        input.group_type_mapping = &person.mapping;
        input
    };
    // Keep the bench honest: the mix must really enable a good share of the flags.
    let enabled = set
        .evaluate(&input())
        .flags
        .iter()
        .filter(|f| f.enabled)
        .count();
    assert!(enabled > 30, "only {enabled} flags enabled");
    c.bench_function("100 mixed flags, one user", |b| {
        b.iter(|| set.evaluate(black_box(&input())))
    });
    c.bench_function("prepare 100 mixed flags", |b| {
        b.iter(|| FlagSet::new(black_box(&flags), &[]))
    });
}

criterion_group!(
    benches,
    one_flag_rollout,
    one_flag_three_properties,
    hundred_mixed_flags
);
criterion_main!(benches);
