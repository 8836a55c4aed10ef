//! The device's identity: a secret it generates on first use and keeps in its state
//! directory (`STATE/device-N/identity`, mode 0600), and the identity derived from it
//! ([`DeviceId::from_secret`]).
//!
//! The secret is 32 bytes from the operating system's CSPRNG, so an identity cannot be
//! guessed, and two devices share one only if someone copies a state directory. The
//! device proves its identity to a tower by presenting the secret
//! (`Authorization: Device <secret>`); the tower derives the identity and accepts only
//! keys that belong to it. The secret is created with `O_EXCL`, written, fsynced and its
//! directory fsynced before first use, so a crash never leaves a device with two
//! identities.
//!
//! Map: [`DeviceIdentity`] ([`DeviceIdentity::load_or_create`],
//! [`DeviceIdentity::authorization`]), [`IDENTITY_FILE`].
//!
//! Not covered: rotating a secret (a new state directory is a new device), protecting it
//! from someone who can read the device's files, or from a listener on an unencrypted
//! Wi-Fi (use the tower's TLS listener for that).

use super::outbox::fsync_dir;
use sovereign_logic::protocol::{DEVICE_SECRET_BYTES, DeviceId};
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::Path;

/// The secret's file name inside the device's state directory.
pub const IDENTITY_FILE: &str = "identity";

/// A device's secret and the identity derived from it.
#[derive(Clone)]
pub struct DeviceIdentity {
    secret: [u8; DEVICE_SECRET_BYTES],
    id: DeviceId,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("DeviceIdentity")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; DEVICE_SECRET_BYTES]> {
    if s.len() != 2 * DEVICE_SECRET_BYTES {
        return None;
    }
    let mut out = [0u8; DEVICE_SECRET_BYTES];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl DeviceIdentity {
    /// An identity from a known secret (tests, and devices provisioned by other means).
    pub fn from_secret(secret: [u8; DEVICE_SECRET_BYTES]) -> Self {
        DeviceIdentity {
            id: DeviceId::from_secret(&secret),
            secret,
        }
    }

    /// A new identity from the OS's CSPRNG.
    pub fn generate() -> io::Result<Self> {
        let mut secret = [0u8; DEVICE_SECRET_BYTES];
        crate::tower_auth::secret_bytes(&mut secret)
            .map_err(|e| io::Error::other(format!("OS randomness: {e}")))?;
        Ok(DeviceIdentity::from_secret(secret))
    }

    /// The identity kept in `dir` (which must exist), created on first use.
    pub fn load_or_create(dir: &Path) -> io::Result<Self> {
        let path = dir.join(IDENTITY_FILE);
        match Self::load(&path) {
            Ok(id) => return Ok(id),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let fresh = Self::generate()?;
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&path) {
            Ok(mut f) => {
                f.write_all(format!("{}\n", hex(&fresh.secret)).as_bytes())?;
                f.sync_all()?;
                fsync_dir(dir)?;
                Ok(fresh)
            }
            // Another process created it first: use that one.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(&path),
            Err(e) => Err(e),
        }
    }

    fn load(path: &Path) -> io::Result<Self> {
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(256)
            .read_to_string(&mut text)?;
        let secret = unhex(text.trim()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: expected the device secret as {} hex digits on one line",
                    path.display(),
                    2 * DEVICE_SECRET_BYTES
                ),
            )
        })?;
        Ok(DeviceIdentity::from_secret(secret))
    }

    /// The identity.
    pub fn id(&self) -> DeviceId {
        self.id
    }

    /// The `Authorization` header value that proves it: `Device <secret hex>`.
    pub fn authorization(&self) -> String {
        format!("Device {}", hex(&self.secret))
    }

    /// A seed for the device logic's random draws (the keys' random parts), from the OS.
    pub fn fresh_seed() -> io::Result<u64> {
        let mut b = [0u8; 8];
        crate::tower_auth::secret_bytes(&mut b)
            .map_err(|e| io::Error::other(format!("OS randomness: {e}")))?;
        Ok(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_created_once_kept_and_private() {
        // Goal: first use creates a secret (0600), later uses read the same one, two
        // state directories get two identities.
        let dir = tempfile::tempdir().unwrap();
        let a = DeviceIdentity::load_or_create(dir.path()).unwrap();
        let again = DeviceIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.id(), again.id());
        assert_eq!(a.authorization(), again.authorization());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(IDENTITY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        let b = DeviceIdentity::load_or_create(other.path()).unwrap();
        assert_ne!(a.id(), b.id());
        assert!(a.authorization().starts_with("Device ") && a.authorization().len() == 7 + 64);
        assert!(
            !format!("{a:?}").contains(&a.authorization()[7..]),
            "Debug hides the secret"
        );
    }

    #[test]
    fn a_damaged_identity_file_is_an_error_naming_it() {
        // Goal: never silently become another device.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(IDENTITY_FILE), "not hex\n").unwrap();
        let err = DeviceIdentity::load_or_create(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(IDENTITY_FILE) && err.contains("64 hex digits"),
            "{err}"
        );
    }
}
