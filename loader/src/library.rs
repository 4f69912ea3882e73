//! The operating system's dynamic loader, as the loader uses it: a library
//! opened for good (a libpython or a core), its symbols, and where this
//! library itself was loaded from. Linux: `dlopen`/`dlsym`/`dladdr`;
//! Windows: `LoadLibraryExW`/`GetProcAddress`/`GetModuleHandleExW`. The one
//! module of the loader that names a platform.

use std::ffi::{CStr, c_void};
use std::path::{Path, PathBuf};

/// How a core file is named around its `pybridge-core-cp3XY` stem.
#[cfg(unix)]
pub(crate) const CORE_FILE: (&str, &str) = ("libpybridge-core-cp", ".so");
#[cfg(windows)]
pub(crate) const CORE_FILE: (&str, &str) = ("pybridge-core-cp", ".dll");

/// Where a Python was looked for when the host named none, for the message.
#[cfg(unix)]
pub(crate) const DEFAULT_PYTHON_PLACES: &str = "no python3 on PATH";
#[cfg(windows)]
pub(crate) const DEFAULT_PYTHON_PLACES: &str =
    "no installation in the registry's Software\\Python\\PythonCore, no python.exe on PATH";

/// Whose symbols a library's later neighbours see.
#[derive(Clone, Copy)]
pub(crate) enum Scope {
    /// Everyone's (libpython: extension modules and the core link against it).
    Global,
    /// Only whoever asks this library by its handle (a core).
    Local,
}

/// A library opened by the loader; never closed (neither libpython nor a core
/// can be unloaded safely).
pub(crate) struct Library {
    handle: *mut c_void,
    path: PathBuf,
}

// SAFETY: a dlopen handle (an HMODULE) may be used from any thread.
unsafe impl Send for Library {}
unsafe impl Sync for Library {}

impl Library {
    /// Loads `path` now, with its symbols visible to `scope`. On Windows every
    /// DLL's exports are its own, so the scope changes nothing there: a core
    /// or extension module that imports `python3XY.dll` by name gets the one
    /// already loaded.
    pub(crate) fn open(path: &Path, scope: Scope) -> Result<Library, String> {
        let handle = open_os(path, scope)
            .map_err(|error| format!("cannot load {}: {error}", path.display()))?;
        Ok(Library {
            handle,
            path: path.to_path_buf(),
        })
    }

    /// The address of `name` in this library.
    pub(crate) fn symbol(&self, name: &CStr) -> Result<*mut c_void, String> {
        let address = symbol_os(self.handle, name);
        if address.is_null() {
            return Err(format!(
                "{} has no {}: is it a pybridge core of the same version as this loader?",
                self.path.display(),
                name.to_string_lossy()
            ));
        }
        Ok(address)
    }
}

#[cfg(unix)]
fn open_os(path: &Path, scope: Scope) -> Result<*mut c_void, String> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| "the path contains a NUL byte".to_string())?;
    let scope = match scope {
        Scope::Global => libc::RTLD_GLOBAL,
        Scope::Local => libc::RTLD_LOCAL,
    };
    // SAFETY: dlopen with a valid C string; the handle is kept for good.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | scope) };
    if handle.is_null() {
        return Err(dl_error());
    }
    Ok(handle)
}

#[cfg(unix)]
fn symbol_os(handle: *mut c_void, name: &CStr) -> *mut c_void {
    // SAFETY: dlsym on a live handle with a C string.
    unsafe { libc::dlsym(handle, name.as_ptr()) }
}

#[cfg(unix)]
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "unknown error".to_string()
    } else {
        // SAFETY: as above.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}

/// The file this library (the loader) was loaded from.
#[cfg(unix)]
pub(crate) fn own_path() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr reads the loader's tables for an address in this library.
    let found = unsafe { libc::dladdr(own_path as *const c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr filled a NUL-terminated path.
    let path = unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned();
    Some(PathBuf::from(path))
}

#[cfg(windows)]
fn open_os(path: &Path, _scope: Scope) -> Result<*mut c_void, String> {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::System::LibraryLoader::{
        LOAD_LIBRARY_SEARCH_DEFAULT_DIRS, LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR, LoadLibraryExW,
    };
    let wide: Vec<u16> = path
        .as_os_str()
        .encode_wide()
        .chain(std::iter::once(0))
        .collect();
    // The DLL's own folder is searched for its imports (python3XY.dll's
    // vcruntime140.dll, which the embeddable distribution carries beside it).
    // SAFETY: a NUL-terminated wide path; the module is kept for good.
    let handle = unsafe {
        LoadLibraryExW(
            wide.as_ptr(),
            std::ptr::null_mut(),
            LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_DEFAULT_DIRS,
        )
    };
    if handle.is_null() {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(handle)
}

#[cfg(windows)]
fn symbol_os(handle: *mut c_void, name: &CStr) -> *mut c_void {
    // SAFETY: a loaded module and a C string.
    let address = unsafe {
        windows_sys::Win32::System::LibraryLoader::GetProcAddress(handle, name.as_ptr().cast())
    };
    address.map_or(std::ptr::null_mut(), |function| function as *mut c_void)
}

/// The file this library (the loader's DLL) was loaded from.
#[cfg(windows)]
pub(crate) fn own_path() -> Option<PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    use windows_sys::Win32::System::LibraryLoader::{
        GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS, GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
        GetModuleFileNameW, GetModuleHandleExW,
    };
    let mut module = std::ptr::null_mut();
    // SAFETY: reads the loader's tables for an address in this library.
    let found = unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
            own_path as *const u16,
            &mut module,
        )
    };
    if found == 0 {
        return None;
    }
    let mut path = vec![0u16; 32 * 1024];
    // SAFETY: a buffer of the stated length (the longest Windows path).
    let length =
        unsafe { GetModuleFileNameW(module, path.as_mut_ptr(), path.len() as u32) } as usize;
    (length > 0 && length < path.len())
        .then(|| PathBuf::from(std::ffi::OsString::from_wide(&path[..length])))
}
