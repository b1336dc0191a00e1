//! The CBOR label table (map keys and command numbers) used by this crate.
//!
//! The numbers moved between draft versions; the ones here are those of
//! draft-ietf-suit-manifest-34 (identical in the -37 editor's copy), extended by
//! draft-ietf-suit-trust-domains-12, draft-ietf-suit-firmware-encryption-24/25,
//! draft-ietf-suit-update-management (repo -14) and draft-ietf-suit-report (repo -18).
//!
//! | scope | label | name | source |
//! |---|---|---|---|
//! | envelope | 2 | authentication-wrapper | manifest |
//! | envelope | 3 | manifest | manifest |
//! | envelope/manifest | 14 | coswid (severable) | update-management |
//! | envelope/manifest | 15 | dependency-resolution (severable) | trust-domains |
//! | envelope/manifest | 16 | payload-fetch (severable) | manifest |
//! | envelope/manifest | 18 | candidate-verification (severable) | trust-domains |
//! | envelope/manifest | 20 | install (severable; 17 in drafts before -21, kept as an unknown key) | manifest |
//! | envelope/manifest | 23 | text (severable) | manifest |
//! | envelope | tstr | integrated payload / integrated dependency | manifest, trust-domains |
//! | manifest | 1 | manifest-version (= 1) | manifest |
//! | manifest | 2 | sequence-number | manifest |
//! | manifest | 3 | common | manifest |
//! | manifest | 4 | reference-uri | manifest |
//! | manifest | 5 | manifest-component-id | trust-domains |
//! | manifest | 6 | set-version | update-management |
//! | manifest | 7 / 8 / 9 | validate / load / invoke | manifest |
//! | manifest | 24 | uninstall | trust-domains |
//! | common | 1 | dependencies `{uint => {? 1 dependency-prefix}}` | trust-domains |
//! | common | 2 | components | manifest |
//! | common | 4 | shared-sequence | manifest |
//! | condition | 1 vendor-id, 2 class-id, 3 image-match, 5 component-slot, 6 check-content, 14 abort, 24 device-id | | manifest |
//! | condition | 7 dependency-integrity, 8 is-dependency | | trust-domains |
//! | condition | 4 use-before, 25 image-not-match, 26 minimum-battery, 27 update-authorized, 28 version | | update-management |
//! | directive | 12 set-component-index, 15 try-each, 18 write, 20 override-parameters, 21 fetch, 22 copy, 23 invoke, 31 swap, 32 run-sequence | | manifest |
//! | directive | 11 process-dependency, 19 set-parameters, 33 unlink | | trust-domains |
//! | directive | 29 wait, 34 override-multiple, 35 copy-params | | update-management |
//! | parameter | 1 vendor-id, 2 class-id, 3 image-digest, 5 component-slot, 12 strict-order, 13 soft-failure, 14 image-size, 18 content, 21 uri, 22 source-component, 23 invoke-args, 24 device-id, 25 fetch-arguments | | manifest |
//! | parameter | 19 encryption-info | | firmware-encryption |
//! | parameter | 4 use-before, 26 minimum-battery, 27 update-priority, 28 version, 29 wait-info, 30 component-metadata | | update-management |
//! | command / parameter | negative integers | custom | manifest |
//! | report | 99 reference, 2 nonce, 3 records, 4 result, 5 result-code, 6 result-record, 7 result-reason, 8 capability-report | | report |
//! | system-property-claims | 0 system-component-id | | report |

/// Envelope keys (`SUIT_Envelope`).
pub mod envelope {
    /// `suit-delegation` (trust-domains CDDL; kept as an unknown member).
    pub const DELEGATION: i64 = 1;
    /// `suit-authentication-wrapper`.
    pub const AUTHENTICATION_WRAPPER: i64 = 2;
    /// `suit-manifest`.
    pub const MANIFEST: i64 = 3;
}

