//! C's wide strings (`wchar_t`), which CPython's configuration takes: one
//! UTF-32 unit per character on Linux, UTF-16 on Windows.

/// The platform's `wchar_t`.
pub(crate) type WideChar = libc::wchar_t;

/// `text` as a NUL-terminated wide string. `text` holds no NUL.
pub(crate) fn to_wide_nul(text: &str) -> Vec<WideChar> {
    #[cfg(unix)]
    let units = text.chars().map(|c| c as WideChar);
    #[cfg(windows)]
    let units = text.encode_utf16();
    units.chain(std::iter::once(0)).collect()
}
