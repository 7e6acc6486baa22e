//! TLS, mutual TLS, bearer-token authentication and the reflection switch,
//! against the real server. Certificates are made at test time (rcgen).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use article_analyzer::config::{Limits, SecurityConfig, ServerConfig};
use article_analyzer::proto as pb;
use article_analyzer::proto::article_analyzer_client::ArticleAnalyzerClient;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

const TEXT: &str = "Barack Obama was born in Hawaii.";

/// A CA with one server and one client certificate, written as PEM files
/// into a temporary directory that is removed when the `Pki` is dropped.
struct Pki {
    dir: TempDir,
    ca: String,
    client_cert: String,
    client_key: String,
}

struct Issuer {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Issuer {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Issuer { cert, key }
}

/// A leaf certificate and its key, as PEM.
fn leaf(issuer: &Issuer, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, &issuer.cert, &issuer.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix(&format!("article-analyzer-tls-{tag}-"))
            .tempdir()
            .unwrap();
        let issuer = ca("article-analyzer test CA");
        let (server_cert, server_key) =
            leaf(&issuer, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) =
            leaf(&issuer, "client", ExtendedKeyUsagePurpose::ClientAuth);
        let ca = issuer.cert.pem();
        for (name, pem) in [
            ("ca.pem", &ca),
            ("server.pem", &server_cert),
            ("server.key", &server_key),
            ("client.pem", &client_cert),
            ("client.key", &client_key),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        Pki {
            dir,
            ca,
            client_cert,
            client_key,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_tls(&self, mutual: bool) -> SecurityConfig {
        SecurityConfig {
            tls_cert: Some(self.path("server.pem")),
            tls_key: Some(self.path("server.key")),
            tls_client_ca: mutual.then(|| self.path("ca.pem")),
            ..SecurityConfig::default()
        }
    }

    fn client_tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .domain_name("localhost")
    }
}

struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(security: SecurityConfig) -> Server {
    start_with_limits(security, Limits::default()).await
}

async fn start_with_limits(security: SecurityConfig, limits: Limits) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = ServerConfig {
        addr,
        limits,
        drain_secs: 1,
        security,
    };
    let done = tokio::spawn(article_analyzer::server::serve(
        listener,
        article_analyzer::server::ServeOptions::new(config),
        || Ok(common::pipeline()),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        _stop: stop,
        done,
    }
}

async fn connect(server: &Server, tls: Option<ClientTlsConfig>) -> Result<Channel, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://{}", server.addr)).unwrap();
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| format!("{e:?}"))?;
    }
    endpoint.connect().await.map_err(|e| format!("{e:?}"))
}

async fn health(channel: Channel) -> Result<i32, tonic::Status> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status)
}

async fn wait_serving(channel: &Channel) {
    use tonic_health::pb::health_check_response::ServingStatus;
    for _ in 0..600 {
        if health(channel.clone()).await.expect("health check") == ServingStatus::Serving as i32 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not SERVING within 30 s");
}

fn with_token(token: Option<&str>) -> tonic::Request<pb::AnalyzeRequest> {
    let mut req = tonic::Request::new(pb::AnalyzeRequest {
        request_id: "sec".into(),
        text: TEXT.into(),
        options: None,
    });
    if let Some(token) = token {
        req.metadata_mut()
            .insert("authorization", token.parse().unwrap());
    }
    req
}

async fn analyze_ok(channel: Channel) {
    let doc = ArticleAnalyzerClient::new(channel)
        .analyze_document(with_token(None))
        .await
        .expect("the analysis")
        .into_inner();
    let names: Vec<&str> = doc
        .sentences
        .iter()
        .flat_map(|s| s.entities.iter().map(|m| m.text.as_str()))
        .collect();
    assert_eq!(names, ["Barack Obama", "Hawaii"]);
}

#[tokio::test]
async fn tls_serves_encrypted_and_refuses_plaintext() {
    let pki = Pki::new("tls");
    let server = start(pki.server_tls(false)).await;
    let channel = connect(&server, Some(pki.client_tls())).await.unwrap();
    wait_serving(&channel).await;
    analyze_ok(channel).await;

    // A plaintext client gets no answer.
    let plain = match connect(&server, None).await {
        Ok(channel) => health(channel).await.map_err(|s| format!("{s:?}")),
        Err(e) => Err(e),
    };
    assert!(plain.is_err(), "plaintext was served: {plain:?}");

    // A client that does not trust the server's CA cannot connect.
    let stranger = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca("some other CA").cert.pem()))
        .domain_name("localhost");
    let untrusted = match connect(&server, Some(stranger)).await {
        Ok(channel) => health(channel).await.map_err(|s| format!("{s:?}")),
        Err(e) => Err(e),
    };
    assert!(untrusted.is_err(), "an untrusted server was accepted");
    assert!(!server.done.is_finished());
}

