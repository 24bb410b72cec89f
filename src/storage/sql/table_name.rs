//! The one check on a table name, which goes into SQL as it is.

/// Refuses a table name that is not a plain identifier of at most 63 characters: it is
/// put into SQL as is, so only `[A-Za-z_][A-Za-z0-9_]*` is safe in all three databases.
pub(super) fn check_table(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && name.len() <= 63 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a table name (letters, digits and _, at most 63, not starting with a digit)"
        ))
    }
}
