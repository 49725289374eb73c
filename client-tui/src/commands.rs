//! The `/commands` of the message box, and Tab completion of commands and nicknames.

use protocol::{Nick, RoomName};

/// Every command with its arguments and what it does, for `/help` and completion.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("/msg", "<nick> <text>", "send a direct message"),
    ("/query", "<nick> [text]", "open a direct chat"),
    ("/join", "<room>", "join (or create) a room"),
    ("/part", "[room]", "leave room / close chat"),
    ("/reply", "[text]", "answer the selection"),
    ("/edit", "[text]", "change your message"),
    ("/delete", "", "delete your message"),
    ("/search", "[text]", "find (alone: older ones)"),
    ("/mentions", "", "messages mentioning you"),
    ("/who", "[prefix]", "who is here (or online)"),
    ("/rooms", "", "list the rooms"),
    ("/users", "", "show / hide online list"),
    ("/register", "<password>", "protect your nickname"),
    ("/help", "", "keys and commands"),
    ("/quit", "", "leave chat-tui"),
];

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A plain message (also what `//text` becomes: `/text`).
    Say(String),
    Msg {
        nick: Nick,
        text: String,
    },
    Query {
        nick: Nick,
        text: Option<String>,
    },
    Join(RoomName),
    Part(Option<RoomName>),
    /// Who is in the room shown (or online), optionally only names starting with a prefix.
    Who(Option<String>),
    Rooms,
    Users,
    /// Register the nickname with a password.
    Register(String),
    /// Answer the selected message; with a text, send the reply at once.
    Reply(Option<String>),
    /// Change the selected (or last) own message; with a text, send the change at once.
    Edit(Option<String>),
    /// Delete the selected own message.
    Delete,
    Search(String),
    /// `/search` alone: older messages, for the last search's text.
    SearchOlder,
    Mentions,
    Help,
    Quit,
}

/// Whether a submitted text holds a secret (a password), so it is kept out of the history.
pub fn is_secret(text: &str) -> bool {
    text.trim_start()
        .strip_prefix("/register")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

/// Reads one submitted text. Text not starting with `/` is a message; `//` escapes a slash.
/// The error is a sentence for the user.
pub fn parse_command(text: &str) -> Result<Command, String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Ok(Command::Say(text.to_owned()));
    };
    if rest.starts_with('/') {
        return Ok(Command::Say(rest.to_owned()));
    }
    let (name, args) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(n, a)| (n, a.trim_start()));
    let (first, more) = args
        .split_once(char::is_whitespace)
        .map_or((args.trim_end(), ""), |(f, m)| (f, m.trim_start()));
    let nick = || {
        if first.is_empty() {
            return Err(format!("/{name} needs a nickname"));
        }
        Nick::parse(first).map_err(|e| format!("{first:?} is not a nickname: {e}"))
    };
    let room = || {
        RoomName::parse(first.trim_start_matches('#'))
            .map_err(|e| format!("{first:?} is not a room name: {e}"))
    };
    match name.to_lowercase().as_str() {
        "msg" | "m" => {
            let nick = nick()?;
            if more.trim().is_empty() {
                return Err("/msg needs a text: /msg <nick> <text>".into());
            }
            Ok(Command::Msg {
                nick,
                text: more.to_owned(),
            })
        }
        "query" | "q" => Ok(Command::Query {
            nick: nick()?,
            text: (!more.trim().is_empty()).then(|| more.to_owned()),
        }),
        "join" | "j" if first.is_empty() => Err("/join needs a room name".into()),
        "join" | "j" => Ok(Command::Join(room()?)),
        "part" | "leave" | "close" if first.is_empty() => Ok(Command::Part(None)),
        "part" | "leave" | "close" => Ok(Command::Part(Some(room()?))),
        "who" | "names" => Ok(Command::Who(optional(args).map(|a| a.trim().to_owned()))),
        "rooms" | "list" => Ok(Command::Rooms),
        "users" => Ok(Command::Users),
        "register" if args.trim().is_empty() => Err("/register needs a password".into()),
        "register" => Ok(Command::Register(args.trim().to_owned())),
        "reply" | "r" => Ok(Command::Reply(optional(args))),
        "edit" | "e" => Ok(Command::Edit(optional(args))),
        "delete" | "del" => Ok(Command::Delete),
        "search" | "s" | "find" if args.trim().is_empty() => Ok(Command::SearchOlder),
        "search" | "s" | "find" => Ok(Command::Search(args.trim().to_owned())),
        "mentions" => Ok(Command::Mentions),
        "help" | "h" | "?" => Ok(Command::Help),
        "quit" | "exit" => Ok(Command::Quit),
        _ => Err(format!("unknown command /{name}; /help lists them")),
    }
}