/// Manifest keys (`SUIT_Manifest`); the severable ones are also envelope keys.
pub mod manifest {
    /// `suit-manifest-version`.
    pub const VERSION: i64 = 1;
    /// `suit-manifest-sequence-number`.
    pub const SEQUENCE_NUMBER: i64 = 2;
    /// `suit-common`.
    pub const COMMON: i64 = 3;
    /// `suit-reference-uri`.
    pub const REFERENCE_URI: i64 = 4;
    /// `suit-manifest-component-id` (trust-domains).
    pub const MANIFEST_COMPONENT_ID: i64 = 5;
    /// `suit-set-version` (update-management).
    pub const SET_VERSION: i64 = 6;
    /// `suit-validate`.
    pub const VALIDATE: i64 = 7;
    /// `suit-load`.
    pub const LOAD: i64 = 8;
    /// `suit-invoke`.
    pub const INVOKE: i64 = 9;
    /// `suit-coswid` (update-management, severable).
    pub const COSWID: i64 = 14;
    /// `suit-dependency-resolution` (trust-domains, severable).
    pub const DEPENDENCY_RESOLUTION: i64 = 15;
    /// `suit-payload-fetch` (severable).
    pub const PAYLOAD_FETCH: i64 = 16;
    /// `suit-install` in drafts before TEEP -21 / suit-manifest -2x (now unknown).
    pub const LEGACY_INSTALL: i64 = 17;
    /// `suit-candidate-verification` (trust-domains, severable).
    pub const CANDIDATE_VERIFICATION: i64 = 18;
    /// `suit-install` (severable).
    pub const INSTALL: i64 = 20;
    /// `suit-text` (severable).
    pub const TEXT: i64 = 23;
    /// `suit-uninstall` (trust-domains, unseverable).
    pub const UNINSTALL: i64 = 24;
}

/// `SUIT_Common` keys.
pub mod common {
    /// `suit-dependencies` (trust-domains).
    pub const DEPENDENCIES: i64 = 1;
    /// `suit-components`.
    pub const COMPONENTS: i64 = 2;
    /// `suit-shared-sequence`.
    pub const SHARED_SEQUENCE: i64 = 4;
    /// `suit-dependency-prefix` inside a dependency's metadata map.
    pub const DEPENDENCY_PREFIX: i64 = 1;
}

/// Condition numbers.
pub mod condition {
    /// `suit-condition-vendor-identifier`.
    pub const VENDOR_IDENTIFIER: i64 = 1;
    /// `suit-condition-class-identifier`.
    pub const CLASS_IDENTIFIER: i64 = 2;
    /// `suit-condition-image-match`.
    pub const IMAGE_MATCH: i64 = 3;
    /// `suit-condition-use-before` (update-management).
    pub const USE_BEFORE: i64 = 4;
    /// `suit-condition-component-slot`.
    pub const COMPONENT_SLOT: i64 = 5;
    /// `suit-condition-check-content`.
    pub const CHECK_CONTENT: i64 = 6;
    /// `suit-condition-dependency-integrity` (trust-domains).
    pub const DEPENDENCY_INTEGRITY: i64 = 7;
    /// `suit-condition-is-dependency` (trust-domains).
    pub const IS_DEPENDENCY: i64 = 8;
    /// `suit-condition-abort`.
    pub const ABORT: i64 = 14;
    /// `suit-condition-device-identifier`.
    pub const DEVICE_IDENTIFIER: i64 = 24;
    /// `suit-condition-image-not-match` (update-management).
    pub const IMAGE_NOT_MATCH: i64 = 25;
    /// `suit-condition-minimum-battery` (update-management).
    pub const MINIMUM_BATTERY: i64 = 26;
    /// `suit-condition-update-authorized` (update-management).
    pub const UPDATE_AUTHORIZED: i64 = 27;
    /// `suit-condition-version` (update-management).
    pub const VERSION: i64 = 28;
}

