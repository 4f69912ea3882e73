//! The CPython installations Windows knows of: PEP 514's
//! `Software\Python\PythonCore\<tag>\InstallPath`, under the current user and
//! the machine (its 64-bit view: a 64-bit pybridge cannot load a 32-bit
//! CPython), newest version first. Elsewhere there is no such registry, and
//! the list is empty.

use std::path::PathBuf;

/// Each registered installation's tag (`3.13`) and its folder (or its
/// `ExecutablePath` when it names one), newest first; tags for other
/// architectures (`3.13-32`, `3.13-arm64`) are left out.
pub(crate) fn registered_pythons() -> Vec<(String, PathBuf)> {
    ordered(registered())
}

/// Leaves out other architectures' tags, puts the newest version first (at
/// one version the GIL build `3.13` before a variant such as `3.13t`), and
/// drops a folder found twice (registered for the user and the machine).
fn ordered(mut found: Vec<(String, PathBuf)>) -> Vec<(String, PathBuf)> {
    found.retain(|(tag, _)| !tag.contains('-'));
    found.sort_by_key(|(tag, _)| {
        let variant = !tag.ends_with(|c: char| c.is_ascii_digit());
        (std::cmp::Reverse(version_of(tag)), variant)
    });
    let mut seen = Vec::new();
    found.retain(|(_, path)| {
        let first = !seen.contains(path);
        seen.push(path.clone());
        first
    });
    found
}

/// `3.13` and `3.13t` → (3, 13); a tag that is no version sorts last.
fn version_of(tag: &str) -> (u32, u32) {
    let digits = tag.trim_end_matches(|c: char| !c.is_ascii_digit());
    let mut parts = digits.split('.');
    let mut next = || parts.next().and_then(|part| part.parse().ok()).unwrap_or(0);
    (next(), next())
}

#[cfg(not(windows))]
fn registered() -> Vec<(String, PathBuf)> {
    Vec::new()
}

#[cfg(windows)]
fn registered() -> Vec<(String, PathBuf)> {
    use windows_sys::Win32::System::Registry::{
        HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE, KEY_READ, KEY_WOW64_64KEY,
    };
    let mut found = Vec::new();
    for root in [HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE] {
        let Some(core) = registry::Key::open(
            root,
            r"Software\Python\PythonCore",
            KEY_READ | KEY_WOW64_64KEY,
        ) else {
            continue;
        };
        for tag in core.subkeys() {
            let install = format!(r"{tag}\InstallPath");
            let path = core
                .string(&install, "ExecutablePath")
                .or_else(|| core.string(&install, ""))
                .map(PathBuf::from);
            if let Some(path) = path.filter(|path| path.exists()) {
                found.push((tag, path));
            }
        }
    }
    found
}

/// The few registry calls, each key closed when dropped.
#[cfg(windows)]
mod registry {
    use windows_sys::Win32::Foundation::ERROR_SUCCESS;
    use windows_sys::Win32::System::Registry::{
        HKEY, REG_SAM_FLAGS, RRF_RT_REG_SZ, RegCloseKey, RegEnumKeyExW, RegGetValueW, RegOpenKeyExW,
    };

    fn wide(text: &str) -> Vec<u16> {
        text.encode_utf16().chain(std::iter::once(0)).collect()
    }

    pub(super) struct Key(HKEY);

    impl Key {
        pub(super) fn open(root: HKEY, path: &str, access: REG_SAM_FLAGS) -> Option<Key> {
            let mut key: HKEY = std::ptr::null_mut();
            // SAFETY: a NUL-terminated path and an out-pointer to a local.
            let status = unsafe { RegOpenKeyExW(root, wide(path).as_ptr(), 0, access, &mut key) };
            (status == ERROR_SUCCESS).then_some(Key(key))
        }

        /// The names of the key's subkeys.
        pub(super) fn subkeys(&self) -> Vec<String> {
            let mut names = Vec::new();
            for index in 0.. {
                // Key names are at most 255 characters.
                let mut name = [0u16; 256];
                let mut len = name.len() as u32;
                // SAFETY: an open key, a buffer of `len` characters, and
                // null for the optional arguments.
                let status = unsafe {
                    RegEnumKeyExW(
                        self.0,
                        index,
                        name.as_mut_ptr(),
                        &mut len,
                        std::ptr::null(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
                if status != ERROR_SUCCESS {
                    break;
                }
                names.push(String::from_utf16_lossy(&name[..len as usize]));
            }
            names
        }

        /// A string value of a subkey (`""`: its default value).
        pub(super) fn string(&self, subkey: &str, value: &str) -> Option<String> {
            let (subkey, value) = (wide(subkey), wide(value));
            let mut buffer = vec![0u16; 1024];
            let mut bytes = (buffer.len() * 2) as u32;
            // SAFETY: an open key, NUL-terminated names, a buffer of `bytes` bytes.
            let status = unsafe {
                RegGetValueW(
                    self.0,
                    subkey.as_ptr(),
                    value.as_ptr(),
                    RRF_RT_REG_SZ,
                    std::ptr::null_mut(),
                    buffer.as_mut_ptr().cast(),
                    &mut bytes,
                )
            };
            if status != ERROR_SUCCESS {
                return None;
            }
            // The size counts the terminating NUL.
            let len = (bytes as usize / 2).saturating_sub(1);
            Some(String::from_utf16_lossy(&buffer[..len])).filter(|text| !text.is_empty())
        }
    }

    impl Drop for Key {
        fn drop(&mut self) {
            // SAFETY: a key this value opened, closed once.
            unsafe { RegCloseKey(self.0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_sort_newest_first_with_the_gil_build_ahead() {
        assert_eq!(version_of("3.13t"), (3, 13));
        assert_eq!(version_of("custom"), (0, 0));
        let entry = |tag: &str, path: &str| (tag.to_string(), PathBuf::from(path));
        let found = ordered(vec![
            entry("3.9", "C:/Py39"),
            entry("3.13t", "C:/Py313t"),
            entry("3.12-32", "C:/Py312-32"),
            entry("3.13", "C:/Py313"),
            entry("3.10", "C:/Py310"),
            entry("3.13", "C:/Py313"),
            entry("3.13-arm64", "C:/Py313arm"),
        ]);
        let tags: Vec<&str> = found.iter().map(|(tag, _)| tag.as_str()).collect();
        assert_eq!(tags, ["3.13", "3.13t", "3.10", "3.9"]);
    }
}
