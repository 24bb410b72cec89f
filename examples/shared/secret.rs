//! The session secret of every example, from `SESSION_SECRET`.

/// `SESSION_SECRET` when it is set, else a random secret with a warning. Never a fixed
/// fallback: anyone who read it could sign cookies for any session id. A set secret under
/// 32 bytes is an error that says how to make one.
pub fn session_secret() -> Result<String, String> {
    match std::env::var("SESSION_SECRET") {
        Ok(secret) if secret.len() >= 32 => Ok(secret),
        Ok(secret) if !secret.is_empty() => {
            Err("SESSION_SECRET must be at least 32 bytes (openssl rand -hex 32)".into())
        }
        _ => {
            eprintln!(
                "warning: SESSION_SECRET is not set: using a random secret, so sessions do not \
                 survive a restart and other copies of this app cannot read them"
            );
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes);
            Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
        }
    }
}
