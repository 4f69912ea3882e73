//! The handle table: `pyb_object` handles to Python objects, their lookup,
//! their release (queued without the GIL), and their end with the engine.
//!
//! A handle is a `uint64_t`: slot index + 1 in the low 32 bits, the slot's
//! generation in the next 31 (bumped each time the slot is reused), bit 63
//! never set. A released handle, a handle from a shut-down engine (the engine's
//! end frees every slot, so the next use of the slot has a new generation) and
//! a made-up number all fail the lookup with `PYB_E_BAD_HANDLE`; nothing ever
//! dereferences a handle as a pointer.
//!
//! Locking: the table's mutable parts (object pointers, free list) are touched
//! only by a thread holding the GIL, so the GIL is their lock and the hot path
//! takes no other. Each slot's `key` (the handle currently valid for it) is an
//! atomic so that `pyb_object_release` can work without the GIL: it marks the
//! key "release pending" with one compare-and-swap (which also catches a double
//! release) and queues the handle; whoever next enters pybridge with the GIL
//! drains the queue. Slots live in fixed chunks that never move while an
//! engine runs, so reading a key needs no lock either.
//!
//! Interpreters: each slot remembers the interpreter its handle belongs to
//! (0 = main, else a sub-interpreter id), and only a thread working in that
//! interpreter may use it (`PYB_E_WRONG_INTERPRETER`). Interpreters with their
//! own GIL run at once, so the GIL cannot guard one shared free list: each
//! interpreter keeps its own, guarded by its GIL (the main one in `MAIN_FREE`,
//! a sub-interpreter's in its record), and they refill in batches from
//! `GROWTH`, the one locked part. A release from outside the handle's
//! interpreter is queued with the interpreter's id and applied by the next
//! thread working there; an interpreter's end frees its handles and gives the
//! slots to `GROWTH` for the others.
//!
//! Memory: the chunks are mapped directly (`mmap`) and unmapped when the
//! engine that filled them has ended, so a table filled to millions of handles
//! gives its memory back to the system. Readers without the GIL (a release
//! from a thread outside pybridge, an error message) announce themselves in
//! `LOCK_FREE_READERS`; the engine's end unpublishes the chunks first, then
//! waits for that count to reach zero before unmapping, so no reader can hold
//! a pointer into a chunk that is gone. A new table's slots start at a
//! generation above every handle the old one issued, so old handles stay dead.
//!
//! One file over 500 lines: the table, its queued releases and its end with
//! an interpreter all lean on the same slot layout and lock discipline.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use pyo3::{Python, ffi};

use crate::abi::handles::pyb_object;
use crate::abi::status::*;
use crate::runtime::error::{Error, Result};
use crate::runtime::gil_cell::{InterpreterGil, InterpreterGilCell};
use crate::runtime::ids::InterpreterId;
use crate::runtime::interpreters::InterpreterRecord;
use crate::runtime::thread_slot::ThreadSlot;

const CHUNK_BITS: u32 = 12;
const CHUNK_LEN: usize = 1 << CHUNK_BITS;
const MAX_CHUNKS: usize = 4096;
/// At most this many handles are live at once (16,777,216).
const MAX_SLOTS: usize = CHUNK_LEN * MAX_CHUNKS;
const INDEX_MASK: u64 = 0xffff_ffff;
const GENERATION_MASK: u32 = 0x7fff_ffff;
/// Set in a slot's key while its release waits in the queue; never in a handle.
const PENDING: u64 = 1 << 63;

struct Slot {
    /// The handle valid for this slot (with `PENDING` while queued), or 0 when free.
    key: AtomicU64,
    /// GIL-protected: the owned reference behind the handle.
    object: Cell<*mut ffi::PyObject>,
    /// GIL-protected: the generation of the last handle issued for this slot.
    generation: Cell<u32>,
    /// The interpreter the handle belongs to (0 = main); written before `key`.
    interpreter: AtomicU64,
}

static CHUNKS: [AtomicPtr<Slot>; MAX_CHUNKS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_CHUNKS];
const CHUNK_BYTES: usize = CHUNK_LEN * std::mem::size_of::<Slot>();

/// The highest generation any ended engine's table issued: a handle no table
/// holds with a generation up to this one comes from an ended engine.
static RETIRED_GENERATION: AtomicU32 = AtomicU32::new(0);

