//! The dynamic loader's view of libpython: which file is mapped, and making
//! its symbols global for extension modules. Linux: `dladdr`, `dlopen`,
//! `dl_iterate_phdr`; Windows: `GetModuleHandleExW`, `GetModuleFileNameW`,
//! `K32EnumProcessModules` (the `#[cfg(windows)]` functions at the end).

use std::ffi::CStr;

use pyo3::ffi;

/// Makes libpython's symbols global. A host that loads pybridge with
/// `dlopen(RTLD_LOCAL)` (CoreCLR does; so does Python's ctypes by default) gets
/// libpython only as pybridge's private dependency, and CPython's extension
/// modules (`math`, `_json`, ...) then fail to import with "undefined symbol:
/// PyFloat_Type". `RTLD_NOLOAD` re-opens the copy already mapped, never a second one.
#[cfg(unix)]
pub(crate) fn promote_libpython_to_global() {
    let path = libpython_path();
    let Ok(path) = std::ffi::CString::new(path) else {
        return;
    };
    // SAFETY: dlopen with RTLD_NOLOAD only changes the flags of a loaded library;
    // the handle is kept on purpose (libpython stays loaded for the process).
    let handle = unsafe {
        libc::dlopen(
            path.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_GLOBAL,
        )
    };
    if handle.is_null() {
        log::warn!(
            "could not make {} global; extension modules may fail to import",
            path.to_string_lossy()
        );
    }
}

/// The running libpython's version, e.g. `3.12.1`. Any thread, no GIL.
pub(crate) fn running_version() -> String {
    // `Py_GetVersion` formats into one static buffer on every call (3.10-3.13),
    // and CPython calls it itself whenever it makes an interpreter's `sys`: two
    // threads calling it race (ThreadSanitizer reports it). `Py_Version` (3.11+)
    // is a constant.
    #[cfg(Py_3_11)]
    {
        // SAFETY: a constant the library exports.
        let hex = unsafe { ffi::Py_Version };
        format!("{}.{}.{}", hex >> 24, (hex >> 16) & 0xff, (hex >> 8) & 0xff)
    }
    #[cfg(not(Py_3_11))]
    {
        // SAFETY: a NUL-terminated string in a static buffer; see above for the race.
        let version = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }.to_string_lossy();
        version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// The file the dynamic loader actually mapped for libpython.
#[cfg(unix)]
pub(crate) fn libpython_path() -> String {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads loader tables for a symbol address we link against.
    let found = unsafe { libc::dladdr(ffi::Py_GetVersion as *const libc::c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return "unknown".to_string();
    }
    // SAFETY: dladdr filled a NUL-terminated path.
    let path = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy();
    std::fs::canonicalize(&*path)
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| path.into_owned())
}

/// The load address of the shared object `address` lies in (`dladdr`), if any.
// Used to recognise threads CPython 3.14+ parks at finalization.
#[cfg_attr(not(Py_3_14), allow(dead_code))]
#[cfg(unix)]
pub(crate) fn object_base_of(address: usize) -> Option<usize> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads loader tables; any address is accepted.
    let found = unsafe { libc::dladdr(address as *const libc::c_void, &mut info) };
    (found != 0 && !info.dli_fbase.is_null()).then_some(info.dli_fbase as usize)
}

/// Where libpython is loaded.
#[cfg_attr(not(Py_3_14), allow(dead_code))]
pub(crate) fn libpython_base() -> Option<usize> {
    object_base_of(libpython_address())
}

/// An address inside libpython's own image.
#[cfg(unix)]
fn libpython_address() -> usize {
    ffi::Py_GetVersion as *const () as usize
}

/// An address inside libpython's own image: a data export's. A function's
/// address taken in this DLL is the import thunk the linker put here (mingw,
/// checked with CPython 3.13.2 under wine), so its module would be this DLL;
/// a data export is reached through the import table, at its real address.
#[cfg(windows)]
fn libpython_address() -> usize {
    std::ptr::addr_of!(ffi::PyBaseObject_Type) as usize
}

/// The file of every object the loader has mapped (executable, libraries,
/// extension modules), as `dl_iterate_phdr` lists them.
///
/// The callback runs under the loader's lock, so it only copies bytes into
/// room reserved beforehand and never allocates: an allocation there
/// deadlocked under ThreadSanitizer, whose runtime takes the loader's lock to
/// symbolize a report while it holds its own locks, which the allocation
/// wanted. When the names do not fit, the walk is repeated with more room.
#[cfg(unix)]
pub(crate) fn loaded_object_paths() -> Vec<String> {
    loaded_object_paths_from(64 * 1024)
}

#[cfg(unix)]
fn loaded_object_paths_from(mut room: usize) -> Vec<String> {
    loop {
        let mut names = NameBuffer {
            bytes: Vec::with_capacity(room),
            overflowed: false,
        };
        // SAFETY: the callback only reads the entry dl_iterate_phdr hands it
        // and writes into the NameBuffer passed as `data`.
        unsafe {
            libc::dl_iterate_phdr(
                Some(collect_file_name),
                (&mut names as *mut NameBuffer).cast(),
            );
        }
        if !names.overflowed {
            return names
                .bytes
                .split(|byte| *byte == 0)
                .filter(|name| !name.is_empty())
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .collect();
        }
        room *= 4;
    }
}

