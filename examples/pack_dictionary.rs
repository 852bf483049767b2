//! Writes the pack dictionary (`assets/pack-dictionary.jsonl`) from a snapshot: one vehicle's
//! evidence per kind of outcome, most common last, within 64 KiB.
//!
//! ```text
//! VTRIAGE_HOME=/tmp/vh cargo run --release -- check > /dev/null
//! cargo run --release --example pack_dictionary -- /tmp/vh/cache/snapshot-demo.json > assets/pack-dictionary.jsonl
//! ```

use std::collections::HashMap;
use std::io::Write;

const BUDGET: usize = 64 * 1024;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: pack_dictionary SNAPSHOT");
        std::process::exit(2);
    };
    let snapshot = match vtriage::store::load(std::path::Path::new(&path)) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("no snapshot at {path}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    // Per kind of outcome (findings, probes answered or failed, Tesla or not): the first
    // vehicle's evidence as it is packed, and how many vehicles share that kind.
    let mut kinds: HashMap<String, (usize, Vec<u8>)> = HashMap::new();
    for record in &snapshot.records {
        let Some(report) = record.report() else {
            continue;
        };
        let diagnosis = record.diagnosis();
        let mut probes: Vec<String> = report
            .observations
            .iter()
            .map(|o| format!("{:?}{}", o.probe, o.outcome.is_ok()))
            .collect();
        probes.sort();
        let findings: Vec<&str> = diagnosis.findings.iter().map(|f| f.id.as_str()).collect();
        let key = format!("{findings:?}{probes:?}{:?}", report.is_tesla());
        let entry = kinds.entry(key).or_insert_with(|| {
            // The shape the store packs: observations first, then the diagnosis.
            #[derive(serde::Serialize)]
            struct Contents<'a> {
                observations: &'a [vtriage::smartcar::Observation],
                diagnosis: &'a vtriage::health::Diagnosis,
            }
            let contents = Contents {
                observations: &report.observations,
                diagnosis: &diagnosis,
            };
            (0, serde_json::to_vec(&contents).unwrap_or_default())
        });
        entry.0 += 1;
    }
    let mut kinds: Vec<(usize, Vec<u8>)> = kinds.into_values().collect();
    kinds.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut chosen = Vec::new();
    let mut size = 0;
    for (_, json) in kinds {
        if size + json.len() < BUDGET {
            size += json.len() + 1;
            chosen.push(json);
        }
    }
    // zstd finds matches sooner near the end of a raw dictionary: the most common kind last.
    let mut out = std::io::stdout().lock();
    for json in chosen.iter().rev() {
        let _ = out.write_all(json).and_then(|()| out.write_all(b"\n"));
    }
}
