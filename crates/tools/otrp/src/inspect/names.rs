//! Names of the integer labels of TEEP, COSE, SUIT and EAT, for the readable views.
//! Presentation only: the codecs own the numbers they encode.

/// The schema context a CBOR item is found in; it decides how labels are named and which
/// byte strings hold embedded CBOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    /// Nothing known.
    Any,
    /// A TEEP message array.
    TeepMessage,
    /// The options map of a TEEP message.
    TeepOptions,
    /// `tc-list` entries (system-property-claims) and SUIT parameter maps.
    SuitParameters,
    /// A `requested-tc-list` entry.
    RequestedTc,
    /// COSE header map.
    CoseHeaders,
    /// COSE_Key map.
    CoseKey,
    /// SUIT envelope map.
    SuitEnvelope,
    /// SUIT authentication wrapper array.
    SuitAuth,
    /// SUIT manifest map.
    SuitManifest,
    /// SUIT common map.
    SuitCommon,
    /// SUIT command sequence array.
    SuitSequence,
    /// SUIT text map.
    SuitText,
    /// EAT claims set.
    EatClaims,
    /// SUIT report map.
    SuitReport,
    /// `cnf` claim.
    Cnf,
}

/// The name of map key `label` in context `ctx`.
pub fn label(ctx: Ctx, label: i64) -> Option<&'static str> {
    Some(match (ctx, label) {
        (Ctx::TeepOptions, 1) => "supported-teep-cipher-suites",
        (Ctx::TeepOptions, 2) => "challenge",
        (Ctx::TeepOptions, 3) => "versions",
        (Ctx::TeepOptions, 4) => "supported-suit-cose-profiles",
        (Ctx::TeepOptions, 5) => "selected-teep-cipher-suite (removed)",
        (Ctx::TeepOptions, 6) => "selected-version",
        (Ctx::TeepOptions, 7) => "attestation-payload",
        (Ctx::TeepOptions, 8) => "tc-list",
        (Ctx::TeepOptions, 9) => "ext-list",
        (Ctx::TeepOptions, 10) => "manifest-list",
        (Ctx::TeepOptions, 11) => "msg",
        (Ctx::TeepOptions, 12) => "err-msg",
        (Ctx::TeepOptions, 13) => "attestation-payload-format",
        (Ctx::TeepOptions, 14) => "requested-tc-list",
        (Ctx::TeepOptions, 15) => "unneeded-manifest-list",
        (Ctx::TeepOptions, 19) => "suit-reports",
        (Ctx::TeepOptions, 20) => "token",
        (Ctx::TeepOptions, 21) => "supported-freshness-mechanisms",
        (Ctx::TeepOptions, 22) => "err-lang",
        (Ctx::TeepOptions, 23) => "err-code",
        (Ctx::RequestedTc, 16) => "component-id",
        (Ctx::RequestedTc, 17) => "tc-manifest-sequence-number",
        (Ctx::RequestedTc, 18) => "have-binary",
        (Ctx::SuitParameters, 0) => "system-component-id",
        (Ctx::SuitParameters, 1) => "vendor-identifier",
        (Ctx::SuitParameters, 2) => "class-identifier",
        (Ctx::SuitParameters, 3) => "image-digest",
        (Ctx::SuitParameters, 4) => "use-before",
        (Ctx::SuitParameters, 5) => "component-slot",
        (Ctx::SuitParameters, 12) => "strict-order",
        (Ctx::SuitParameters, 13) => "soft-failure",
        (Ctx::SuitParameters, 14) => "image-size",
        (Ctx::SuitParameters, 18) => "content",
        (Ctx::SuitParameters, 19) => "encryption-info",
        (Ctx::SuitParameters, 21) => "uri",
        (Ctx::SuitParameters, 22) => "source-component",
        (Ctx::SuitParameters, 23) => "invoke-args",
        (Ctx::SuitParameters, 24) => "device-identifier",
        (Ctx::SuitParameters, 25) => "fetch-arguments",
        (Ctx::SuitParameters, 26) => "minimum-battery",
        (Ctx::SuitParameters, 27) => "update-priority",
        (Ctx::SuitParameters, 28) => "version",
        (Ctx::SuitParameters, 29) => "wait-info",
        (Ctx::SuitParameters, 30) => "component-metadata",
        (Ctx::CoseHeaders, 1) => "alg",
        (Ctx::CoseHeaders, 2) => "crit",
        (Ctx::CoseHeaders, 3) => "content-type",
        (Ctx::CoseHeaders, 4) => "kid",
        (Ctx::CoseHeaders, 5) => "IV",
        (Ctx::CoseHeaders, 6) => "partial-IV",
        (Ctx::CoseHeaders, 33) => "x5chain",
        (Ctx::CoseHeaders, 34) => "x5t",
        (Ctx::CoseHeaders, -1) => "ephemeral-key",
        (Ctx::CoseKey, 1) => "kty",
        (Ctx::CoseKey, 2) => "kid",
        (Ctx::CoseKey, 3) => "alg",
        (Ctx::CoseKey, -1) => "crv",
        (Ctx::CoseKey, -2) => "x",
        (Ctx::CoseKey, -3) => "y",
        (Ctx::CoseKey, -4) => "d",
        (Ctx::SuitEnvelope, 1) => "delegation",
        (Ctx::SuitEnvelope, 2) => "authentication-wrapper",
        (Ctx::SuitEnvelope, 3) => "manifest",
        (Ctx::SuitEnvelope, 15) => "dependency-resolution",
        (Ctx::SuitEnvelope, 16) => "payload-fetch",
        (Ctx::SuitEnvelope, 18) => "candidate-verification",
        (Ctx::SuitEnvelope, 20) => "install",
        (Ctx::SuitEnvelope, 23) => "text",
        (Ctx::SuitManifest, 1) => "manifest-version",
        (Ctx::SuitManifest, 2) => "manifest-sequence-number",
        (Ctx::SuitManifest, 3) => "common",
        (Ctx::SuitManifest, 4) => "reference-uri",
        (Ctx::SuitManifest, 5) => "manifest-component-id",
        (Ctx::SuitManifest, 6) => "set-version",
        (Ctx::SuitManifest, 7) => "validate",
        (Ctx::SuitManifest, 8) => "load",
        (Ctx::SuitManifest, 9) => "invoke",
        (Ctx::SuitManifest, 14) => "coswid",
        (Ctx::SuitManifest, 15) => "dependency-resolution",
        (Ctx::SuitManifest, 16) => "payload-fetch",
        (Ctx::SuitManifest, 17) => "install (pre-21 label)",
        (Ctx::SuitManifest, 18) => "candidate-verification",
        (Ctx::SuitManifest, 20) => "install",
        (Ctx::SuitManifest, 23) => "text",
        (Ctx::SuitManifest, 24) => "uninstall",
        (Ctx::SuitCommon, 1) => "dependencies",
        (Ctx::SuitCommon, 2) => "components",
        (Ctx::SuitCommon, 4) => "shared-sequence",
        (Ctx::SuitText, 1) => "manifest-description",
        (Ctx::SuitText, 2) => "update-description",
        (Ctx::SuitText, 3) => "manifest-json-source",
        (Ctx::SuitText, 4) => "manifest-yaml-source",
        (Ctx::SuitText, 7) => "version-required",
        (Ctx::SuitText, 8) => "current-version",
        (Ctx::EatClaims, 1) => "iss",
        (Ctx::EatClaims, 2) => "sub",
        (Ctx::EatClaims, 4) => "exp",
        (Ctx::EatClaims, 6) => "iat",
        (Ctx::EatClaims, 8) => "cnf",
        (Ctx::EatClaims, 10) => "eat_nonce",
        (Ctx::EatClaims, 256) => "ueid",
        (Ctx::EatClaims, 257) => "sueids",
        (Ctx::EatClaims, 258) => "oemid",
        (Ctx::EatClaims, 259) => "hwmodel",
        (Ctx::EatClaims, 260) => "hwversion",
        (Ctx::EatClaims, 261) => "uptime",
        (Ctx::EatClaims, 262) => "oemboot",
        (Ctx::EatClaims, 263) => "dbgstat",
        (Ctx::EatClaims, 264) => "location",
        (Ctx::EatClaims, 265) => "eat_profile",
        (Ctx::EatClaims, 266) => "submods",
        (Ctx::EatClaims, 267) => "bootcount",
        (Ctx::EatClaims, 268) => "bootseed",
        (Ctx::EatClaims, 269) => "dloas",
        (Ctx::EatClaims, 270) => "swname",
        (Ctx::EatClaims, 271) => "swversion",
        (Ctx::EatClaims, 272) => "manifests",
        (Ctx::EatClaims, 273) => {
            "measurements (RFC 9711; the TEEP draft example uses it for manifests)"
        }
        (Ctx::EatClaims, 274) => "measres",
        (Ctx::EatClaims, 275) => "intuse",
        (Ctx::Cnf, 1) => "COSE_Key",
        (Ctx::Cnf, 2) => "Encrypted_COSE_Key",
        (Ctx::Cnf, 3) => "kid",
        (Ctx::SuitReport, 2) => "suit-report-nonce",
        (Ctx::SuitReport, 3) => "suit-report-records",
        (Ctx::SuitReport, 4) => "suit-report-result",
        (Ctx::SuitReport, 8) => "suit-report-capability-report",
        (Ctx::SuitReport, 99) => "suit-reference",
        _ => return None,
    })
}

