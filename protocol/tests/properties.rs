//! Properties of decoding: any text at all is either a frame or an error (never a panic), names
//! that pass the rules always obey them, and frames round-trip.

use proptest::prelude::*;
use protocol::{ChatMessage, ClientFrame, Nick, RoomName, SeedChat, ServerFrame, Target};

fn nick() -> impl Strategy<Value = Nick> {
    "[a-zA-Z0-9_.\\-\u{4e00}-\u{4e20}]{1,32}"
        .prop_map(|s| Nick::parse(&s).expect("valid by construction"))
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        nick().prop_map(Target::User),
        nick().prop_map(|n| Target::Room(RoomName::parse(n.as_str()).expect("same rules"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_text_decodes_or_errs(text in ".{0,300}") {
        let _ = serde_json::from_str::<ClientFrame>(&text);
        let _ = serde_json::from_str::<ServerFrame>(&text);
        let _ = serde_json::from_str::<SeedChat>(&text);
    }

    #[test]
    fn json_shaped_text_decodes_or_errs(
        kind in prop_oneof![Just("login"), Just("send"), Just("history"), Just("join"), Just("who"), Just("x")],
        field in "[a-z_]{1,10}",
        value in prop_oneof![Just("1".to_owned()), Just("null".to_owned()), Just("[]".to_owned()), "\"[^\"\\\\]{0,40}\""],
    ) {
        let text = format!(r#"{{"type":"{kind}","{field}":{value},"client_id":"c","room":"lobby"}}"#);
        let _ = serde_json::from_str::<ClientFrame>(&text);
    }

    #[test]
    fn accepted_names_obey_the_rules(name in "\\PC{0,40}") {
        if let Ok(nick) = Nick::parse(&name) {
            let chars = nick.as_str().chars().count();
            prop_assert!((1..=32).contains(&chars));
            prop_assert!(!nick.as_str().chars().any(|c| c.is_whitespace() || c.is_control()));
        }
    }

    #[test]
    fn sends_round_trip(client_id in "[ -~]{0,64}", target in target(), text in "\\PC{0,200}") {
        let frame = ClientFrame::Send { client_id, target, text, reply_to: None, };
        let back: ClientFrame = serde_json::from_str(&frame.to_json()).expect("round trip");
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn messages_round_trip(id in any::<u64>(), ts in any::<i64>(), from in nick(), target in target(), text in "\\PC{0,200}") {
        let frame = ServerFrame::Message(ChatMessage { id, ts, from, target, text, reply_to: None, edited: None, deleted: false, });
        let back: ServerFrame = serde_json::from_str(&frame.to_json()).expect("round trip");
        prop_assert_eq!(back, frame);
    }
}
