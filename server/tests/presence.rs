//! Presence and member lists with many users: a login is sent a page of names and a total,
//! presence changes come gathered in `presence_changes`, and a large room tells joins and
//! leaves in `room_changes` while a small one keeps `joined` and `left`.

mod common;

use common::{Client, TestServer};
use protocol::{ClientFrame, Nick, RoomName, ServerFrame};

/// Logs in `count` native clients named `<prefix>000`, `<prefix>001`, …, one after another.
async fn crowd(server: &TestServer, prefix: &str, count: usize) -> Vec<Client> {
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        clients.push(server.native(&format!("{prefix}{i:03}")).await);
    }
    clients
}

fn names(users: &[Nick]) -> Vec<&str> {
    users.iter().map(Nick::as_str).collect()
}

#[tokio::test]
async fn a_login_lists_the_first_fifty_names_and_counts_everyone() {
    let server = TestServer::start().await;
    let _crowd = crowd(&server, "u", 120).await;
    let mut zoe = server.native_unlogged().await;
    zoe.send(&ClientFrame::login("zoe")).await;
    match zoe.frame().await {
        ServerFrame::Welcome {
            users, users_total, ..
        } => {
            assert_eq!(users.len(), 50);
            assert_eq!((users[0].as_str(), users[49].as_str()), ("u000", "u049"));
            assert_eq!(users_total, Some(121));
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    let (users, total, has_more) = zoe.users(true).await;
    assert_eq!((users.len(), total, has_more), (50, Some(121), true));

    // The rest comes a page at a time, and a prefix finds a name anywhere in the list.
    zoe.send(&ClientFrame::Who {
        room: None,
        prefix: None,
        after: Some("u049".parse().expect("nick")),
        limit: Some(500),
    })
    .await;
    let (users, total, has_more) = zoe.users(false).await;
    assert_eq!(users.len(), 71);
    assert_eq!((users[0].as_str(), users[70].as_str()), ("u050", "zoe"));
    assert_eq!((total, has_more), (Some(121), false));
    zoe.send(&ClientFrame::Who {
        room: Some(RoomName::lobby()),
        prefix: Some("U11".into()),
        after: None,
        limit: None,
    })
    .await;
    let (users, total, has_more) = zoe.users(true).await;
    assert_eq!(
        names(&users),
        (110..120).map(|i| format!("u{i}")).collect::<Vec<_>>()
    );
    assert_eq!((total, has_more), (Some(10), false));
}

#[tokio::test]
async fn presence_changes_come_gathered_and_name_each_user() {
    let server = TestServer::start().await;
    let mut watcher = server.native("watcher").await;
    let crowd = crowd(&server, "p", 60).await;
    // Arrivals are told (named, or counted beyond 20 names a frame) with the count of everyone
    // online, in fewer frames than there were arrivals. The watcher may hear of itself too.
    let mut seen = std::collections::BTreeSet::new();
    let (mut told, mut frames, mut total) = (0, 0, 0);
    while total < 61 {
        match watcher
            .frame_where(|f| matches!(f, ServerFrame::PresenceChanges { .. }))
            .await
        {
            ServerFrame::PresenceChanges {
                online,
                offline,
                unlisted,
                total: now,
            } => {
                assert!(offline.is_empty(), "{offline:?}");
                assert!(online.len() <= 20);
                told += online.len() + unlisted;
                seen.extend(online.into_iter().map(|n| n.to_string()));
                frames += 1;
                total = now;
            }
            _ => unreachable!(),
        }
    }
    assert!(frames < 60, "one frame per arrival");
    assert_eq!(total, 61);
    assert!((60..=61).contains(&told), "{told}");
    assert!(
        seen.iter().all(|n| n.starts_with('p') || n == "watcher"),
        "{seen:?}"
    );
    // Departures are told the same way.
    drop(crowd);
    let mut gone = 0;
    while gone < 60 {
        let frame = watcher
            .frame_where(|f| matches!(f, ServerFrame::PresenceChanges { .. }))
            .await;
        if let ServerFrame::PresenceChanges {
            offline, unlisted, ..
        } = frame
        {
            gone += offline.len() + unlisted;
        }
    }
    assert_eq!(gone, 60);
}

#[tokio::test]
async fn a_large_room_tells_joins_in_room_changes_and_a_small_one_says_joined() {
    let server = TestServer::start().await;
    let mut watcher = server.native("watcher").await;
    let mut crowd = crowd(&server, "m", 48).await;
    // The 50th member's arrival is still told on its own.
    let _fiftieth = server.native("m048").await;
    watcher
        .frame_where(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == "m048"))
        .await;
    // With 51 the room is large: the next arrival comes in a batch, never alone.
    let mut late = server.native_unlogged().await;
    late.send(&ClientFrame::login("m049")).await;
    // The newcomer hears its own join at once.
    late.frame_where(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == "m049"))
        .await;
    loop {
        match watcher.frame().await {
            ServerFrame::Joined { nick, .. } if nick.as_str() == "m049" => {
                panic!("a join of a large room was told on its own")
            }
            ServerFrame::RoomChanges {
                room,
                joined,
                total,
                ..
            } if names(&joined).contains(&"m049") => {
                assert_eq!((room, total), (RoomName::lobby(), 51));
                break;
            }
            _ => {}
        }
    }
    // A small room keeps its notices.
    let rust: RoomName = "rust".parse().expect("room");
    watcher
        .send(&ClientFrame::Join { room: rust.clone() })
        .await;
    watcher
        .frame_where(|f| matches!(f, ServerFrame::Users { room: Some(r), .. } if *r == rust))
        .await;
    crowd[0]
        .send(&ClientFrame::Join { room: rust.clone() })
        .await;
    let joined = watcher
        .frame_where(|f| matches!(f, ServerFrame::Joined { room, .. } if *room == rust))
        .await;
    assert!(matches!(joined, ServerFrame::Joined { nick, .. } if nick.as_str() == "m000"));
    crowd[0]
        .send(&ClientFrame::Leave { room: rust.clone() })
        .await;
    let left = watcher
        .frame_where(|f| matches!(f, ServerFrame::Left { room, .. } if *room == rust))
        .await;
    assert!(matches!(left, ServerFrame::Left { nick, .. } if nick.as_str() == "m000"));
    // Leaving the lobby, a member hears its own leave at once; the others in a batch.
    crowd[1]
        .send(&ClientFrame::Leave {
            room: RoomName::lobby(),
        })
        .await;
    crowd[1]
        .frame_where(|f| matches!(f, ServerFrame::Left { nick, .. } if nick.as_str() == "m001"))
        .await;
    watcher
        .frame_where(|f| {
            matches!(f, ServerFrame::RoomChanges { left, total, .. }
                if names(left).contains(&"m001") && *total == 50)
        })
        .await;
}
