//! `pyb_config`: what the host tells the engine before Python starts.

use std::ffi::c_char;

use crate::boundary::{ffi_boundary, optional_utf8_arg, out_ptr, reserve_for_host_count, utf8_arg};
use crate::error::{Error, Result};

/// Ignore `PYTHONHOME`, `PYTHONPATH` and the other environment variables, the
/// user site directory and the current directory (CPython's isolated configuration).
pub const PYB_CONFIG_ISOLATED: u32 = 1;
/// Ignore SIGPIPE, as the `python` program does, so that writing to a closed
/// pipe or socket raises `BrokenPipeError` instead of killing the host. Off by
/// default: pybridge starts Python with its signal handlers off, because the
/// process's signals belong to the host, and with the default disposition
/// such a write ends the whole process (exit status 141). The setting is
/// process-wide and stays after shutdown.
pub const PYB_CONFIG_IGNORE_SIGPIPE: u32 = 2;

/// Settings for `pyb_engine_initialize`. Fill it with `pyb_config_default`, then
/// change what you need; strings are UTF-8 and are copied during the call.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct pyb_config {
    /// `sizeof(pyb_config)` as the host was compiled: lets later versions add fields.
    pub struct_size: usize,
    /// Python home (prefix of the standard library), or NULL for the default:
    /// `PYTHONHOME` if set (and not isolated), else the Python pybridge was built against.
    pub python_home: *const c_char,
    /// A virtual environment's root directory, or NULL: its site-packages is added to `sys.path`.
    pub virtual_env: *const c_char,
    /// Extra directories put at the front of `sys.path`, in order; may be NULL when the length is 0.
    pub module_search_paths: *const *const c_char,
    pub module_search_paths_len: usize,
    /// `PYB_CONFIG_*` flags.
    pub flags: u32,
    /// How long `pyb_engine_initialize` waits for daemon threads of a previous
    /// interpreter (in this process) to exit before it starts a new one, in ms.
    /// A daemon thread that wakes up under a new interpreter would run on freed
    /// memory. `PYB_TIMEOUT_INFINITE` waits for ever; default 10000.
    pub previous_threads_timeout_ms: u32,
}

// SAFETY: the pointers are only read during `pyb_engine_initialize`.
unsafe impl Send for pyb_config {}

const DEFAULT_PREVIOUS_THREADS_TIMEOUT_MS: u32 = 10_000;
const KNOWN_FLAGS: u32 = PYB_CONFIG_ISOLATED | PYB_CONFIG_IGNORE_SIGPIPE;

impl Default for pyb_config {
    fn default() -> Self {
        pyb_config {
            struct_size: std::mem::size_of::<pyb_config>(),
            python_home: std::ptr::null(),
            virtual_env: std::ptr::null(),
            module_search_paths: std::ptr::null(),
            module_search_paths_len: 0,
            flags: 0,
            previous_threads_timeout_ms: DEFAULT_PREVIOUS_THREADS_TIMEOUT_MS,
        }
    }
}

/// Writes the default configuration to `out`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_config_default(out: *mut pyb_config) -> crate::status::pyb_status {
    ffi_boundary("pyb_config_default", || {
        *out_ptr(out, "out")? = pyb_config::default();
        Ok(())
    })
}

/// An owned, validated copy of `pyb_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EngineConfig {
    pub python_home: Option<String>,
    pub virtual_env: Option<String>,
    pub module_search_paths: Vec<String>,
    pub isolated: bool,
    pub ignore_sigpipe: bool,
    pub previous_threads_timeout_ms: u32,
}

impl EngineConfig {
    /// Copies and checks the host's configuration; NULL means defaults.
    pub(crate) fn from_c(config: *const pyb_config) -> Result<EngineConfig> {
        // SAFETY: a non-NULL config is promised readable for `struct_size` bytes.
        let Some(config) = (unsafe { config.as_ref() }) else {
            return Self::from_c(&pyb_config::default());
        };
        let minimum = std::mem::size_of::<pyb_config>();
        if config.struct_size < minimum {
            return Err(Error::invalid_argument(format!(
                "pyb_config.struct_size is {} but this pybridge needs at least {minimum}; \
                 fill the struct with pyb_config_default",
                config.struct_size
            )));
        }
        if config.flags & !KNOWN_FLAGS != 0 {
            return Err(Error::invalid_argument(format!(
                "pyb_config.flags has unknown bits {:#x}",
                config.flags & !KNOWN_FLAGS
            )));
        }
        if config.module_search_paths.is_null() && config.module_search_paths_len != 0 {
            return Err(Error::null_argument("pyb_config.module_search_paths"));
        }
        let mut module_search_paths = Vec::new();
        reserve_for_host_count(
            &mut module_search_paths,
            config.module_search_paths_len,
            "pyb_config.module_search_paths_len",
        )?;
        for index in 0..config.module_search_paths_len {
            // SAFETY: the array is promised to hold `module_search_paths_len` entries.
            let entry = unsafe { *config.module_search_paths.add(index) };
            let name = format!("pyb_config.module_search_paths[{index}]");
            module_search_paths.push(utf8_arg(entry, &name)?.to_string());
        }
        Ok(EngineConfig {
            python_home: optional_utf8_arg(config.python_home, "pyb_config.python_home")?
                .map(str::to_string),
            virtual_env: optional_utf8_arg(config.virtual_env, "pyb_config.virtual_env")?
                .map(str::to_string),
            module_search_paths,
            isolated: config.flags & PYB_CONFIG_ISOLATED != 0,
            ignore_sigpipe: config.flags & PYB_CONFIG_IGNORE_SIGPIPE != 0,
            previous_threads_timeout_ms: config.previous_threads_timeout_ms,
        })
    }
}
