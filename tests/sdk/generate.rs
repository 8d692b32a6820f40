//! A reproducible random flag set and user population for the SDK agreement test: every
//! property operator, rollouts, variants with overrides, payloads, dependencies, group flags,
//! an inactive flag and an experience-continuity flag. Values avoid the documented SDK/server
//! divergences (evaluation-rules.md §7): ASCII strings, plain `x.y.z` versions, numbers for numeric
//! operators, dates far from any boundary, no `"false"` payloads, no enrollment properties.

use serde_json::{Value, json};

/// SplitMix64: tiny, fast, and the same sequence on every machine for a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// Every operator the management API accepts for person properties, with a property and value
/// that exercise it against [`user`]'s value pools.
fn operator_filters() -> Vec<Value> {
    let person = |key: &str, operator: &str, value: Value| json!({"key": key, "type": "person", "operator": operator, "value": value});
    vec![
        person("plan", "exact", json!(["pro", "enterprise"])),
        person("plan", "is_not", json!("free")),
        person("beta_tester", "exact", json!(true)),
        person("email", "icontains", json!("@acme")),
        person("email", "not_icontains", json!("example")),
        person("email", "regex", json!("^(alice|bob)@")),
        person("email", "not_regex", json!("\\.io$")),
        person("email", "starts_with", json!("maria")),
        person("email", "not_starts_with", json!("zed")),
        person("email", "ends_with", json!(".com")),
        person("email", "not_ends_with", json!(".org")),
        person("age", "gt", json!("30")),
        person("age", "gte", json!("40")),
        person("age", "lt", json!("25")),
        person("age", "lte", json!("50")),
        person("age", "between", json!([20, 40])),
        person("age", "not_between", json!([30, 60])),
        person("beta_tester", "is_set", json!("is_set")),
        person("beta_tester", "is_not_set", json!("is_not_set")),
        person("signup", "is_date_before", json!("-365d")),
        person("signup", "is_date_after", json!("2024-06-01")),
        person("signup", "is_date_exact", json!("2025-03-03T10:00:00Z")),
        person("app_version", "semver_eq", json!("1.2.3")),
        person("app_version", "semver_neq", json!("1.2.3")),
        person("app_version", "semver_gt", json!("1.5.0")),
        person("app_version", "semver_gte", json!("2.0.0")),
        person("app_version", "semver_lt", json!("1.0.0")),
        person("app_version", "semver_lte", json!("2.3.4")),
        person("app_version", "semver_tilde", json!("1.2.0")),
        person("app_version", "semver_caret", json!("1.0.0")),
        person("app_version", "semver_wildcard", json!("2.*")),
        person("country", "icontains_multi", json!(["us", "de"])),
        person("country", "not_icontains_multi", json!(["fr"])),
    ]
}

const INDUSTRIES: [&str; 3] = ["saas", "retail", "health"];

const ROLLOUTS: [f64; 7] = [100.0, 100.0, 50.0, 33.3, 75.0, 10.0, 0.0];

/// Payload texts as the API stores them: JSON objects, arrays and numbers.
fn payload(rng: &mut Rng, tag: &str) -> String {
    match rng.below(3) {
        0 => json!({"tag": tag, "n": rng.below(100)}).to_string(),
        1 => json!([tag, rng.below(10)]).to_string(),
        _ => (rng.below(1000) as i64).to_string(),
    }
}

fn variants(rng: &mut Rng) -> Vec<(String, f64)> {
    match rng.below(3) {
        0 => vec![("control".into(), 50.0), ("test".into(), 50.0)],
        1 => vec![("a".into(), 34.0), ("b".into(), 33.0), ("c".into(), 33.0)],
        _ => vec![("red".into(), 70.0), ("blue".into(), 30.0)],
    }
}

/// Filters with `conditions`, maybe variants (with payloads and a condition override) or a
/// `"true"` payload.
fn decorate(rng: &mut Rng, mut conditions: Vec<Value>, multivariate: bool) -> Value {
    let mut filters = json!({"groups": []});
    if multivariate {
        let list = variants(rng);
        let keys: Vec<String> = list.iter().map(|(k, _)| k.clone()).collect();
        filters["multivariate"] = json!({"variants": list.iter()
            .map(|(k, p)| json!({"key": k, "name": k, "rollout_percentage": p}))
            .collect::<Vec<_>>()});
        let mut payloads = serde_json::Map::new();
        for key in &keys {
            if rng.chance(0.7) {
                payloads.insert(key.clone(), json!(payload(rng, key)));
            }
        }
        filters["payloads"] = Value::Object(payloads);
        if conditions.len() > 1 && rng.chance(0.6) {
            conditions[0]["variant"] = json!(rng.pick(&keys));
        }
    } else if rng.chance(0.4) {
        filters["payloads"] = json!({"true": payload(rng, "on")});
    }
    filters["groups"] = json!(conditions);
    filters
}

