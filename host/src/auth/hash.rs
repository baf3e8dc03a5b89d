//! Password hashes in the crypt(3) modular format, through the `pwhash`
//! crate: bcrypt (`$2a$`, `$2b$`, `$2y$`), SHA-512-crypt (`$6$`) and
//! SHA-256-crypt (`$5$`). Anything else never verifies: DES and MD5
//! crypt are too weak to accept, and a plaintext value in a table must
//! not work as a password either.

/// Why a hash could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(#[from] pwhash::error::Error);

/// True if `password` matches `stored_hash`. The comparison of the
/// computed and stored hashes is constant-time (pwhash's `consteq`).
pub fn verify(stored_hash: &str, password: &str) -> bool {
    let known = ["$2a$", "$2b$", "$2y$", "$5$", "$6$"];
    if !known.iter().any(|p| stored_hash.starts_with(p)) {
        return false;
    }
    // pwhash panics on nothing documented, but a malformed hash from a
    // table must never take a session thread down with it.
    std::panic::catch_unwind(|| pwhash::unix::verify(password, stored_hash)).unwrap_or(false)
}

/// A SHA-512-crypt hash (`$6$salt$hash`, 5000 rounds, random salt) of
/// `password`, the format `smtpctl encrypt` prints on most systems.
pub fn encrypt(password: &str) -> Result<String, HashError> {
    Ok(pwhash::sha512_crypt::hash(password)?)
}

/// Why `encrypt` (the command) stopped.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("cannot read the password: {0}")]
    Read(std::io::Error),
    #[error("cannot write the hash: {0}")]
    Write(std::io::Error),
}

/// `encrypt [PASSWORD]`, as `smtpctl encrypt`: writes the hash of
/// `password`, or without one a hash per line of `input`. Passwords are
/// wiped from memory once hashed.
pub fn encrypt_command(
    password: Option<String>,
    input: impl std::io::BufRead,
    out: &mut impl std::io::Write,
) -> Result<(), EncryptError> {
    let mut one = |p: &str| -> Result<(), EncryptError> {
        writeln!(out, "{}", encrypt(p)?).map_err(EncryptError::Write)
    };
    if let Some(p) = password {
        return one(&zeroize::Zeroizing::new(p));
    }
    for line in input.lines() {
        let line = zeroize::Zeroizing::new(line.map_err(EncryptError::Read)?);
        one(line.trim_end_matches('\r'))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference hashes made by glibc's crypt(3) and OpenBSD's bcrypt.
    const SHA512: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    const SHA256: &str = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5";

    #[test]
    fn the_command_hashes_its_argument_or_each_line() {
        let mut out = Vec::new();
        encrypt_command(None, &b"one\r\ntwo\n"[..], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let hashes: Vec<&str> = text.lines().collect();
        assert_eq!(hashes.len(), 2);
        assert!(verify(hashes[0], "one") && verify(hashes[1], "two"));
        let mut out = Vec::new();
        encrypt_command(Some("three".into()), &b"ignored"[..], &mut out).unwrap();
        assert!(verify(String::from_utf8(out).unwrap().trim_end(), "three"));
    }

    #[test]
    fn sha_crypt_reference_vectors() {
        assert!(verify(SHA512, "Hello world!"));
        assert!(verify(SHA256, "Hello world!"));
        assert!(!verify(SHA512, "Hello world"));
        assert!(!verify(SHA256, "hello world!"));
    }

    #[test]
    fn bcrypt_reference_vector() {
        let h = "$2b$05$abcdefghijklmnopqrstuu7nFISH/8YdwlXD3lw69A4iBUf6fvWAW";
        assert!(verify(h, "Hello world!"));
        assert!(!verify(h, "Hello world"));
    }

    #[test]
    fn bcrypt_variants() {
        let h = pwhash::bcrypt::hash_with(
            pwhash::bcrypt::BcryptSetup {
                cost: Some(4),
                variant: Some(pwhash::bcrypt::BcryptVariant::V2b),
                ..Default::default()
            },
            "secret",
        )
        .unwrap();
        assert!(h.starts_with("$2b$04$"), "{h}");
        assert!(verify(&h, "secret"));
        assert!(!verify(&h, "Secret"));
        let a = h.replacen("$2b$", "$2a$", 1);
        let y = h.replacen("$2b$", "$2y$", 1);
        assert!(verify(&a, "secret"));
        assert!(verify(&y, "secret"));
    }

    #[test]
    fn encrypt_makes_a_verifiable_sha512_hash() {
        let h = encrypt("correct horse").unwrap();
        assert!(h.starts_with("$6$"), "{h}");
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "correct horse "));
        assert_ne!(h, encrypt("correct horse").unwrap(), "salt is random");
    }

    #[test]
    fn weak_plain_and_malformed_hashes_never_verify() {
        assert!(!verify("secret", "secret"));
        assert!(!verify("", ""));
        // MD5-crypt ("secret" by crypt(3)) is refused even though it matches.
        let md5 = "$1$saltsalt$9xy1btjgzLYfb7hivXtC//";
        assert!(pwhash::unix::verify("secret", md5));
        assert!(!verify(md5, "secret"));
        assert!(!verify("$6$", "secret"));
        assert!(!verify("$6$salt", ""));
        assert!(!verify("$2b$99$xxxx", "secret"));
        assert!(!verify("$2b$", "secret"));
    }
}
