//! The one module that touches the file system: reading and writing a PKI directory and
//! device directories. Everything else in the crate works on bytes.
//!
//! Private keys and the eFuse key are written with mode 0600 (on Unix); every file is
//! written to a temporary name and renamed, so a crash leaves the old or the new file.

use std::path::{Path, PathBuf};

use otrp_crypto::CryptoProvider;

use crate::cert::to_pem;
use crate::device::{load_sealed, DeviceIdentity, DevicePublic, Provisioned, DEVICE_FORMAT};
use crate::pki::{Pki, INDEX_FILE};
use crate::{DeviceError, PkiError};

/// The name of the public description in a device directory.
pub const DEVICE_JSON: &str = "device.json";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename; `secret` files get
/// mode 0600.
pub fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if secret { 0o600 } else { 0o644 });
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// True when `dir` holds a PKI (`pki.json`).
pub fn pki_exists(dir: &Path) -> bool {
    dir.join(INDEX_FILE).is_file()
}

/// Reads a PKI directory.
pub fn load_pki(dir: &Path) -> Result<Pki, PkiError> {
    let index_path = dir.join(INDEX_FILE);
    if !index_path.is_file() {
        return Err(PkiError::NotAPki {
            dir: dir.to_owned(),
        });
    }
    let index = std::fs::read(&index_path).map_err(io(&index_path))?;
    Pki::from_parts(&index, |rel| {
        let p = dir.join(rel);
        std::fs::read(&p).map_err(|source| PkiError::Io { path: p, source })
    })
}

/// Writes every file of `pki` into `dir`, `pki.json` last.
pub fn save_pki(dir: &Path, pki: &Pki) -> Result<(), PkiError> {
    for (rel, bytes) in pki.files() {
        let secret = pki.index().files.iter().any(|f| f.path == rel && f.secret);
        write_file(&dir.join(rel), bytes, secret)?;
    }
    write_file(&dir.join(INDEX_FILE), pki.index_json()?.as_bytes(), false)
}

/// Writes a new PKI into `dir`. When `dir` already holds one, fails with
/// [`PkiError::AlreadyExists`] unless `force`; with `force` the files the old index names
/// are removed first (nothing else in `dir` is touched).
pub fn create_pki(dir: &Path, pki: &Pki, force: bool) -> Result<(), PkiError> {
    if pki_exists(dir) {
        if !force {
            return Err(PkiError::AlreadyExists {
                dir: dir.to_owned(),
            });
        }
        if let Ok(old) = load_index_files(dir) {
            for rel in old {
                let p = dir.join(rel);
                if p.is_file() {
                    std::fs::remove_file(&p).map_err(io(&p))?;
                }
            }
        }
    }
    save_pki(dir, pki)
}

fn load_index_files(dir: &Path) -> Result<Vec<String>, PkiError> {
    let p = dir.join(INDEX_FILE);
    let bytes = std::fs::read(&p).map_err(io(&p))?;
    let index: crate::pki::PkiIndex =
        serde_json::from_slice(&bytes).map_err(|e| PkiError::Index {
            what: e.to_string(),
        })?;
    Ok(index
        .files
        .into_iter()
        .map(|f| f.path)
        .filter(|p| !p.split('/').any(|c| c.is_empty() || c == ".."))
        .collect())
}

/// Writes a provisioned device into `dir` (created if needed). Fails when `dir` already
/// holds a device unless `force`.
pub fn write_device(dir: &Path, dev: &Provisioned, force: bool) -> Result<(), PkiError> {
    let json_path = dir.join(DEVICE_JSON);
    if json_path.exists() && !force {
        return Err(PkiError::AlreadyExists {
            dir: dir.to_owned(),
        });
    }
    let f = &dev.public.files;
    let id = &dev.identity;
    let pem = |der: &[u8]| to_pem("CERTIFICATE", der);
    let chain = |leaf: &[u8], rest: &[Vec<u8>]| -> Result<String, PkiError> {
        let mut s = pem(leaf)?;
        for c in rest {
            s.push_str(&pem(c)?);
        }
        Ok(s)
    };
    write_file(&dir.join(&f.tee_cert), pem(&id.tee.cert)?.as_bytes(), false)?;
    write_file(
        &dir.join(&f.tee_chain),
        chain(&id.tee.cert, &id.tee.chain)?.as_bytes(),
        false,
    )?;
    let tee_pub = id
        .tee
        .key
        .public_key()
        .to_spki_pem()
        .map_err(|source| PkiError::Key {
            what: "SPKI encoding of the TEE key".into(),
            source,
        })?;
    write_file(&dir.join(&f.tee_public_key), tee_pub.as_bytes(), false)?;
    write_file(&dir.join(&f.tfw_cert), pem(&id.tfw.cert)?.as_bytes(), false)?;
    write_file(
        &dir.join(&f.tfw_chain),
        chain(&id.tfw.cert, &id.tfw.chain)?.as_bytes(),
        false,
    )?;
    write_file(&dir.join(&f.sealed_state), &dev.sealed, true)?;
    write_file(&dir.join(&f.efuse_key), &dev.storage_key[..], true)?;
    let json = serde_json::to_string_pretty(&dev.public).map_err(|e| PkiError::Index {
        what: format!("device.json: {e}"),
    })?;
    write_file(&json_path, json.as_bytes(), false)
}

/// Reads `device.json` of a device directory.
pub fn read_device_public(dir: &Path) -> Result<DevicePublic, PkiError> {
    let p = dir.join(DEVICE_JSON);
    let bytes = std::fs::read(&p).map_err(io(&p))?;
    let public: DevicePublic = serde_json::from_slice(&bytes).map_err(|e| PkiError::Index {
        what: format!("{}: {e}", p.display()),
    })?;
    if public.format != DEVICE_FORMAT {
        return Err(PkiError::Index {
            what: format!(
                "{}: format {:?}, expected {DEVICE_FORMAT:?}",
                p.display(),
                public.format
            ),
        });
    }
    Ok(public)
}

/// Opens a device directory as the simulated TEE does at boot: reads the eFuse key and
/// the sealed state and unseals it.
pub fn load_device(
    dir: &Path,
    provider: &dyn CryptoProvider,
) -> Result<(DevicePublic, DeviceIdentity), PkiError> {
    let public = read_device_public(dir)?;
    let key_path = dir.join(&public.files.efuse_key);
    let key = zeroize::Zeroizing::new(std::fs::read(&key_path).map_err(io(&key_path))?);
    let sealed_path = dir.join(&public.files.sealed_state);
    let sealed = std::fs::read(&sealed_path).map_err(io(&sealed_path))?;
    let identity = load_sealed(&sealed, &key, provider)?;
    if hex::encode(&identity.ueid) != public.ueid {
        return Err(PkiError::Device(DeviceError::Field {
            path: "ueid".into(),
            what: format!(
                "sealed state belongs to {}, device.json says {}",
                hex::encode(&identity.ueid),
                public.ueid
            ),
        }));
    }
    Ok((public, identity))
}
