//! Every JSON example in `docs/PROTOCOL.md` parses as the frame it documents and serializes back
//! to the same JSON.

use protocol::{ClientFrame, SeedChat, ServerFrame};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

const DOC: &str = include_str!("../../docs/PROTOCOL.md");

/// The fenced blocks whose info string is exactly `lang`.
fn blocks(lang: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut rest = DOC;
    let fence = format!("```{lang}\n");
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```").expect("every block is closed");
        out.push(body[..end].trim());
        rest = &body[end..][3..];
    }
    out
}

fn round_trips<T: DeserializeOwned + Serialize + std::fmt::Debug>(example: &str) -> T {
    let frame: T = serde_json::from_str(example)
        .unwrap_or_else(|e| panic!("example does not parse: {e}\n{example}"));
    let again: Value = serde_json::to_value(&frame).expect("serializes");
    let original: Value = serde_json::from_str(example).expect("is JSON");
    assert_eq!(again, original, "round trip changed the example");
    frame
}

#[test]
fn every_client_example_round_trips() {
    let examples = blocks("json client");
    assert!(
        examples.len() >= 8,
        "found {} client examples",
        examples.len()
    );
    for example in examples {
        round_trips::<ClientFrame>(example);
    }
}

#[test]
fn every_server_example_round_trips() {
    let examples = blocks("json server");
    assert!(
        examples.len() >= 12,
        "found {} server examples",
        examples.len()
    );
    for example in examples {
        let frame = round_trips::<ServerFrame>(example);
        assert_ne!(frame, ServerFrame::Unknown, "{example}");
    }
}

#[test]
fn every_seed_example_round_trips() {
    let examples = blocks("json");
    assert_eq!(examples.len(), 3);
    for example in examples {
        round_trips::<SeedChat>(example);
    }
}
