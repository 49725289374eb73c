//! Registered nicknames: a password guards the name, and its owner may be logged in from
//! several places at once.

mod common;

use common::{Client, TestServer, error_code, to_user};
use protocol::{ClientFrame, ErrorCode, SeedChat, ServerFrame};
use server::Config;
use server::store::Location;

const PASSWORD: &str = "correct horse battery";

async fn register(client: &mut Client, password: &str) -> ServerFrame {
    client
        .send(&ClientFrame::Register {
            password: password.into(),
        })
        .await;
    client
        .frame_where(|f| {
            matches!(
                f,
                ServerFrame::Registered { .. } | ServerFrame::Error { .. }
            )
        })
        .await
}

async fn login_with(
    server: &TestServer,
    nick: &str,
    password: Option<&str>,
) -> (Client, ServerFrame) {
    let mut client = server.native_unlogged().await;
    client
        .send(&ClientFrame::Login {
            nick: nick.into(),
            resume: Vec::new(),
            password: password.map(str::to_owned),
        })
        .await;
    let reply = client.frame().await;
    (client, reply)
}

#[tokio::test]
async fn a_registered_nickname_needs_its_password_and_all_sessions_get_messages() {
    let server = TestServer::start().await;
    let mut first = server.native("alice").await;
    assert_eq!(
        error_code(&register(&mut first, "short").await),
        ErrorCode::WeakPassword
    );
    let reply = register(&mut first, PASSWORD).await;
    assert!(
        matches!(&reply, ServerFrame::Registered { nick } if nick.as_str() == "alice"),
        "{reply:?}"
    );
    assert_eq!(
        error_code(&register(&mut first, PASSWORD).await),
        ErrorCode::AlreadyRegistered
    );

    let (_, reply) = login_with(&server, "alice", None).await;
    assert_eq!(error_code(&reply), ErrorCode::PasswordRequired);
    let (_, reply) = login_with(&server, "alice", Some("wrong horse battery")).await;
    assert_eq!(error_code(&reply), ErrorCode::WrongPassword);
    let (mut second, reply) = login_with(&server, "alice", Some(PASSWORD)).await;
    assert!(matches!(reply, ServerFrame::Welcome { .. }), "{reply:?}");

    // bob's message reaches both sessions.
    let mut bob = server.native("bob").await;
    bob.send(&to_user("b1", "alice", "to every alice")).await;
    assert_eq!(first.message().await.text, "to every alice");
    assert_eq!(second.message().await.text, "to every alice");
    // What alice sends from one session shows in the other.
    first
        .send(&to_user("a1", "bob", "sent from the first"))
        .await;
    assert_eq!(bob.message().await.text, "sent from the first");
    let mirrored = second.message().await;
    assert_eq!(
        (mirrored.from.as_str(), mirrored.text.as_str()),
        ("alice", "sent from the first")
    );
}

#[tokio::test]
async fn presence_counts_a_user_once_however_many_sessions() {
    let server = TestServer::start().await;
    let mut watcher = server.native("watcher").await;
    let mut first = server.native("alice").await;
    // Online when the first session came.
    watcher
        .frame_where(|f| f.presence_of("alice") == Some(true))
        .await;
    assert!(matches!(
        register(&mut first, PASSWORD).await,
        ServerFrame::Registered { .. }
    ));
    let (second, _) = login_with(&server, "alice", Some(PASSWORD)).await;
    drop(first);
    drop(second);
    // Then offline when the last left, and nothing about her in between.
    let mut seen = Vec::new();
    while seen.last() != Some(&false) {
        let frame = watcher
            .frame_where(|f| f.presence_of("alice").is_some())
            .await;
        seen.extend(frame.presence_of("alice"));
    }
    assert_eq!(seen, [false]);
}

#[tokio::test]
async fn a_seed_page_cannot_take_a_registered_nickname() {
    let server = TestServer::start().await;
    let mut alice = server.native("alice").await;
    assert!(matches!(
        register(&mut alice, PASSWORD).await,
        ServerFrame::Registered { .. }
    ));
    drop(alice);
    let mut watcher = server.native("watcher").await;
    watcher.send(&ClientFrame::who(None)).await;
    // Wait until alice has left, then try her name from the old page.
    loop {
        match watcher
            .frame_where(|f| matches!(f, ServerFrame::Users { room: None, .. }))
            .await
        {
            ServerFrame::Users { users, .. } if users.iter().all(|u| u.as_str() != "alice") => {
                break;
            }
            _ => watcher.send(&ClientFrame::who(None)).await,
        }
    }
    let mut page = server.seed_single("alice").await;
    let notice: SeedChat = page.json().await;
    assert_eq!(notice.from_user, "system");
    assert!(notice.message.contains("registered"), "{}", notice.message);
    let close = page.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
}

#[tokio::test]
async fn a_registration_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || Config {
        store: Location::Dir(dir.path().to_owned()),
        ..Config::default()
    };
    let server = TestServer::with_config(config()).await;
    let mut alice = server.native("alice").await;
    assert!(matches!(
        register(&mut alice, PASSWORD).await,
        ServerFrame::Registered { .. }
    ));
    server.stop().await;

    let server = TestServer::with_config(config()).await;
    let (_, reply) = login_with(&server, "alice", None).await;
    assert_eq!(error_code(&reply), ErrorCode::PasswordRequired);
    let (_, reply) = login_with(&server, "alice", Some(PASSWORD)).await;
    assert!(matches!(reply, ServerFrame::Welcome { .. }), "{reply:?}");
}
