//! OpenTrust development PKI, certificate chain validation and device provisioning.
//!
//! # The PKI (OTrP §4.4 "Key and Certificate Types")
//!
//! [`Pki::init`] makes four CAs, each a self-signed root (pathLen 1) and an issuing CA
//! under it (pathLen 0), all keys of one [`KeyAlg`] (P-256 by default, Ed25519 or
//! RSA-2048):
//!
//! | role  | signs                                                     | trusted by |
//! |-------|-----------------------------------------------------------|------------|
//! | `tee` | TEE attestation keys (one per device)                     | TAMs       |
//! | `tfw` | trusted-firmware keys (one per device) and the OEM signer | TAMs, TEEs |
//! | `tam` | TAM signers (with their `tamid`) and the TAM HTTPS server | TEEs, Brokers |
//! | `sp`  | SP TA-signers (EKU codeSigning)                           | TEEs, TAMs |
//!
//! plus one CRL per CA (nextUpdate one year on), a TAM signer, the TAM's HTTPS server
//! certificate (DNS `localhost`, IP 127.0.0.1 and ::1, EKU serverAuth), an SP signer and
//! the OEM signer. Certificates are issued with rcgen (ring); keys come from otrp-crypto.
//!
//! **`tamid`** (OTrP §5.4): the drafts put it "initially" in `SubjectAltName:registeredID`,
//! an OID, yet suggest a URL as its value (spec notes §9 item 11). We carry it as a SAN
//! URI `urn:otrp:tamid:<id>` ([`cert::TAMID_URN_PREFIX`]) and repeat it as the subject CN;
//! validators read the SAN ([`cert::CertInfo::tamid`]). The id survives certificate
//! renewal because `otrp pki issue --kind tam --tamid ID` reuses it.
//! Device certificates carry `urn:otrp:ueid:<hex>` so evidence can be tied to one device.
//!
//! # PKI directory layout (written by [`fs::create_pki`]; every file is listed in `pki.json`)
//!
//! ```text
//! DIR/pki.json                       index: alg, organization, oemid, CAs (+ revoked
//!                                    serials, CRL numbers), issued leaves, batches, files
//! DIR/<role>/root-ca.pem             role = tee | tfw | tam | sp
//! DIR/<role>/root-ca.key.pem         (0600)
//! DIR/<role>/root-ca.crl.pem         CRL of the root (revoked issuing CAs)
//! DIR/<role>/issuing-ca.pem
//! DIR/<role>/issuing-ca.key.pem      (0600)
//! DIR/<role>/issuing-ca.crl.pem      CRL of the issuing CA (revoked leaves)
//! DIR/issued/<kind>/<name>.pem       kind = tam | server | sp | oem | tee | tfw
//! DIR/issued/<kind>/<name>.key.pem   (0600)
//! DIR/issued/<kind>/<name>.chain.pem leaf + issuing CA
//! DIR/batch/<name>.key.pem           batch key (P-256), made on first use (0600)
//! DIR/batch/<name>.pub.pem
//! ```
//!
//! # Validation
//!
//! [`TrustStore::verify`] runs rustls-webpki: path to an anchor, signatures, validity at
//! the time passed in, CRL revocation of every certificate of the chain (when the store
//! has CRLs), and the usage ([`Usage`]): serverAuth for TLS servers; for signers no EKU
//! other than codeSigning (so a TLS server certificate can never act as a TAM signer),
//! a `tamid` for TAM signers, a `ueid` for device certificates. Refusals are typed
//! [`ChainError`]s.
//!
//! # Devices
//!
//! [`device::provision`] is the factory step; [`device::load_sealed`] opens the sealed
//! state (format in [`device`]). A device directory (written by [`fs::write_device`]):
//!
//! ```text
//! DEVDIR/device.json          public facts: ueid, oemid, model, hwversion, config, batch,
//!                             alg, did, tee_kid, file names
//! DEVDIR/tee.pem              TEE attestation certificate
//! DEVDIR/tee-chain.pem        TEE certificate + TEE issuing CA
//! DEVDIR/tee.pub.pem          TEE public key (SPKI)
//! DEVDIR/tfw.pem              TFW certificate
//! DEVDIR/tfw-chain.pem        TFW certificate + TFW issuing CA
//! DEVDIR/sealed-state.cbor    the TEE's sealed initial state (AES-256-GCM) (0600)
//! DEVDIR/efuse.key            32-byte storage key: the simulated eFuse (0600)
//! ```
//!
//! # Sans-IO
//!
//! Only [`fs`] touches files. Time and randomness are arguments everywhere else; the one
//! exception is rcgen's signing through ring, whose ECDSA nonces come from ring's
//! `SystemRandom` (ring takes no caller RNG). This crate is std-only: rcgen, ring and
//! rustls-webpki need std; the Agent side reads the sealed state through
//! [`device::load_sealed`].

#![forbid(unsafe_code)]

mod alg;
pub mod cert;
pub mod device;
mod error;
pub mod fs;
mod pki;
mod verify;

pub use alg::KeyAlg;
pub use error::{ChainError, DeviceError, PkiError};
pub use pki::{
    check_name, days_after, read_report_master, rfc3339, unix_secs, BatchRecord, CaLevel, CaRecord,
    CaRole, CertKind, DeviceCertSpec, FileRecord, InitOptions, IssueRequest, Issued, IssuedRecord,
    Pki, PkiIndex, RevokedRecord, CRL_DAYS, DEVICE_DAYS, INDEX_FILE, ISSUING_DAYS, PKI_FORMAT,
    ROOT_DAYS, SERVER_DAYS, SIGNER_DAYS,
};
pub use verify::{TrustStore, Usage, VerifiedCert};