fn condition(rng: &mut Rng, properties: Vec<Value>) -> Value {
    json!({"properties": properties, "rollout_percentage": rng.pick(&ROLLOUTS)})
}

/// A flag body, given the flags created before it: `(id, key, variant keys)`.
pub fn flag(
    rng: &mut Rng,
    index: usize,
    key: &str,
    earlier: &[(i64, String, Vec<String>)],
    company: i64,
) -> Value {
    let operators = operator_filters();
    let multivariate = rng.chance(0.3);
    let filters = if index < operators.len() {
        let mut conditions = vec![condition(rng, vec![operators[index].clone()])];
        if rng.chance(0.35) {
            let both = vec![rng.pick(&operators), rng.pick(&operators)];
            conditions.push(condition(rng, both));
        }
        decorate(rng, conditions, multivariate)
    } else {
        special(rng, index - operators.len(), earlier, company)
    };
    let mut body =
        json!({"key": key, "name": format!("SDK agreement {index}"), "filters": filters});
    match index.checked_sub(operators.len()) {
        Some(4) => body["active"] = json!(false),
        Some(5) => body["ensure_experience_continuity"] = json!(true),
        _ => {}
    }
    body
}

/// Flags beyond one per operator: plain rollouts, dependencies, group flags, an inactive and a
/// continuity flag.
fn special(
    rng: &mut Rng,
    which: usize,
    earlier: &[(i64, String, Vec<String>)],
    company: i64,
) -> Value {
    let group_filter = |key: &str, operator: &str, value: Value| json!({"key": key, "type": "group", "group_type_index": company, "operator": operator, "value": value});
    match which {
        0 | 4 | 1 | 5 => {
            let everyone = vec![condition(rng, vec![])];
            decorate(rng, everyone, which % 2 == 1)
        }
        2 | 3 | 6 => {
            let (id, _, variants) = rng.pick(earlier);
            let expected = match rng.below(3) {
                0 if !variants.is_empty() => json!(rng.pick(&variants)),
                1 => json!(false),
                _ => json!(true),
            };
            let dependency = json!({"key": id.to_string(), "type": "flag", "operator": "flag_evaluates_to", "value": expected});
            let mut conditions = vec![condition(rng, vec![dependency])];
            let other = rng.pick(&operator_filters());
            conditions.push(condition(rng, vec![other]));
            decorate(rng, conditions, which == 6)
        }
        _ => {
            let filter = match which % 3 {
                0 => group_filter("size", "gt", json!("50")),
                1 => group_filter("industry", "exact", json!(["saas", "retail"])),
                _ => group_filter("size", "lte", json!("20")),
            };
            let conditions = vec![condition(rng, vec![filter]), condition(rng, vec![])];
            let mut filters = decorate(rng, conditions, which.is_multiple_of(2));
            filters["aggregation_group_type_index"] = json!(company);
            filters
        }
    }
}

/// How many flags [`flag`] makes: one per operator, then the special ones.
pub fn flag_count() -> usize {
    operator_filters().len() + 12
}

/// A person: each property present with probability 0.85, values from small pools so every
/// filter matches some people and misses others; most people belong to a company.
pub fn user(rng: &mut Rng, index: usize) -> Value {
    let name = rng.pick(&["alice", "bob", "zed", "maria", "li"]);
    let domain = rng.pick(&["acme.com", "example.org", "globex.io", "acme.org"]);
    let day = format!(
        "20{}-{:02}-{:02}T10:00:00Z",
        20 + rng.below(7),
        1 + rng.below(12),
        1 + rng.below(28)
    );
    let signup = if rng.chance(0.1) {
        "2025-03-03T10:00:00Z".to_string()
    } else {
        day
    };
    let values = [
        ("email", json!(format!("{name}{index}@{domain}"))),
        (
            "plan",
            json!(rng.pick(&["free", "pro", "enterprise", "Pro"])),
        ),
        ("age", json!(15 + rng.below(56))),
        ("beta_tester", json!(rng.chance(0.5))),
        ("signup", json!(signup)),
        (
            "app_version",
            json!(format!(
                "{}.{}.{}",
                rng.below(4),
                rng.below(13),
                rng.below(21)
            )),
        ),
        ("country", json!(rng.pick(&["US", "DE", "FR", "BR"]))),
    ];
    let mut person = serde_json::Map::new();
    for (key, value) in values {
        if rng.chance(0.85) {
            person.insert(key.into(), value);
        }
    }
    let (groups, group_properties) = if rng.chance(0.8) {
        let company = rng.below(12);
        (
            json!({"company": format!("company-{company}")}),
            json!({"company": {"size": 5 + company * 9, "industry": INDUSTRIES[company % 3]}}),
        )
    } else {
        (json!({}), json!({}))
    };
    json!({"id": format!("user-{index}"), "person": person, "groups": groups, "group_properties": group_properties})
}
