use super::*;

#[test]
fn protocol_auth_native_hash_text_matches_mariadb() {
    // `SELECT PASSWORD('secret')` on MariaDB 10.11.
    let h = NativePasswordHash::from_password(b"secret");
    assert_eq!(h.to_text(), "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7");
    assert_eq!(NativePasswordHash::parse(&h.to_text()).unwrap(), h);
    assert_eq!(NativePasswordHash::parse("").unwrap(), NativePasswordHash::Empty);
    assert!(NativePasswordHash::parse("14E65567ABDB5135D0CFD9A70B3032C179A49EE7").is_err());
    assert!(NativePasswordHash::parse("*14E6").is_err());
    assert!(NativePasswordHash::parse("*ZZE65567ABDB5135D0CFD9A70B3032C179A49EE7").is_err());
}

#[test]
fn protocol_auth_native_scramble_verifies() {
    let scramble: Vec<u8> = (0..20).map(|i| i * 7 + 3).collect();
    let resp = native_password_scramble(b"pw", &scramble);
    assert_eq!(resp.len(), 20);
    assert!(NativePasswordHash::from_password(b"pw").verify(&scramble, &resp));
    assert!(!NativePasswordHash::from_password(b"pw2").verify(&scramble, &resp));
    assert!(!NativePasswordHash::from_password(b"pw").verify(&scramble, &resp[..19]));
    // Empty password: only an empty answer passes.
    assert!(NativePasswordHash::Empty.verify(&scramble, &[]));
    assert!(!NativePasswordHash::Empty.verify(&scramble, &resp));
    assert!(native_password_scramble(b"", &scramble).is_empty());
    assert_eq!(
        format!("{:?}", NativePasswordHash::from_password(b"pw")),
        "NativePasswordHash::Hash(<redacted>)"
    );
}

#[test]
fn protocol_auth_caching_sha2_known_vector() {
    // Computed independently with Python's hashlib:
    // p1 = sha256(b"secret"); p3 = sha256(sha256(p1) + scramble); xor(p1, p3)
    let scramble: Vec<u8> = (1..=20).collect();
    let got = caching_sha2_scramble(b"secret", &scramble);
    assert_eq!(
        got,
        crate::testdata::hex("746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9")
    );
    assert!(caching_sha2_scramble(b"", &scramble).is_empty());
}

#[test]
fn protocol_auth_caching_sha2_steps() {
    assert_eq!(
        caching_sha2_next(&[1, 3], b"pw", false).unwrap(),
        CachingSha2Step::AwaitOk
    );
    assert_eq!(
        caching_sha2_next(&[1, 4], b"pw", true).unwrap(),
        CachingSha2Step::Send(b"pw\0".to_vec())
    );
    assert_eq!(
        caching_sha2_next(&[1, 4], b"pw", false).unwrap(),
        CachingSha2Step::Send(vec![caching_sha2::REQUEST_PUBLIC_KEY])
    );
    let mut pem = vec![1u8];
    pem.extend_from_slice(b"-----BEGIN PUBLIC KEY-----\n...");
    assert!(matches!(
        caching_sha2_next(&pem, b"pw", false).unwrap(),
        CachingSha2Step::EncryptWith(_)
    ));
    assert!(caching_sha2_next(&[2, 3], b"pw", false).is_err());
    assert!(caching_sha2_next(&[1, 9], b"pw", false).is_err());
    assert_eq!(
        xor_password_with_scramble(b"ab", &[1, 2]),
        vec![b'a' ^ 1, b'b' ^ 2, 1]
    );
}

#[test]
fn protocol_auth_switch_roundtrip() {
    let req = AuthSwitchRequest {
        plugin_name: MYSQL_NATIVE_PASSWORD.as_bytes().to_vec(),
        plugin_data: (0..20).collect(),
    };
    let mut b = BytesMut::new();
    req.write(&mut b);
    assert_eq!(AuthSwitchRequest::parse(&b).unwrap(), req);
    assert!(AuthSwitchRequest::parse(&[0x00]).is_err());
    assert!(AuthSwitchRequest::parse(&[]).is_err());
}

#[test]
fn protocol_auth_rsa_password_roundtrip() {
    use rsa::pkcs8::EncodePublicKey;
    let mut rng = rand::thread_rng();
    let private = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
    let pem = private
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let scramble: Vec<u8> = (1..=20).collect();
    let sealed = rsa_encrypt_password(pem.as_bytes(), b"s3cret", &scramble, &mut rng).unwrap();
    assert_eq!(sealed.len(), 128);
    let opened = private.decrypt(rsa::Oaep::new::<Sha1>(), &sealed).unwrap();
    assert_eq!(opened, xor_password_with_scramble(b"s3cret", &scramble));
    assert!(rsa_encrypt_password(b"-----BEGIN PUBLIC KEY-----\nnope", b"x", &scramble, &mut rng).is_err());
}

#[test]
fn protocol_auth_caching_sha2_server_side_verifies_the_client_scramble() {
    let scramble: Vec<u8> = (1..=20).collect();
    let stored = Sha2PasswordHash::from_password(b"s3cret");
    let answer = caching_sha2_scramble(b"s3cret", &scramble);
    assert!(stored.verify_scramble(&scramble, &answer, false));
    assert!(!Sha2PasswordHash::from_password(b"other").verify_scramble(&scramble, &answer, false));
    assert!(!stored.verify_scramble(&scramble, &answer[..31], false));
    assert!(stored.verify_scramble(&scramble, &[], true));
    assert!(
        stored.verify_scramble(&scramble, &[0], true),
        "libmysqlclient's empty answer"
    );
    assert!(!stored.verify_scramble(&scramble, &[0, 0], true));
    assert_eq!(format!("{stored:?}"), "Sha2PasswordHash(<redacted>)");
}