/// Directive numbers.
pub mod directive {
    /// `suit-directive-process-dependency` (trust-domains).
    pub const PROCESS_DEPENDENCY: i64 = 11;
    /// `suit-directive-set-component-index`.
    pub const SET_COMPONENT_INDEX: i64 = 12;
    /// `suit-directive-try-each`.
    pub const TRY_EACH: i64 = 15;
    /// `suit-directive-write`.
    pub const WRITE: i64 = 18;
    /// `suit-directive-set-parameters` (trust-domains).
    pub const SET_PARAMETERS: i64 = 19;
    /// `suit-directive-override-parameters`.
    pub const OVERRIDE_PARAMETERS: i64 = 20;
    /// `suit-directive-fetch`.
    pub const FETCH: i64 = 21;
    /// `suit-directive-copy`.
    pub const COPY: i64 = 22;
    /// `suit-directive-invoke`.
    pub const INVOKE: i64 = 23;
    /// `suit-directive-wait` (update-management).
    pub const WAIT: i64 = 29;
    /// `suit-directive-swap`.
    pub const SWAP: i64 = 31;
    /// `suit-directive-run-sequence`.
    pub const RUN_SEQUENCE: i64 = 32;
    /// `suit-directive-unlink` (trust-domains).
    pub const UNLINK: i64 = 33;
    /// `suit-directive-override-multiple` (update-management).
    pub const OVERRIDE_MULTIPLE: i64 = 34;
    /// `suit-directive-copy-params` (update-management).
    pub const COPY_PARAMS: i64 = 35;
}

/// Parameter numbers (`$$SUIT_Parameters`).
pub mod parameter {
    /// `suit-parameter-vendor-identifier`.
    pub const VENDOR_IDENTIFIER: i64 = 1;
    /// `suit-parameter-class-identifier`.
    pub const CLASS_IDENTIFIER: i64 = 2;
    /// `suit-parameter-image-digest`.
    pub const IMAGE_DIGEST: i64 = 3;
    /// `suit-parameter-use-before` (update-management).
    pub const USE_BEFORE: i64 = 4;
    /// `suit-parameter-component-slot`.
    pub const COMPONENT_SLOT: i64 = 5;
    /// `suit-parameter-strict-order`.
    pub const STRICT_ORDER: i64 = 12;
    /// `suit-parameter-soft-failure`.
    pub const SOFT_FAILURE: i64 = 13;
    /// `suit-parameter-image-size`.
    pub const IMAGE_SIZE: i64 = 14;
    /// `suit-parameter-content`.
    pub const CONTENT: i64 = 18;
    /// `suit-parameter-encryption-info` (firmware-encryption).
    pub const ENCRYPTION_INFO: i64 = 19;
    /// `suit-parameter-uri`.
    pub const URI: i64 = 21;
    /// `suit-parameter-source-component`.
    pub const SOURCE_COMPONENT: i64 = 22;
    /// `suit-parameter-invoke-args`.
    pub const INVOKE_ARGS: i64 = 23;
    /// `suit-parameter-device-identifier`.
    pub const DEVICE_IDENTIFIER: i64 = 24;
    /// `suit-parameter-fetch-arguments`.
    pub const FETCH_ARGUMENTS: i64 = 25;
    /// `suit-parameter-minimum-battery` (update-management).
    pub const MINIMUM_BATTERY: i64 = 26;
    /// `suit-parameter-update-priority` (update-management).
    pub const UPDATE_PRIORITY: i64 = 27;
    /// `suit-parameter-version` (update-management).
    pub const VERSION: i64 = 28;
    /// `suit-parameter-wait-info` (update-management).
    pub const WAIT_INFO: i64 = 29;
    /// `suit-parameter-component-metadata` (update-management).
    pub const COMPONENT_METADATA: i64 = 30;
}

/// Reporting-policy bits (`SUIT_Rep_Policy`).
pub mod reporting {
    /// `suit-send-record-on-success` (bit 0).
    pub const RECORD_ON_SUCCESS: u64 = 1 << 0;
    /// `suit-send-record-on-failure` (bit 1).
    pub const RECORD_ON_FAILURE: u64 = 1 << 1;
    /// `suit-send-sysinfo-success` (bit 2).
    pub const SYSINFO_SUCCESS: u64 = 1 << 2;
    /// `suit-send-sysinfo-failure` (bit 3).
    pub const SYSINFO_FAILURE: u64 = 1 << 3;
}

