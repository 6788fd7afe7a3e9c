//! Security pieces below the middleware, after the Python framework's `chirp.security`:
//! [`audit`] (security events and their hook) and the random tokens that CSRF tokens,
//! request ids and server-side session ids are made of.

pub mod audit;

/// `n` random bytes from the OS, as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The OS RNG does not fail on the platforms chirp runs on; if it ever did, no token
    // at all is better than a predictable one.
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
