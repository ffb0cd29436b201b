//! Connection-phase decoders: `HandshakeV10`, `HandshakeResponse41` (and the
//! `SSLRequest`), `AuthSwitchRequest` and `caching_sha2_next`, all fed the
//! whole input. Where a parse succeeds the value is written back with its
//! `write` and parsed again.
//!
//! What a round trip cannot keep (the writers normalise on purpose):
//!
//! * `HandshakeV10.auth_plugin_data`: the writer pads the second scramble
//!   part to the 13 bytes clients expect and, without `CLIENT_PLUGIN_AUTH`,
//!   announces length 0, so clients read exactly 13 bytes. A second part
//!   shorter than 12 bytes therefore comes back NUL-padded, and one longer
//!   than 12 without `CLIENT_PLUGIN_AUTH` comes back cut to 13. It is compared
//!   exactly only where the writer can keep it; otherwise the first 8 bytes
//!   must survive and a second round trip must be a fixed point.
//! * `HandshakeResponse41.capabilities`: the writer derives
//!   `CLIENT_CONNECT_WITH_DB` from `database.is_some()` and
//!   `CLIENT_CONNECT_ATTRS` from `!attributes.is_empty()`; those two bits are
//!   compared through the fields.
//! * `HandshakeResponse41.auth_plugin_name`: with `CLIENT_PLUGIN_AUTH` the
//!   writer always sends a name, so `None` comes back as `Some("")`.

#![no_main]

use bytes::BytesMut;
use funnel_protocol::auth::{caching_sha2, caching_sha2_next, AuthSwitchRequest, CachingSha2Step};
use funnel_protocol::handshake::{ClientHello, HandshakeResponse41, HandshakeV10};
use funnel_protocol::Capabilities;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    greeting(data);
    client_hello(data);
    auth_switch(data);
    auth_more_data(data);
});

fn greeting(data: &[u8]) {
    let Ok(hs) = HandshakeV10::parse(data) else {
        return;
    };
    let _ = hs.is_mariadb();
    assert!(
        hs.auth_plugin_data.len() >= 8,
        "scramble part 1 is always 8 bytes"
    );
    assert!(!hs.server_version.contains(&0));
    let secure = hs.capabilities.contains(Capabilities::CLIENT_SECURE_CONNECTION);
    let plugin = hs.capabilities.contains(Capabilities::CLIENT_PLUGIN_AUTH);

    // Found here (regressions/handshake-1-*): `parse` accepted a 255-byte
    // scramble whose length `write` cannot announce in its one-byte field.
    assert!(hs.auth_plugin_data.len() <= 254);

    let mut out = BytesMut::new();
    hs.write(&mut out);
    let hs2 = HandshakeV10::parse(&out).expect("a written greeting parses");

    assert_eq!(hs2.server_version, hs.server_version);
    assert_eq!(hs2.connection_id, hs.connection_id);
    assert_eq!(hs2.capabilities, hs.capabilities);
    assert_eq!(hs2.charset, hs.charset);
    assert_eq!(hs2.status, hs.status);
    assert_eq!(hs2.auth_plugin_name, hs.auth_plugin_name);
    let part2 = hs.auth_plugin_data.len() - 8;
    let exact = !secure || (part2 >= 12 && (plugin || part2 == 12));
    if exact {
        assert_eq!(hs2.auth_plugin_data, hs.auth_plugin_data);
    } else {
        assert_eq!(hs2.auth_plugin_data[..8], hs.auth_plugin_data[..8]);
    }

    // Once normalised, writing and parsing again changes nothing.
    let mut out2 = BytesMut::new();
    hs2.write(&mut out2);
    let hs3 = HandshakeV10::parse(&out2).expect("a written greeting parses");
    assert_eq!(hs3, hs2);
}

fn client_hello(data: &[u8]) {
    match HandshakeResponse41::parse(data) {
        Err(_) => {}
        Ok(ClientHello::SslRequest {
            capabilities,
            charset,
        }) => {
            assert_eq!(data.len(), 32);
            assert!(capabilities.contains(Capabilities::CLIENT_SSL));
            assert!(capabilities.contains(Capabilities::CLIENT_PROTOCOL_41));
            assert_eq!(charset, data[8]);
        }
        Ok(ClientHello::Response(r)) => {
            let caps = r.capabilities;
            assert!(caps.contains(Capabilities::CLIENT_PROTOCOL_41));
            if let Some(db) = &r.database {
                assert!(!db.is_empty());
            }

            // Without CLIENT_SECURE_CONNECTION and LENENC_CLIENT_DATA the auth
            // response is NUL-terminated; `write` once sent it length-prefixed
            // (found here, regressions/handshake-2-*).
            let mut out = BytesMut::new();
            r.write(&mut out);
            let r2 = match HandshakeResponse41::parse(&out) {
                Ok(ClientHello::Response(r2)) => r2,
                other => panic!("a written login does not parse back as one: {other:?}"),
            };
            let mut want_caps = caps;
            want_caps.set(Capabilities::CLIENT_CONNECT_WITH_DB, r.database.is_some());
            want_caps.set(Capabilities::CLIENT_CONNECT_ATTRS, !r.attributes.is_empty());
            assert_eq!(r2.capabilities, want_caps);
            assert_eq!(r2.max_packet_size, r.max_packet_size);
            assert_eq!(r2.charset, r.charset);
            assert_eq!(r2.username, r.username);
            assert_eq!(r2.auth_response, r.auth_response);
            assert_eq!(r2.database, r.database);
            assert_eq!(r2.attributes, r.attributes);
            if caps.contains(Capabilities::CLIENT_PLUGIN_AUTH) {
                assert_eq!(
                    r2.auth_plugin_name,
                    Some(r.auth_plugin_name.clone().unwrap_or_default())
                );
            } else {
                assert_eq!(r2.auth_plugin_name, None);
                assert_eq!(r.auth_plugin_name, None);
            }

            // Once normalised, an exact fixed point.
            let mut out2 = BytesMut::new();
            r2.write(&mut out2);
            assert_eq!(out2, out, "writing the re-parsed login changes its bytes");
        }
    }
}

fn auth_switch(data: &[u8]) {
    let Ok(req) = AuthSwitchRequest::parse(data) else {
        return;
    };
    assert_eq!(data[0], 0xfe);
    assert!(!req.plugin_name.contains(&0));
    let mut out = BytesMut::new();
    req.write(&mut out);
    let req2 = AuthSwitchRequest::parse(&out).expect("a written auth switch parses");
    assert_eq!(req2, req);
}

fn auth_more_data(data: &[u8]) {
    let password = b"pw";
    for secure in [false, true] {
        let Ok(step) = caching_sha2_next(data, password, secure) else {
            continue;
        };
        assert_eq!(data[0], 0x01, "AuthMoreData header");
        let body = &data[1..];
        match step {
            CachingSha2Step::AwaitOk => assert_eq!(body, [caching_sha2::FAST_AUTH_SUCCESS]),
            CachingSha2Step::Send(bytes) => {
                assert_eq!(body, [caching_sha2::PERFORM_FULL_AUTHENTICATION]);
                if secure {
                    assert_eq!(bytes, b"pw\0");
                } else {
                    assert_eq!(bytes, [caching_sha2::REQUEST_PUBLIC_KEY]);
                }
            }
            CachingSha2Step::EncryptWith(pem) => {
                assert_eq!(pem, body);
                assert!(pem.starts_with(b"-----BEGIN"));
            }
        }
    }
}