/// NUL-terminated names, written within the capacity reserved up front.
#[cfg(unix)]
struct NameBuffer {
    bytes: Vec<u8>,
    overflowed: bool,
}

#[cfg(unix)]
unsafe extern "C" fn collect_file_name(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: dl_iterate_phdr passes a valid entry and our `data` pointer.
    unsafe {
        let name = (*info).dlpi_name;
        if name.is_null() {
            return 0;
        }
        let names = &mut *data.cast::<NameBuffer>();
        let name = CStr::from_ptr(name).to_bytes_with_nul();
        if names.bytes.capacity() - names.bytes.len() < name.len() {
            names.overflowed = true;
            return 1; // stops the walk
        }
        // Within the capacity: no allocation.
        names.bytes.extend_from_slice(name);
    }
    0
}

/// Nothing to do on Windows: a `.pyd` imports `python3XY.dll` by name, and
/// the DLL already loaded under that name is the one it gets.
#[cfg(windows)]
pub(crate) fn promote_libpython_to_global() {}

/// The module (its base address) that contains `address`, kept loaded.
#[cfg(windows)]
fn module_of(address: usize) -> Option<windows_sys::Win32::Foundation::HMODULE> {
    use windows_sys::Win32::System::LibraryLoader::{
        GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS, GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
        GetModuleHandleExW,
    };
    let mut module = std::ptr::null_mut();
    // SAFETY: reads the loader's tables; any address is accepted.
    let found = unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
            address as *const u16,
            &mut module,
        )
    };
    (found != 0 && !module.is_null()).then_some(module)
}

/// The file `module` was loaded from.
#[cfg(windows)]
fn module_path(module: windows_sys::Win32::Foundation::HMODULE) -> Option<String> {
    let mut room = 512usize;
    loop {
        let mut path = vec![0u16; room];
        // SAFETY: a buffer of `room` UTF-16 units.
        let length = unsafe {
            windows_sys::Win32::System::LibraryLoader::GetModuleFileNameW(
                module,
                path.as_mut_ptr(),
                room as u32,
            )
        } as usize;
        if length == 0 {
            return None;
        }
        if length < room {
            return Some(String::from_utf16_lossy(&path[..length]));
        }
        room *= 4;
    }
}

/// libpython's module, found from the address of a static it exports
/// (`libpython_address`: a function's would name this DLL).
#[cfg(windows)]
fn libpython_module() -> Option<windows_sys::Win32::Foundation::HMODULE> {
    module_of(libpython_address())
}

/// The file the loader actually mapped for libpython (`python3XY.dll`).
#[cfg(windows)]
pub(crate) fn libpython_path() -> String {
    libpython_module()
        .and_then(module_path)
        .unwrap_or_else(|| "unknown".to_string())
}

/// The load address of the module `address` lies in, if any.
#[cfg(windows)]
#[cfg_attr(not(Py_3_14), allow(dead_code))]
pub(crate) fn object_base_of(address: usize) -> Option<usize> {
    module_of(address).map(|module| module as usize)
}

/// The file of every module loaded in the process (executable, DLLs,
/// extension modules).
#[cfg(windows)]
pub(crate) fn loaded_object_paths() -> Vec<String> {
    use windows_sys::Win32::System::ProcessStatus::K32EnumProcessModules;
    use windows_sys::Win32::System::Threading::GetCurrentProcess;
    let mut modules: Vec<windows_sys::Win32::Foundation::HMODULE> = vec![std::ptr::null_mut(); 256];
    loop {
        let room = (modules.len() * size_of::<windows_sys::Win32::Foundation::HMODULE>()) as u32;
        let mut needed = 0u32;
        // SAFETY: a buffer of `room` bytes; the process pseudo-handle.
        let listed = unsafe {
            K32EnumProcessModules(GetCurrentProcess(), modules.as_mut_ptr(), room, &mut needed)
        };
        if listed == 0 {
            return Vec::new();
        }
        if needed <= room {
            modules
                .truncate(needed as usize / size_of::<windows_sys::Win32::Foundation::HMODULE>());
            return modules.into_iter().filter_map(module_path).collect();
        }
        modules.resize(modules.len() * 2, std::ptr::null_mut());
    }
}

/// The address of libpython's exported `name`, if it exports it.
#[cfg_attr(not(Py_3_15), allow(dead_code))]
#[cfg(windows)]
pub(crate) fn libpython_symbol(name: &CStr) -> Option<*mut std::ffi::c_void> {
    let module = libpython_module()?;
    // SAFETY: a loaded module and a C string.
    let address = unsafe {
        windows_sys::Win32::System::LibraryLoader::GetProcAddress(module, name.as_ptr().cast())
    }?;
    Some(address as *mut std::ffi::c_void)
}

/// The address of libpython's exported `name`, if it exports it.
#[cfg_attr(not(Py_3_15), allow(dead_code))]
#[cfg(unix)]
pub(crate) fn libpython_symbol(name: &CStr) -> Option<*mut std::ffi::c_void> {
    // SAFETY: a symbol lookup in the global scope, which holds libpython.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!address.is_null()).then_some(address)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn loaded_objects_are_listed_whatever_room_the_walk_starts_with() {
        let listed = loaded_object_paths();
        assert!(
            listed.iter().any(|path| path.contains("libc.so")),
            "{listed:?}"
        );
        // 16 bytes hold no path: the walk overflows and starts again, larger.
        assert_eq!(loaded_object_paths_from(16), listed);
    }
}