/// Text map keys (`SUIT_Text_Keys`, `SUIT_Text_Component_Keys`).
pub mod text {
    /// `suit-text-manifest-description`.
    pub const MANIFEST_DESCRIPTION: i64 = 1;
    /// `suit-text-update-description`.
    pub const UPDATE_DESCRIPTION: i64 = 2;
    /// `suit-text-manifest-json-source`.
    pub const MANIFEST_JSON_SOURCE: i64 = 3;
    /// `suit-text-manifest-yaml-source`.
    pub const MANIFEST_YAML_SOURCE: i64 = 4;
    /// `suit-text-vendor-name` (component key).
    pub const VENDOR_NAME: i64 = 1;
    /// `suit-text-model-name` (component key).
    pub const MODEL_NAME: i64 = 2;
    /// `suit-text-vendor-domain` (component key).
    pub const VENDOR_DOMAIN: i64 = 3;
    /// `suit-text-model-info` (component key).
    pub const MODEL_INFO: i64 = 4;
    /// `suit-text-component-description` (component key).
    pub const COMPONENT_DESCRIPTION: i64 = 5;
    /// `suit-text-component-version` (component key).
    pub const COMPONENT_VERSION: i64 = 6;
    /// `suit-text-version-required` (component key, update-management).
    pub const VERSION_REQUIRED: i64 = 7;
    /// `suit-text-current-version` (component key, update-management).
    pub const CURRENT_VERSION: i64 = 8;
}

/// `SUIT_Report` keys (draft-ietf-suit-report, repo -18).
pub mod report {
    /// `suit-report-nonce`.
    pub const NONCE: i64 = 2;
    /// `suit-report-records`.
    pub const RECORDS: i64 = 3;
    /// `suit-report-result`.
    pub const RESULT: i64 = 4;
    /// `suit-report-result-code`.
    pub const RESULT_CODE: i64 = 5;
    /// `suit-report-result-record`.
    pub const RESULT_RECORD: i64 = 6;
    /// `suit-report-result-reason`.
    pub const RESULT_REASON: i64 = 7;
    /// `suit-report-capability-report`.
    pub const CAPABILITY_REPORT: i64 = 8;
    /// `suit-reference`.
    pub const REFERENCE: i64 = 99;
    /// `system-component-id` in system-property-claims.
    pub const SYSTEM_COMPONENT_ID: i64 = 0;
}

/// CBOR tags.
pub mod tag {
    /// `SUIT_Envelope_Tagged`.
    pub const ENVELOPE: u64 = 107;
    /// `SUIT_Manifest_Tagged`.
    pub const MANIFEST: u64 = 1070;
    /// `cbor-pen` (vendor id as a private enterprise number OID).
    pub const PEN: u64 = 112;
    /// `COSE_Sign1_Tagged`.
    pub const COSE_SIGN1: u64 = 18;
    /// `COSE_Sign_Tagged`.
    pub const COSE_SIGN: u64 = 98;
    /// `COSE_Mac0_Tagged`.
    pub const COSE_MAC0: u64 = 17;
    /// `COSE_Mac_Tagged`.
    pub const COSE_MAC: u64 = 97;
    /// `COSE_Encrypt_Tagged` (SUIT_Encryption_Info).
    pub const COSE_ENCRYPT: u64 = 96;
}

/// COSE hash algorithm ids usable in `SUIT_Digest`.
pub mod digest_alg {
    /// SHA-256 (mandatory).
    pub const SHA256: i64 = -16;
    /// SHAKE128.
    pub const SHAKE128: i64 = -18;
    /// SHA-384.
    pub const SHA384: i64 = -43;
    /// SHA-512.
    pub const SHA512: i64 = -44;
    /// SHAKE256.
    pub const SHAKE256: i64 = -45;
}