/// `Some(text)` when `args` holds more than whitespace.
fn optional(args: &str) -> Option<String> {
    (!args.trim().is_empty()).then(|| args.to_owned())
}

/// Candidates for completing `word`: commands when the line starts with it and it begins with
/// `/`, else the nicknames in `names` that start with it (ignoring case), sorted and unique.
/// Each candidate carries the text to insert, with a `": "` after a nickname at the start of a
/// line and a space otherwise.
pub fn completions<'a>(
    word: &str,
    at_line_start: bool,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    if at_line_start && word.starts_with('/') {
        return COMMANDS
            .iter()
            .filter(|(c, _, _)| c.starts_with(word))
            .map(|(c, _, _)| format!("{c} "))
            .collect();
    }
    if word.is_empty() {
        return Vec::new();
    }
    let lower = word.to_lowercase();
    let mut found: Vec<&str> = names
        .into_iter()
        .filter(|n| n.to_lowercase().starts_with(&lower))
        .collect();
    found.sort_unstable();
    found.dedup();
    let suffix = if at_line_start { ": " } else { " " };
    found.into_iter().map(|n| format!("{n}{suffix}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_a_slash_is_a_message() {
        assert_eq!(parse_command("hi /x"), Ok(Command::Say("hi /x".into())));
        assert_eq!(parse_command("//etc"), Ok(Command::Say("/etc".into())));
    }

    #[test]
    fn msg_keeps_the_text_as_written() {
        assert_eq!(
            parse_command("/msg bob  hello  there"),
            Ok(Command::Msg {
                nick: Nick::parse("bob").expect("valid"),
                text: "hello  there".into()
            })
        );
        assert!(parse_command("/msg bob").is_err());
        assert!(parse_command("/msg").is_err());
        assert!(parse_command("/msg b@d hi").is_err());
    }

    #[test]
    fn rooms_may_be_written_with_a_hash() {
        assert_eq!(
            parse_command("/join #rust"),
            Ok(Command::Join(RoomName::parse("rust").expect("valid")))
        );
        assert_eq!(parse_command("/part"), Ok(Command::Part(None)));
        assert!(parse_command("/join").is_err());
    }

    #[test]
    fn register_takes_the_password_and_is_kept_secret() {
        assert_eq!(
            parse_command("/register  correct horse "),
            Ok(Command::Register("correct horse".into()))
        );
        assert!(parse_command("/register").is_err());
        assert!(is_secret("/register pw") && is_secret(" /register"));
        assert!(!is_secret("/registered") && !is_secret("hi /register x"));
    }

    #[test]
    fn reply_edit_delete_search_take_their_arguments() {
        assert_eq!(parse_command("/reply"), Ok(Command::Reply(None)));
        assert_eq!(
            parse_command("/reply me too"),
            Ok(Command::Reply(Some("me too".into())))
        );
        assert_eq!(parse_command("/edit"), Ok(Command::Edit(None)));
        assert_eq!(parse_command("/delete"), Ok(Command::Delete));
        assert_eq!(
            parse_command("/search 北京 开会"),
            Ok(Command::Search("北京 开会".into()))
        );
        assert_eq!(parse_command("/search "), Ok(Command::SearchOlder));
        assert_eq!(parse_command("/mentions"), Ok(Command::Mentions));
    }

    #[test]
    fn unknown_commands_are_refused_with_a_hint() {
        assert_eq!(
            parse_command("/frobnicate"),
            Err("unknown command /frobnicate; /help lists them".into())
        );
    }

    #[test]
    fn completion_offers_commands_then_nicknames() {
        assert_eq!(completions("/j", true, []), ["/join "]);
        assert_eq!(completions("/", true, []).len(), COMMANDS.len());
        let names = ["bob", "Bea", "alice", "bob"];
        assert_eq!(completions("b", true, names), ["Bea: ", "bob: "]);
        assert_eq!(completions("AL", false, names), ["alice "]);
        assert!(completions("", false, names).is_empty());
    }
}