/// Threads reading slots without the GIL right now (see the module comment).
static LOCK_FREE_READERS: AtomicUsize = AtomicUsize::new(0);

/// Marks a slot read without the GIL; the engine's end waits for it before
/// unmapping chunks.
struct LockFreeRead;

impl LockFreeRead {
    fn begin() -> LockFreeRead {
        LOCK_FREE_READERS.fetch_add(1, Ordering::SeqCst);
        LockFreeRead
    }
}

impl Drop for LockFreeRead {
    fn drop(&mut self) {
        LOCK_FREE_READERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The table's shared part: taken only when an interpreter's free list is empty.
struct Growth {
    /// Slots handed out so far (the next never-used index).
    used: usize,
    /// The generation new slots start from: above every handle of earlier tables.
    base_generation: u32,
    /// Free slots no interpreter holds (given back by ended interpreters).
    orphans: Vec<u32>,
}

static GROWTH: Mutex<Growth> = Mutex::new(Growth {
    used: 0,
    base_generation: 0,
    orphans: Vec::new(),
});

/// How many slots an interpreter's free list takes from `GROWTH` at a time.
const REFILL: usize = 64;

/// The main interpreter's free slots; the main GIL is their lock.
static MAIN_FREE: InterpreterGilCell<Vec<u32>> =
    InterpreterGilCell::new(InterpreterId::MAIN, Vec::new());

/// Queued releases: (interpreter id, handle).
static RELEASE_QUEUE: Mutex<Vec<(InterpreterId, pyb_object)>> = Mutex::new(Vec::new());
static RELEASES_QUEUED: AtomicBool = AtomicBool::new(false);

/// A handle's bits: the slot index + 1 in the low 32 (so 0 is never a
/// handle), the slot's generation in the next 31, and 0 in the top bit, which
/// marks a slot key whose release is queued (`PENDING`).
fn encode_handle(index: usize, generation: u32) -> pyb_object {
    ((generation as u64) << 32) | (index as u64 + 1)
}

/// The slot index a handle names, if it could name one.
fn handle_index(handle: pyb_object) -> Option<usize> {
    let index = (handle & INDEX_MASK).checked_sub(1)? as usize;
    (handle & PENDING == 0 && index < MAX_SLOTS).then_some(index)
}

fn handle_generation(handle: pyb_object) -> u32 {
    (handle >> 32) as u32 & GENERATION_MASK
}

fn slot(handle: pyb_object) -> Option<&'static Slot> {
    let index = handle_index(handle)?;
    let chunk = CHUNKS[index >> CHUNK_BITS].load(Ordering::SeqCst);
    // SAFETY: a published chunk stays mapped while the caller holds the GIL or
    // a `LockFreeRead` (see the module comment); the index is inside the chunk.
    unsafe { chunk.as_ref().map(|_| &*chunk.add(index & (CHUNK_LEN - 1))) }
}

#[cold]
#[inline(never)]
pub(crate) fn bad_handle(handle: pyb_object) -> Error {
    let _reading = LockFreeRead::begin();
    let why = if handle == 0 {
        "is 0 (no object); pass a handle pybridge returned".to_string()
    } else {
        let generation = handle_generation(handle);
        match slot(handle) {
            None if generation != 0 && generation <= RETIRED_GENERATION.load(Ordering::Relaxed) => {
                "comes from an engine that has since shut down (handles die with \
                 pyb_engine_shutdown)"
                    .to_string()
            }
            None => "was never issued by pybridge".to_string(),
            Some(slot) if slot.key.load(Ordering::Relaxed) == handle | PENDING => {
                "was released (its release is queued)".to_string()
            }
            Some(_) => "was released, or comes from an engine that has since shut down \
                        (handles die with pyb_engine_shutdown)"
                .to_string(),
        }
    };
    Error::new(PYB_E_BAD_HANDLE, format!("object handle {handle:#x} {why}"))
}

/// The GIL token of the interpreter the calling thread works in, and that
/// interpreter's free list. Debug builds check the thread's record against
/// CPython's current thread state (`caller_is_where_recorded`).
#[inline(always)]
fn current_interpreter(
    py: Python<'_>,
) -> (InterpreterGil<'_>, &'static InterpreterGilCell<Vec<u32>>) {
    let (id, free) = recorded_interpreter();
    debug_assert!(
        caller_is_where_recorded(),
        "pybridge bug: a handle made where the thread's record does not say it works"
    );
    // SAFETY: the caller holds a GIL (`py`), and pybridge puts a thread into an
    // interpreter only by attaching one of that interpreter's thread states,
    // which its record then names: the GIL held is `id`'s. (Keeper threads,
    // where the two differ, make no handles: `caller_is_where_recorded`.)
    (unsafe { InterpreterGil::assume(py, id) }, free)
}

/// The interpreter the calling thread's record says it works in, and its free list.
#[inline(always)]
fn recorded_interpreter() -> (InterpreterId, &'static InterpreterGilCell<Vec<u32>>) {
    match ThreadSlot::existing() {
        // The published id answers the common case without a look at the frames.
        Some(thread) if !thread.current_interpreter().is_main() => {
            let (_, switch) = thread
                .owner()
                .frames
                .innermost_switch()
                .expect("a thread in a sub-interpreter has its switch");
            // SAFETY: the thread's entry keeps the record registered (see
            // `runtime::interpreters::enter`) while it works there.
            let record: &'static InterpreterRecord = unsafe { &*switch.record };
            (record.id, &record.free_handle_slots)
        }
        _ => (InterpreterId::MAIN, &MAIN_FREE),
    }
}

/// True when the interpreter whose GIL the caller holds is the one its thread
/// record says it works in. Not so on pybridge's keeper threads, which run
/// code in their sub-interpreter on a raw thread state: a handle made there
/// would be filed under the main interpreter, and its release would free the
/// object there with the wrong allocator (heap corruption, 3.12/3.13). Error
/// paths only. GIL held.
#[cold]
pub(crate) fn caller_is_where_recorded() -> bool {
    // SAFETY: GIL held, so the current thread state is live.
    let actual = unsafe { ffi::PyThreadState_GetInterpreter(ffi::PyThreadState_Get()) };
    let (id, _) = recorded_interpreter();
    let recorded = if id.is_main() {
        crate::runtime::gate::interpreter()
    } else {
        crate::runtime::interpreters::lookup(id).map_or(std::ptr::null_mut(), |record| {
            record.interp.load(Ordering::Acquire)
        })
    };
    actual == recorded
}

/// The interpreter the calling thread works in.
#[inline(always)]
fn current_interpreter_id() -> InterpreterId {
    ThreadSlot::existing().map_or(InterpreterId::MAIN, |thread| thread.current_interpreter())
}

/// Stores an owned reference and returns its new handle.
pub(crate) fn insert(py: Python<'_>, object: *mut ffi::PyObject) -> Result<pyb_object> {
    let (gil, free) = current_interpreter(py);
    let interpreter = gil.interpreter();
    let index = match free.with(gil, take_free_index) {
        Ok(index) => index,
        Err(error) => {
            // SAFETY: GIL held; we own the reference we could not store. Outside
            // the table's borrow: this may run __del__, which may make handles.
            unsafe { ffi::Py_DecRef(object) };
            return Err(error);
        }
    };
    let slot = slot(encode_handle(index, 1)).expect("slot was just allocated");
    let generation = match slot.generation.get().wrapping_add(1) & GENERATION_MASK {
        0 => 1,
        generation => generation,
    };
    slot.generation.set(generation);
    slot.object.set(object);
    slot.interpreter.store(interpreter.0, Ordering::Relaxed);
    let handle = encode_handle(index, generation);
    slot.key.store(handle, Ordering::Release);
    Ok(handle)
}

/// Insert's table step: a free slot's index from the interpreter's own list,
/// refilled from `GROWTH` when empty.
#[inline(always)]
fn take_free_index(free: &mut Vec<u32>) -> Result<usize> {
    match free.pop() {
        Some(index) => Ok(index as usize),
        None => refill(free),
    }
}

#[cold]
#[inline(never)]
fn refill(free: &mut Vec<u32>) -> Result<usize> {
    let mut growth = GROWTH.lock();
    let keep = growth.orphans.len().saturating_sub(REFILL);
    free.extend(growth.orphans.drain(keep..));
    while free.len() < REFILL && growth.used < MAX_SLOTS {
        let index = growth.used;
        if index % CHUNK_LEN == 0 {
            let chunk = map_chunk(growth.base_generation)?;
            CHUNKS[index >> CHUNK_BITS].store(chunk, Ordering::SeqCst);
        }
        growth.used += 1;
        free.push(index as u32);
    }
    // Lowest index first, as the single list handed them out before.
    free.reverse();
    free.pop().map(|index| index as usize).ok_or_else(|| {
        Error::new(
            PYB_E_OUT_OF_RANGE,
            format!("{MAX_SLOTS} object handles are live; release some first"),
        )
    })
}

/// A new chunk of free slots whose generations start at `generation`.
fn map_chunk(generation: u32) -> Result<*mut Slot> {
    // All-zero bytes are a valid `Slot` (a 0 key, a NULL object, generation 0).
    let memory = crate::sys::memory::map_zeroed(CHUNK_BYTES).map_err(|error| {
        Error::new(
            PYB_E_OUT_OF_MEMORY,
            format!("no memory for {CHUNK_LEN} more object handles: {error}"),
        )
    })?;
    let chunk = memory.as_ptr().cast::<Slot>();
    for index in 0..CHUNK_LEN {
        // SAFETY: inside the mapping just made, which no one else sees yet.
        unsafe { (*chunk.add(index)).generation.set(generation) };
    }
    Ok(chunk)
}

/// Gives the table's memory back once its engine has ended: every handle is
/// dead by then (`on_engine_finalize` cleared them), no thread holds this
/// engine's GIL, and readers without it are waited for. Called by the thread
/// ending the engine, after `Py_FinalizeEx` (or after a guest engine detached).
pub(crate) fn on_engine_finalized() {
    // SAFETY: no thread can be inside pybridge with the GIL now, so the main
    // free list is ours alone, as the GIL would make it.
    // Dropped, not cleared: a table filled to 16.7M handles left its free
    // list's 64 MiB behind with `clear`.
    unsafe { MAIN_FREE.with_exclusive(|free| drop(std::mem::take(free))) };
    unmap_table(&mut GROWTH.lock());
}

fn unmap_table(table: &mut Growth) {
    let chunks = table.used.div_ceil(CHUNK_LEN);
    let mut highest = table.base_generation;
    let mut unpublished = Vec::with_capacity(chunks);
    for published in &CHUNKS[..chunks] {
        let chunk = published.swap(std::ptr::null_mut(), Ordering::SeqCst);
        for index in 0..CHUNK_LEN {
            // SAFETY: still mapped; the generation is only written under the GIL.
            highest = highest.max(unsafe { (*chunk.add(index)).generation.get() });
        }
        unpublished.push(chunk);
    }
    // A reader that loaded a chunk pointer before the swaps above has
    // announced itself already; later readers find no chunk.
    while LOCK_FREE_READERS.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
    for chunk in unpublished {
        let chunk = std::ptr::NonNull::new(chunk.cast()).expect("published chunks are mapped");
        // SAFETY: mapped by `map_chunk` with this size; no reader can reach it now.
        unsafe { crate::sys::memory::unmap(chunk, CHUNK_BYTES) };
    }
    RETIRED_GENERATION.store(highest, Ordering::Relaxed);
    let freed = table.used;
    *table = Growth {
        used: 0,
        base_generation: highest,
        orphans: Vec::new(),
    };
    if freed > 0 {
        log::debug!("engine end unmapped the table of {freed} object handle slots");
    }
}

/// The object behind a live handle, borrowed.
#[inline]
pub(crate) fn borrow(_py: Python<'_>, handle: pyb_object) -> Result<*mut ffi::PyObject> {
    match slot(handle) {
        Some(slot) if slot.key.load(Ordering::Acquire) == handle => {
            let interpreter = InterpreterId(slot.interpreter.load(Ordering::Relaxed));
            if interpreter != current_interpreter_id() {
                return Err(wrong_interpreter(handle, interpreter));
            }
            Ok(slot.object.get())
        }
        _ => Err(bad_handle(handle)),
    }
}

#[cold]
#[inline(never)]
fn wrong_interpreter(handle: pyb_object, owner: InterpreterId) -> Error {
    let name = |id: InterpreterId| {
        if id.is_main() {
            "the main interpreter".to_string()
        } else {
            format!("sub-interpreter {id}")
        }
    };
    Error::new(
        PYB_E_WRONG_INTERPRETER,
        format!(
            "object handle {handle:#x} belongs to {}, but this thread works in {}: use it \
             inside its own interpreter, or pass a plain value (pyb_value), which is copied",
            name(owner),
            name(current_interpreter_id())
        ),
    )
}

/// A new reference to the object behind a live handle.
#[inline]
pub(crate) fn new_reference(py: Python<'_>, handle: pyb_object) -> Result<*mut ffi::PyObject> {
    let object = borrow(py, handle)?;
    // SAFETY: GIL held; the handle keeps the object alive.
    unsafe { ffi::Py_INCREF(object) };
    Ok(object)
}

/// Frees a slot of the calling thread's interpreter whose key the caller has
/// just cleared, returning its reference.
fn take_slot(py: Python<'_>, handle: pyb_object, slot: &Slot) -> *mut ffi::PyObject {
    let object = slot.object.replace(std::ptr::null_mut());
    let (gil, free) = current_interpreter(py);
    free.with(gil, |free| free.push(((handle & INDEX_MASK) - 1) as u32));
    object
}

/// Releases a handle. With the GIL held through pybridge the reference is
/// dropped now; otherwise the release is queued and never blocks.
pub(crate) fn release(handle: pyb_object) -> Result<()> {
    if handle == 0 {
        return Ok(());
    }
    // A pybridge scope is open, and the GIL is really ours right now.
    let holds_gil = ThreadSlot::existing().is_some_and(crate::python::gil::scope_holds_gil);
    // Without the GIL the engine may be ending under us: hold its chunks mapped.
    let _reading = (!holds_gil).then(LockFreeRead::begin);
    let slot = slot(handle).ok_or_else(|| bad_handle(handle))?;
    // Read before the key: a slot is reused only after its key was cleared.
    let interpreter = InterpreterId(slot.interpreter.load(Ordering::Acquire));
    if holds_gil && interpreter == current_interpreter_id() {
        // SAFETY: the check above: this thread holds the GIL now.
        let py = unsafe { Python::assume_attached() };
        slot.key
            .compare_exchange(handle, 0, Ordering::AcqRel, Ordering::Relaxed)
            .map_err(|_| bad_handle(handle))?;
        let object = take_slot(py, handle, slot);
        // SAFETY: GIL held; the reference was the handle's. May run __del__.
        unsafe { ffi::Py_DecRef(object) };
        return Ok(());
    }
    refuse_queueing_in_fork_child()?;
    slot.key
        .compare_exchange(
            handle,
            handle | PENDING,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .map_err(|_| bad_handle(handle))?;
    RELEASE_QUEUE.lock().push((interpreter, handle));
    RELEASES_QUEUED.store(true, Ordering::Release);
    Ok(())
}

/// In a `fork()` child the queue's lock may belong to a thread that did not
/// survive the fork (found by tests/c/fuzz_api.c: a child hung in a release),
/// and no thread will ever apply the queue: the object stays, as everything
/// of the child's closed copy of the engine does.
fn refuse_queueing_in_fork_child() -> Result<()> {
    if crate::runtime::gate::load().state() == crate::runtime::gate::GateState::Forked {
        return Err(Error::forked());
    }
    Ok(())
}

/// Releases a handle through the queue even when the GIL is held: for
/// owners that may be dropped in the middle of pybridge's own work (an error's
/// exception object), where releasing at once could run `__del__` there.
/// A handle that is already gone is ignored.
pub(crate) fn release_later(handle: pyb_object) {
    if refuse_queueing_in_fork_child().is_err() {
        return;
    }
    let _reading = LockFreeRead::begin();
    let Some(slot) = slot(handle) else {
        return;
    };
    let interpreter = InterpreterId(slot.interpreter.load(Ordering::Acquire));
    if slot
        .key
        .compare_exchange(
            handle,
            handle | PENDING,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
    {
        RELEASE_QUEUE.lock().push((interpreter, handle));
        RELEASES_QUEUED.store(true, Ordering::Release);
    }
}

/// Applies queued releases; costs one relaxed load when none are queued.
#[inline(always)]
pub(crate) fn drain_release_queue(py: Python<'_>) {
    if RELEASES_QUEUED.load(Ordering::Relaxed) {
        drain_release_queue_slow(py);
    }
}

#[cold]
#[inline(never)]
fn drain_release_queue_slow(py: Python<'_>) {
    let here = current_interpreter_id();
    let queued: Vec<pyb_object> = {
        let mut queue = RELEASE_QUEUE.lock();
        let mut mine = Vec::new();
        queue.retain(|&(interpreter, handle)| {
            let ours = interpreter == here;
            if ours {
                mine.push(handle);
            }
            !ours
        });
        // Others stay queued for threads working in their interpreters.
        RELEASES_QUEUED.store(!queue.is_empty(), Ordering::Relaxed);
        mine
    };
    let objects: Vec<*mut ffi::PyObject> = queued
        .into_iter()
        .filter_map(|handle| {
            let slot = slot(handle)?;
            // The engine's end may have freed it already.
            slot.key
                .compare_exchange(handle | PENDING, 0, Ordering::AcqRel, Ordering::Relaxed)
                .ok()?;
            Some(take_slot(py, handle, slot))
        })
        .collect();
    decref_all(py, objects);
}

fn decref_all(_py: Python<'_>, objects: Vec<*mut ffi::PyObject>) {
    for object in objects {
        // SAFETY: GIL held; each is a reference a handle owned. May run __del__.
        unsafe { ffi::Py_DecRef(object) };
    }
}

/// Frees every handle before `Py_FinalizeEx`.
/// Called once by the engine thread, after no host thread is inside.
pub(crate) fn on_engine_finalize(py: Python<'_>) {
    // Dropping references runs __del__, which may create or release handles:
    // repeat until the table is empty (bounded, in case it never settles).
    for _ in 0..16 {
        drop(std::mem::take(&mut *RELEASE_QUEUE.lock()));
        RELEASES_QUEUED.store(false, Ordering::Relaxed);
        let used = GROWTH.lock().used;
        let mut objects = Vec::new();
        for index in 0..used {
            let handle = index as u64 + 1;
            let slot = slot(handle).expect("used slots are allocated");
            let key = slot.key.swap(0, Ordering::AcqRel);
            if key != 0 {
                objects.push(take_slot(py, handle, slot));
            }
        }
        if objects.is_empty() {
            break;
        }
        log::debug!(
            "engine end releases {} live object handle(s)",
            objects.len()
        );
        decref_all(py, objects);
    }
}

/// Frees every handle of sub-interpreter `id` before it ends: the calling
/// thread holds that interpreter's GIL (its keeper), and no host thread works
/// there any more. The slots go to `GROWTH` for the other interpreters.
pub(crate) fn on_interpreter_end(gil: InterpreterGil<'_>, free: &InterpreterGilCell<Vec<u32>>) {
    let (py, id) = (gil.python(), gil.interpreter());
    let free = free.with(gil, std::mem::take);
    GROWTH.lock().orphans.extend(free);
    RELEASE_QUEUE
        .lock()
        .retain(|&(interpreter, _)| interpreter != id);
    for _ in 0..16 {
        let used = GROWTH.lock().used;
        let mut objects = Vec::new();
        let mut indices = Vec::new();
        for index in 0..used {
            let slot = slot(index as u64 + 1).expect("used slots are allocated");
            if slot.interpreter.load(Ordering::Acquire) != id.0
                || slot.key.load(Ordering::Acquire) == 0
            {
                continue;
            }
            if slot.key.swap(0, Ordering::AcqRel) != 0 {
                objects.push(slot.object.replace(std::ptr::null_mut()));
                slot.interpreter.store(0, Ordering::Relaxed);
                indices.push(index as u32);
            }
        }
        if objects.is_empty() {
            break;
        }
        log::debug!(
            "the end of sub-interpreter {id} releases {} live object handle(s)",
            objects.len()
        );
        GROWTH.lock().orphans.extend(indices);
        decref_all(py, objects);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_encode_index_and_generation_and_are_never_zero() {
        for (index, generation) in [(0, 1), (1, 1), (4095, 7), (MAX_SLOTS - 1, GENERATION_MASK)] {
            let handle = encode_handle(index, generation);
            assert_ne!(handle, 0);
            assert_eq!(handle_index(handle), Some(index));
            assert_eq!(handle_generation(handle), generation);
            assert_eq!(handle & PENDING, 0, "the pending bit stays free");
            assert_eq!(
                handle_index(handle | PENDING),
                None,
                "a pending key names no slot"
            );
        }
        assert_eq!(handle_index(0), None);
        assert_eq!(handle_index(1 << 32), None, "index bits 0: never issued");
        assert_eq!(handle_index(MAX_SLOTS as u64 + 1), None, "past the table");
    }
}
