//! `pyb_config`: the default settings, and the check and copy of a host's.

use crate::abi::status::pyb_status;
use crate::capi::boundary::{ffi_boundary, optional_utf8_arg, out_ptr, utf8_arg};
use crate::capi::python_choice;
use crate::runtime::config::EngineConfig;
use crate::runtime::error::{Error, Result, reserve_for_host_count};

pub use crate::abi::config::*;

const KNOWN_FLAGS: u32 = PYB_CONFIG_ISOLATED | PYB_CONFIG_IGNORE_SIGPIPE;

/// The `struct_size` of the first `pyb_config`, which ended before `python`.
const OLDEST_CONFIG_SIZE: usize = std::mem::offset_of!(pyb_config, python);

/// Writes the default configuration to `out`. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_config_default(out: *mut pyb_config) -> pyb_status {
    ffi_boundary("pyb_config_default", || {
        *out_ptr(out, "out")? = pyb_config::default();
        Ok(())
    })
}

/// Copies and checks the host's configuration; NULL means defaults.
pub(crate) fn engine_config(config: *const pyb_config) -> Result<EngineConfig> {
    // SAFETY: a non-NULL config is promised readable for `struct_size` bytes.
    let Some(config) = (unsafe { config.as_ref() }) else {
        return engine_config(&pyb_config::default());
    };
    if config.struct_size < OLDEST_CONFIG_SIZE {
        return Err(Error::invalid_argument(format!(
            "pyb_config.struct_size is {} but this pybridge needs at least \
             {OLDEST_CONFIG_SIZE}; fill the struct with pyb_config_default",
            config.struct_size
        )));
    }
    // A host built before a field existed passes a shorter struct: read only
    // what it has, and take defaults for the rest.
    let mut known = pyb_config::default();
    // SAFETY: the host promises `struct_size` readable bytes; at most ours are copied.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (config as *const pyb_config).cast::<u8>(),
            (&mut known as *mut pyb_config).cast::<u8>(),
            config.struct_size.min(std::mem::size_of::<pyb_config>()),
        )
    };
    let config = &known;
    if config.flags & !KNOWN_FLAGS != 0 {
        return Err(Error::invalid_argument(format!(
            "pyb_config.flags has unknown bits {:#x}",
            config.flags & !KNOWN_FLAGS
        )));
    }
    let module_search_paths = string_list(
        config.module_search_paths,
        config.module_search_paths_len,
        "pyb_config.module_search_paths",
    )?;
    let argv = string_list(config.argv, config.argv_len, "pyb_config.argv")?;
    let python = optional_utf8_arg(config.python, "pyb_config.python")?;
    let chosen = python_choice::choose(python)?;
    let python_home = optional_utf8_arg(config.python_home, "pyb_config.python_home")?
        .map(str::to_string)
        .or(chosen.home);
    Ok(EngineConfig {
        python_home,
        virtual_env: optional_utf8_arg(config.virtual_env, "pyb_config.virtual_env")?
            .map(str::to_string),
        module_search_paths,
        argv,
        isolated: config.flags & PYB_CONFIG_ISOLATED != 0,
        ignore_sigpipe: config.flags & PYB_CONFIG_IGNORE_SIGPIPE != 0,
        previous_threads_timeout_ms: config.previous_threads_timeout_ms,
        program_name: chosen.program_name,
    })
}

/// Copies a host array of `len` UTF-8 strings (`name`, `name_len` in messages).
fn string_list(
    items: *const *const std::ffi::c_char,
    len: usize,
    name: &str,
) -> Result<Vec<String>> {
    if items.is_null() && len != 0 {
        return Err(Error::null_argument(name));
    }
    let mut copied = Vec::new();
    reserve_for_host_count(&mut copied, len, &format!("{name}_len"))?;
    for index in 0..len {
        // SAFETY: the array is promised to hold `len` entries.
        let entry = unsafe { *items.add(index) };
        copied.push(utf8_arg(entry, &format!("{name}[{index}]"))?.to_string());
    }
    Ok(copied)
}
