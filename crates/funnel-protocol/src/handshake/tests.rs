use super::*;
use crate::auth::{NativePasswordHash, MYSQL_NATIVE_PASSWORD};
use crate::testdata::{golden, Dir};

#[test]
fn protocol_handshake_golden_mariadb_greeting() {
    let pkts = golden("login_and_queries.txt");
    let (dir, seq, greeting) = &pkts[0];
    assert_eq!((*dir, *seq), (Dir::S2c, 0));
    let hs = HandshakeV10::parse(greeting).unwrap();
    assert_eq!(hs.server_version, b"5.5.5-10.11.19-MariaDB-0+deb12u1");
    assert!(hs.is_mariadb());
    assert_eq!(hs.connection_id, 4);
    assert_eq!(hs.auth_plugin_data.len(), 20);
    assert_eq!(hs.auth_plugin_name, MYSQL_NATIVE_PASSWORD.as_bytes());
    assert_eq!(hs.charset, 8);
    assert!(hs.capabilities.contains(Capabilities::CLIENT_PROTOCOL_41));
    assert!(hs.capabilities.contains(Capabilities::CLIENT_DEPRECATE_EOF));
    // MariaDB clears CLIENT_MYSQL and announces its extended capabilities.
    assert!(!hs.capabilities.contains(Capabilities::CLIENT_MYSQL));
    assert!(hs.capabilities.contains(Capabilities::MARIADB_CLIENT_PROGRESS));
    // Re-encoding gives the same bytes.
    let mut out = BytesMut::new();
    hs.write(&mut out);
    assert_eq!(&out[..], &greeting[..]);
}

#[test]
fn protocol_handshake_golden_client_response_verifies() {
    let pkts = golden("login_and_queries.txt");
    let hs = HandshakeV10::parse(&pkts[0].2).unwrap();
    let resp = match HandshakeResponse41::parse(&pkts[1].2).unwrap() {
        ClientHello::Response(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(resp.username, b"cap");
    assert_eq!(resp.database.as_deref(), Some(&b"capdb"[..]));
    assert_eq!(
        resp.auth_plugin_name.as_deref(),
        Some(MYSQL_NATIVE_PASSWORD.as_bytes())
    );
    assert!(resp
        .attributes
        .iter()
        .any(|(k, v)| k == b"_client_name" && v == b"libmariadb"));
    assert!(resp.capabilities.contains(Capabilities::CLIENT_SESSION_TRACK));
    assert!(!resp.capabilities.contains(Capabilities::CLIENT_DEPRECATE_EOF));
    let stored = NativePasswordHash::from_password(b"secret");
    assert!(stored.verify(&hs.auth_plugin_data, &resp.auth_response));
    assert!(!NativePasswordHash::from_password(b"wrong").verify(&hs.auth_plugin_data, &resp.auth_response));
    // Re-encoding gives the same bytes.
    let mut out = BytesMut::new();
    resp.write(&mut out);
    assert_eq!(&out[..], &pkts[1].2[..]);
}

#[test]
fn protocol_handshake_golden_wrong_password_does_not_verify() {
    let pkts = golden("wrong_password.txt");
    let hs = HandshakeV10::parse(&pkts[0].2).unwrap();
    let ClientHello::Response(resp) = HandshakeResponse41::parse(&pkts[1].2).unwrap() else {
        panic!("expected a login")
    };
    assert!(!NativePasswordHash::from_password(b"secret").verify(&hs.auth_plugin_data, &resp.auth_response));
    assert!(NativePasswordHash::from_password(b"wrong").verify(&hs.auth_plugin_data, &resp.auth_response));
}

#[test]
fn protocol_handshake_ssl_request() {
    let mut b = BytesMut::new();
    let caps = Capabilities::CLIENT_PROTOCOL_41 | Capabilities::CLIENT_SSL | Capabilities::CLIENT_MYSQL;
    b.put_u32_le(caps.lower());
    b.put_u32_le(1 << 24);
    b.put_u8(45);
    b.put_bytes(0, 23);
    match HandshakeResponse41::parse(&b).unwrap() {
        ClientHello::SslRequest {
            capabilities,
            charset,
        } => {
            assert!(capabilities.contains(Capabilities::CLIENT_SSL));
            assert_eq!(charset, 45);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn protocol_handshake_funnel_greeting_roundtrip() {
    let hs = HandshakeV10 {
        server_version: b"5.7.99-Funnel".to_vec(),
        connection_id: 0x0100_0001,
        auth_plugin_data: (1..=20).collect(),
        capabilities: Capabilities::CLIENT_MYSQL
            | Capabilities::CLIENT_PROTOCOL_41
            | Capabilities::CLIENT_SECURE_CONNECTION
            | Capabilities::CLIENT_PLUGIN_AUTH
            | Capabilities::CLIENT_CONNECT_WITH_DB,
        charset: 45,
        status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        auth_plugin_name: MYSQL_NATIVE_PASSWORD.as_bytes().to_vec(),
    };
    let mut b = BytesMut::new();
    hs.write(&mut b);
    assert_eq!(HandshakeV10::parse(&b).unwrap(), hs);
}

#[test]
fn protocol_handshake_rejects_garbage() {
    assert!(HandshakeV10::parse(&[]).is_err());
    assert!(HandshakeV10::parse(&[9, 0]).is_err());
    assert!(HandshakeV10::parse(&[10, b'x']).is_err());
    assert!(HandshakeResponse41::parse(&[0, 0, 0, 0]).is_err());
    // Protocol 4.1 flag missing: refused, not guessed.
    assert!(HandshakeResponse41::parse(&[0u8; 40]).is_err());
    // Auth response longer than the packet.
    let mut b = BytesMut::new();
    b.put_u32_le((Capabilities::CLIENT_PROTOCOL_41 | Capabilities::CLIENT_SECURE_CONNECTION).lower());
    b.put_u32_le(0);
    b.put_u8(45);
    b.put_bytes(0, 23);
    b.put_slice(b"u\0");
    b.put_u8(200);
    assert!(HandshakeResponse41::parse(&b).is_err());
}

// Regressions found by the fuzz targets (fuzz/README.md, known issues 1-2).

#[test]
fn protocol_handshake_scramble_too_long_for_the_length_byte_is_refused() {
    let mut b = BytesMut::new();
    b.put_u8(10);
    b.put_slice(b"v\0");
    b.put_u32_le(0);
    b.put_slice(b"AAAAAAAA\0");
    let caps = Capabilities::CLIENT_SECURE_CONNECTION | Capabilities::CLIENT_PLUGIN_AUTH;
    b.put_u16_le(caps.lower() as u16);
    b.put_u8(33);
    b.put_u16_le(2);
    b.put_u16_le((caps.lower() >> 16) as u16);
    b.put_u8(0xff);
    b.put_bytes(0, 10);
    b.put_bytes(b'B', 247);
    assert!(HandshakeV10::parse(&b).is_err());
}

#[test]
fn protocol_handshake_nul_terminated_auth_response_roundtrips() {
    let mut b = BytesMut::new();
    b.put_u32_le(Capabilities::CLIENT_PROTOCOL_41.lower());
    b.put_u32_le(0);
    b.put_u8(33);
    b.put_bytes(0, 23);
    b.put_slice(b"u\0x\0");
    let ClientHello::Response(r) = HandshakeResponse41::parse(&b).unwrap() else {
        panic!()
    };
    assert_eq!(r.auth_response, b"x");
    let mut out = BytesMut::new();
    r.write(&mut out);
    assert_eq!(
        HandshakeResponse41::parse(&out).unwrap(),
        ClientHello::Response(r)
    );
}