#[tokio::test]
async fn a_tls_handshake_that_stalls_is_closed_at_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new("tls-stall");
    let server = start_with_limits(
        pki.server_tls(false),
        Limits {
            handshake_timeout_secs: 1,
            ..Limits::default()
        },
    )
    .await;
    // The start of a ClientHello record (type 22, TLS 1.0, 512 bytes
    // announced) and then silence: past the 24 bytes of the accept loop's
    // deadline, so only the TLS handshake's own deadline can end it.
    let mut peer = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.resize(40, 0);
    peer.write_all(&hello).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match peer.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a stalled TLS handshake was kept open");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The server still serves real TLS clients.
    let channel = connect(&server, Some(pki.client_tls())).await.unwrap();
    wait_serving(&channel).await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new("mtls");
    let server = start(pki.server_tls(true)).await;
    let identity = Identity::from_pem(&pki.client_cert, &pki.client_key);
    let channel = connect(&server, Some(pki.client_tls().identity(identity)))
        .await
        .unwrap();
    wait_serving(&channel).await;
    analyze_ok(channel).await;

    // No client certificate: refused.
    let anonymous = match connect(&server, Some(pki.client_tls())).await {
        Ok(channel) => health(channel).await.map_err(|s| format!("{s:?}")),
        Err(e) => Err(e),
    };
    assert!(
        anonymous.is_err(),
        "a client without a certificate was served"
    );

    // A certificate from another CA: refused.
    let rogue = ca("rogue CA");
    let (cert, key) = leaf(&rogue, "client", ExtendedKeyUsagePurpose::ClientAuth);
    let rogue_tls = pki.client_tls().identity(Identity::from_pem(cert, key));
    let rogue = match connect(&server, Some(rogue_tls)).await {
        Ok(channel) => health(channel).await.map_err(|s| format!("{s:?}")),
        Err(e) => Err(e),
    };
    assert!(
        rogue.is_err(),
        "a client certificate from another CA was accepted"
    );
    assert!(!server.done.is_finished());
}