/// The context of the value stored under `label` in a map of context `ctx`.
pub fn value_ctx(ctx: Ctx, label: i64) -> Ctx {
    match (ctx, label) {
        (Ctx::TeepOptions, 8) => Ctx::SuitParameters,
        (Ctx::TeepOptions, 14) => Ctx::RequestedTc,
        (Ctx::TeepOptions, 10) => Ctx::SuitEnvelope,
        (Ctx::TeepOptions, 19) => Ctx::SuitReport,
        (Ctx::TeepOptions, 7) => Ctx::Any,
        (Ctx::SuitEnvelope, 2) => Ctx::SuitAuth,
        (Ctx::SuitEnvelope, 3) => Ctx::SuitManifest,
        (Ctx::SuitEnvelope, 15 | 16 | 18 | 20) => Ctx::SuitSequence,
        (Ctx::SuitEnvelope, 23) => Ctx::SuitText,
        (Ctx::SuitManifest, 3) => Ctx::SuitCommon,
        (Ctx::SuitManifest, 7..=9 | 15..=18 | 20 | 24) => Ctx::SuitSequence,
        (Ctx::SuitManifest, 23) => Ctx::SuitText,
        (Ctx::SuitCommon, 4) => Ctx::SuitSequence,
        (Ctx::EatClaims, 8) => Ctx::Cnf,
        (Ctx::Cnf, 1) => Ctx::CoseKey,
        (Ctx::CoseHeaders, -1) => Ctx::CoseKey,
        _ => Ctx::Any,
    }
}

