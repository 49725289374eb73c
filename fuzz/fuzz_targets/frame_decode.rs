//! Every frame decoder the server runs on untrusted input, fed arbitrary bytes. Decoding may
//! fail; it must never panic, and whatever decodes must encode and decode to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{ClientFrame, Nick, RoomName, SeedChat};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
        let again: ClientFrame = serde_json::from_str(&frame.to_json()).expect("re-decodes");
        assert_eq!(again, frame);
    }
    let _ = serde_json::from_str::<SeedChat>(text);
    let _ = Nick::parse(text);
    let _ = RoomName::parse(text);
});