#[tokio::test]
async fn bearer_tokens_guard_the_analyzer_but_not_health() {
    let pki = Pki::new("auth");
    let tokens = pki.path("tokens");
    std::fs::write(&tokens, "# analyzer callers\ntoken-A\n\n  token-B  \n").unwrap();
    let server = start(SecurityConfig {
        auth_token_file: Some(tokens),
        auth_tokens: vec!["token-from-env".into()],
        ..SecurityConfig::default()
    })
    .await;
    let channel = connect(&server, None).await.unwrap();
    // Health needs no token.
    wait_serving(&channel).await;
    let mut client = ArticleAnalyzerClient::new(channel.clone());

    let cases: &[(Option<&str>, Option<Code>)] = &[
        (None, Some(Code::Unauthenticated)),
        (Some("token-A"), Some(Code::Unauthenticated)),
        (Some("Basic dG9rZW4tQQ=="), Some(Code::Unauthenticated)),
        (Some("Bearer "), Some(Code::Unauthenticated)),
        (Some("Bearer token-C"), Some(Code::PermissionDenied)),
        (Some("Bearer token-"), Some(Code::PermissionDenied)),
        (Some("Bearer token-AA"), Some(Code::PermissionDenied)),
        (Some("Bearer # analyzer"), Some(Code::Unauthenticated)),
        (Some("Bearer token-A"), None),
        (Some("bearer token-B"), None),
        (Some("Bearer token-from-env"), None),
    ];
    for (token, want) in cases {
        let got = client.analyze_document(with_token(*token)).await;
        match (want, got) {
            (None, Ok(doc)) => assert!(doc.into_inner().completed.is_some()),
            (Some(code), Err(status)) => {
                assert_eq!(status.code(), *code, "{token:?}: {status:?}")
            }
            (want, got) => panic!("{token:?}: wanted {want:?}, got {got:?}"),
        }
        // The streaming RPC is guarded the same way.
        let streamed = client.analyze(with_token(*token)).await;
        assert_eq!(
            streamed.err().map(|s| s.code()),
            *want,
            "{token:?} (Analyze)"
        );
    }
    let mut models = tonic::Request::new(pb::GetModelsRequest {});
    assert_eq!(
        client.get_models(models).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    models = tonic::Request::new(pb::GetModelsRequest {});
    models
        .metadata_mut()
        .insert("authorization", "Bearer token-B".parse().unwrap());
    assert!(client.get_models(models).await.is_ok());
}

async fn reflection_list(channel: Channel) -> Result<(), tonic::Status> {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    resp.message().await?;
    Ok(())
}

#[tokio::test]
async fn reflection_can_be_switched_off() {
    let server = start(SecurityConfig {
        no_reflection: true,
        ..SecurityConfig::default()
    })
    .await;
    let channel = connect(&server, None).await.unwrap();
    wait_serving(&channel).await;
    let err = reflection_list(channel.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    analyze_ok(channel).await;

    let open = start(SecurityConfig::default()).await;
    let channel = connect(&open, None).await.unwrap();
    wait_serving(&channel).await;
    reflection_list(channel)
        .await
        .expect("reflection is on by default");
}

async fn must_fail_to_start(security: SecurityConfig, needle: &str) {
    let server = start(security).await;
    let err = server
        .done
        .await
        .unwrap()
        .expect_err("a bad security setting must stop the server");
    let message = format!("{err:#}");
    assert!(message.contains(needle), "{message}");
}

#[tokio::test]
async fn bad_security_settings_stop_the_server_with_a_reason() {
    let pki = Pki::new("bad");
    let missing = Path::new("/nonexistent/server.pem").to_path_buf();
    let empty_tokens = pki.path("empty-tokens");
    std::fs::write(&empty_tokens, "# nobody\n\n").unwrap();
    let cases = [
        (
            SecurityConfig {
                tls_cert: Some(pki.path("server.pem")),
                ..SecurityConfig::default()
            },
            "--tls-key",
        ),
        (
            SecurityConfig {
                tls_client_ca: Some(pki.path("ca.pem")),
                ..SecurityConfig::default()
            },
            "--tls-client-ca",
        ),
        (
            SecurityConfig {
                tls_cert: Some(missing.clone()),
                tls_key: Some(pki.path("server.key")),
                ..SecurityConfig::default()
            },
            "/nonexistent/server.pem",
        ),
        (
            SecurityConfig {
                // A key where the certificate should be.
                tls_cert: Some(pki.path("server.key")),
                tls_key: Some(pki.path("server.key")),
                ..SecurityConfig::default()
            },
            "holds no PEM CERTIFICATE",
        ),
        (
            SecurityConfig {
                auth_token_file: Some(empty_tokens.clone()),
                ..SecurityConfig::default()
            },
            "holds no token",
        ),
    ];
    for (security, needle) in cases {
        must_fail_to_start(security, needle).await;
    }
}

/// The `client` subcommand against a server with mutual TLS and tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_subcommand_speaks_mutual_tls_with_a_token() {
    let pki = Pki::new("cli");
    let tokens = pki.path("tokens");
    std::fs::write(&tokens, "cli-token\n").unwrap();
    let server = start(SecurityConfig {
        auth_token_file: Some(tokens),
        ..pki.server_tls(true)
    })
    .await;
    let identity = Identity::from_pem(&pki.client_cert, &pki.client_key);
    let channel = connect(&server, Some(pki.client_tls().identity(identity)))
        .await
        .unwrap();
    wait_serving(&channel).await;

    let run = |token: Option<&'static str>| {
        let addr = format!("http://{}", server.addr);
        let (ca, cert, key) = (
            pki.path("ca.pem"),
            pki.path("client.pem"),
            pki.path("client.key"),
        );
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_article-analyzer"));
            cmd.args(["client", "--addr", &addr, "--tls-domain", "localhost"])
                .arg("--ca")
                .arg(ca)
                .arg("--cert")
                .arg(cert)
                .arg("--key")
                .arg(key)
                .arg("-")
                .env_remove("ARTICLE_ANALYZER_CLIENT_AUTH_TOKEN")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if let Some(token) = token {
                cmd.env("ARTICLE_ANALYZER_CLIENT_AUTH_TOKEN", token);
            }
            let mut child = cmd.spawn().unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(TEXT.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
    };
    let ok = run(Some("cli-token")).await.unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("Barack Obama"), "{stdout}");
    assert!(stdout.contains("\"completed\""), "{stdout}");

    let refused = run(None).await.unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("missing credentials"), "{stderr}");
}