/// TEEP message type names (draft-ietf-teep-protocol; success 5, error 6).
pub fn teep_type(t: i64) -> Option<&'static str> {
    Some(match t {
        1 => "QueryRequest",
        2 => "QueryResponse",
        3 => "Update",
        5 => "Success",
        6 => "Error",
        _ => return None,
    })
}

/// COSE algorithm names.
pub fn cose_alg(a: i64) -> Option<&'static str> {
    Some(match a {
        -7 => "ES256",
        -9 => "ESP256",
        -8 => "EdDSA",
        -19 => "Ed25519",
        -35 => "ES384",
        -257 => "RS256",
        -16 => "SHA-256",
        -3 => "A128KW",
        -4 => "A192KW",
        -5 => "A256KW",
        -29 => "ECDH-ES+A128KW",
        -25 => "ECDH-ES+HKDF-256",
        1 => "A128GCM",
        3 => "A256GCM",
        24 => "ChaCha20/Poly1305",
        5 => "HMAC 256/256",
        -65534 => "A128CTR",
        -65532 => "A256CTR",
        _ => return None,
    })
}

/// SUIT command names (conditions and directives).
pub fn suit_command(c: i64) -> Option<&'static str> {
    Some(match c {
        1 => "condition-vendor-identifier",
        2 => "condition-class-identifier",
        3 => "condition-image-match",
        4 => "condition-use-before",
        5 => "condition-component-slot",
        6 => "condition-check-content",
        7 => "condition-dependency-integrity",
        8 => "condition-is-dependency",
        11 => "directive-process-dependency",
        12 => "directive-set-component-index",
        14 => "condition-abort",
        15 => "directive-try-each",
        18 => "directive-write",
        19 => "directive-set-parameters",
        20 => "directive-override-parameters",
        21 => "directive-fetch",
        22 => "directive-copy",
        23 => "directive-invoke",
        24 => "condition-device-identifier",
        25 => "condition-image-not-match",
        26 => "condition-minimum-battery",
        27 => "condition-update-authorized",
        28 => "condition-version",
        29 => "directive-wait",
        31 => "directive-swap",
        32 => "directive-run-sequence",
        33 => "directive-unlink",
        34 => "directive-override-multiple",
        35 => "directive-copy-params",
        _ => return None,
    })
}

/// TEEP error code names.
pub fn teep_err(code: i64) -> Option<&'static str> {
    Some(match code {
        1 => "ERR_PERMANENT_ERROR",
        2 => "ERR_UNSUPPORTED_EXTENSION",
        3 => "ERR_UNSUPPORTED_FRESHNESS_MECHANISMS",
        4 => "ERR_UNSUPPORTED_MSG_VERSION",
        5 => "ERR_UNSUPPORTED_CIPHER_SUITES",
        6 => "ERR_BAD_CERTIFICATE",
        7 => "ERR_ATTESTATION_REQUIRED",
        8 => "ERR_UNSUPPORTED_SUIT_REPORT",
        9 => "ERR_CERTIFICATE_EXPIRED",
        10 => "ERR_TEMPORARY_ERROR",
        17 => "ERR_MANIFEST_PROCESSING_FAILED",
        _ => return None,
    })
}
