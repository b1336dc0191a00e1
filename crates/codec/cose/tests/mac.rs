//! COSE_Mac0 with HMAC 256/256: the SUIT firmware-encryption AES-KW examples verify under
//! their published key; round trips; refusals.

use otrp_cose::{mac0, verify_mac0, CoseError};

fn provider() -> &'static dyn otrp_crypto::CryptoProvider {
    otrp_crypto::default_provider()
}

fn unhex(path: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(format!("{}/../../../{path}", env!("CARGO_MANIFEST_DIR")))
        .expect("read vector");
    hex::decode(text.split_whitespace().collect::<String>()).expect("hex")
}

/// Extracts (digest content, first authentication block) of a SUIT envelope by hand.
fn auth_parts(envelope: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use ciborium::value::Value;
    let v: Value = ciborium::de::from_reader(envelope).expect("cbor");
    let v = match v {
        Value::Tag(107, inner) => *inner,
        other => other,
    };
    let map = v.as_map().expect("map");
    let wrapper = map
        .iter()
        .find(|(k, _)| k.as_integer() == Some(2.into()))
        .and_then(|(_, v)| v.as_bytes())
        .expect("auth wrapper");
    let arr: Value = ciborium::de::from_reader(wrapper.as_slice()).expect("cbor");
    let arr = arr.as_array().expect("array");
    (
        arr[0].as_bytes().expect("digest").clone(),
        arr[1].as_bytes().expect("block").clone(),
    )
}

#[test]
fn published_aes_kw_manifests_verify_with_the_published_hmac_key() {
    let key = [b'a'; 32];
    for name in [
        "suit-manifest-aes-kw",
        "suit-manifest-aes-kw-content",
        "suit-manifest-aes-kw-slot",
    ] {
        let env = unhex(&format!(
            "testdata/interop/suit-encryption/{name}.hex.signed"
        ));
        let (digest, block) = auth_parts(&env);
        let v = verify_mac0(provider(), &block, Some(&digest), &[&[0u8; 32], &key]).expect(name);
        assert_eq!(v.key_index, 1);
        assert!(matches!(
            verify_mac0(provider(), &block, Some(&digest), &[&[b'b'; 32]]),
            Err(CoseError::BadMac { .. })
        ));
    }
}

#[test]
fn mac0_round_trip_attached_and_detached_and_tamper() {
    let key = [7u8; 32];
    let tagged = mac0(provider(), &key, b"payload", false, true).unwrap();
    assert_eq!(tagged[0], 0xd1); // tag 17
    let v = verify_mac0(provider(), &tagged, None, &[&key]).unwrap();
    assert_eq!(v.payload, b"payload");
    let detached = mac0(provider(), &key, b"digest", true, false).unwrap();
    verify_mac0(provider(), &detached, Some(b"digest"), &[&key]).unwrap();
    assert!(verify_mac0(provider(), &detached, Some(b"digesT"), &[&key]).is_err());
    assert!(verify_mac0(provider(), &detached, None, &[&key]).is_err());
    for i in 0..tagged.len() {
        for bit in 0..8 {
            let mut b = tagged.clone();
            b[i] ^= 1 << bit;
            if let Ok(v) = verify_mac0(provider(), &b, None, &[&key]) {
                // only a change that leaves the MACed content intact may pass
                assert_eq!(v.payload, b"payload", "flip {i}/{bit}");
            }
        }
    }
}

#[test]
fn kid_and_external_aad_round_trip_and_bind_the_tag() {
    use otrp_cose::{mac0_with, parse_mac0, verify_mac0_with, Mac0Options};
    let key = [9u8; 32];
    let opts = Mac0Options {
        kid: b"device-7",
        external_aad: b"lot-1/3",
        tagged: true,
        ..Mac0Options::default()
    };
    let bytes = mac0_with(provider(), &key, b"success", &opts).expect("mac0");
    assert_eq!(bytes[0], 0xd1, "tag 17");
    let parsed = parse_mac0(&bytes).expect("parse");
    assert_eq!(parsed.unprotected.key_id, b"device-7");
    let ok = verify_mac0_with(provider(), &bytes, None, b"lot-1/3", &[&key[..]]).expect("ok");
    assert_eq!(ok.payload, b"success");
    // Another external_aad (another package), another key or a changed payload: refused.
    for (aad, k) in [(&b"lot-1/4"[..], key), (&b"lot-1/3"[..], [8u8; 32])] {
        assert!(matches!(
            verify_mac0_with(provider(), &bytes, None, aad, &[&k[..]]),
            Err(CoseError::BadMac { .. })
        ));
    }
    let other = mac0_with(provider(), &key, b"failure", &opts).expect("mac0");
    let mut forged = parse_mac0(&other).expect("parse");
    forged.tag = parse_mac0(&bytes).expect("parse").tag;
    assert!(
        otrp_cose::verify_parsed_mac0(provider(), &forged, None, b"lot-1/3", &[&key[..]]).is_err()
    );
    // The kid is not covered by the tag but only selects the key: swapping it changes nothing.
    let mut rekid = parse_mac0(&bytes).expect("parse");
    rekid.unprotected.key_id = b"device-8".to_vec();
    assert!(
        otrp_cose::verify_parsed_mac0(provider(), &rekid, None, b"lot-1/3", &[&key[..]]).is_ok()
    );
    // Without kid and aad it is the plain `mac0`.
    let plain = mac0_with(
        provider(),
        &key,
        b"x",
        &Mac0Options {
            tagged: true,
            ..Mac0Options::default()
        },
    )
    .expect("mac0");
    assert_eq!(
        plain,
        mac0(provider(), &key, b"x", false, true).expect("mac0")
    );
    assert!(verify_mac0(provider(), &plain, None, &[&key[..]]).is_ok());
}
