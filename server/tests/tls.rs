//! `wss://` with a test certificate: the server loads PEM files, clients that trust the
//! certificate chat over TLS, and a bad key file is an error at start.

mod common;

use common::{Client, TestServer, to_user};
use protocol::{ClientFrame, ServerFrame};
use server::Config;
use server::tls::TlsFiles;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

struct TestCert {
    _dir: tempfile::TempDir,
    files: TlsFiles,
    der: rustls_pki_types::CertificateDer<'static>,
}

fn test_cert() -> TestCert {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let files = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, cert.cert.pem()).expect("write cert");
    std::fs::write(&files.key, cert.signing_key.serialize_pem()).expect("write key");
    TestCert {
        der: cert.cert.der().clone(),
        files,
        _dir: dir,
    }
}

async fn connect_tls(
    server: &TestServer,
    der: &rustls_pki_types::CertificateDer<'static>,
    nick: &str,
) -> Client<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.clone()).expect("trust the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(protocol::SUBPROTOCOL),
    );
    let (ws, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("WebSocket handshake over TLS");
    let mut client = Client { ws };
    client.send(&ClientFrame::login(nick)).await;
    assert!(matches!(client.frame().await, ServerFrame::Welcome { .. }));
    client
}

#[tokio::test]
async fn two_clients_chat_over_wss_with_a_test_certificate() {
    let cert = test_cert();
    let config = Config {
        tls: Some(cert.files.clone()),
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    let mut alice = connect_tls(&server, &cert.der, "alice").await;
    let mut bob = connect_tls(&server, &cert.der, "bob").await;
    alice.send(&to_user("1", "bob", "over TLS 🔒")).await;
    assert!(matches!(alice.reply().await, ServerFrame::Ack { .. }));
    assert_eq!(bob.message().await.text, "over TLS 🔒");

    // Plain WebSocket on the TLS port does not get through.
    let plain = tokio_tungstenite::connect_async(server.url("/my_ws")).await;
    assert!(plain.is_err());
}

#[tokio::test]
async fn an_unreadable_key_stops_the_server_at_start() {
    let cert = test_cert();
    std::fs::write(&cert.files.key, "not a key").expect("spoil the key");
    let config = Config {
        tls: Some(cert.files.clone()),
        ..Config::default()
    };
    let err = server::Server::open(config).expect_err("refused");
    assert!(err.to_string().contains("private key"), "{err}");
}
