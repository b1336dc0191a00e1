//! Algorithm identifiers (COSE and JOSE).

/// Signature algorithms; COSE ids of both generations are accepted on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// ECDSA over P-256 with SHA-256 (COSE ES256 -7 / ESP256 -9, JOSE ES256).
    P256Sha256,
    /// Ed25519 pure EdDSA (COSE EdDSA -8 / Ed25519 -19, JOSE EdDSA).
    Ed25519,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (COSE -257, JOSE RS256).
    Rs256,
}

/// Which generation of COSE algorithm ids to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AlgIdGeneration {
    /// Fully-specified ids (RFC 9864): ESP256 -9, Ed25519 -19. The default.
    #[default]
    New,
    /// Polymorphic ids (RFC 9053): ES256 -7, EdDSA -8, for older peers.
    Legacy,
}

/// COSE id of ES256 (polymorphic ECDSA w/ SHA-256, RFC 9053).
pub const COSE_ES256: i64 = -7;
/// COSE id of ESP256 (ECDSA P-256 w/ SHA-256, RFC 9864).
pub const COSE_ESP256: i64 = -9;
/// COSE id of EdDSA (polymorphic, RFC 9053).
pub const COSE_EDDSA: i64 = -8;
/// COSE id of Ed25519 (RFC 9864).
pub const COSE_ED25519: i64 = -19;
/// COSE id of RS256 (RFC 8812).
pub const COSE_RS256: i64 = -257;

impl SigAlg {
    /// Maps a COSE algorithm id of either generation: -7/-9 → P-256, -8/-19 → Ed25519, -257 → RS256.
    pub fn from_cose(id: i64) -> Option<SigAlg> {
        match id {
            COSE_ES256 | COSE_ESP256 => Some(SigAlg::P256Sha256),
            COSE_EDDSA | COSE_ED25519 => Some(SigAlg::Ed25519),
            COSE_RS256 => Some(SigAlg::Rs256),
            _ => None,
        }
    }

    /// The COSE id to emit: New → -9 / -19, Legacy → -7 / -8; RS256 is -257 in both.
    pub fn cose_id(self, gen: AlgIdGeneration) -> i64 {
        match (self, gen) {
            (SigAlg::P256Sha256, AlgIdGeneration::New) => COSE_ESP256,
            (SigAlg::P256Sha256, AlgIdGeneration::Legacy) => COSE_ES256,
            (SigAlg::Ed25519, AlgIdGeneration::New) => COSE_ED25519,
            (SigAlg::Ed25519, AlgIdGeneration::Legacy) => COSE_EDDSA,
            (SigAlg::Rs256, _) => COSE_RS256,
        }
    }

    /// The JOSE `alg` name: "ES256", "EdDSA", "RS256".
    pub fn jose_name(self) -> &'static str {
        match self {
            SigAlg::P256Sha256 => "ES256",
            SigAlg::Ed25519 => "EdDSA",
            SigAlg::Rs256 => "RS256",
        }
    }

    /// Maps a JOSE `alg` name ("ES256", "EdDSA", "RS256").
    pub fn from_jose(name: &str) -> Option<SigAlg> {
        match name {
            "ES256" => Some(SigAlg::P256Sha256),
            "EdDSA" | "Ed25519" => Some(SigAlg::Ed25519),
            "RS256" => Some(SigAlg::Rs256),
            _ => None,
        }
    }
}
