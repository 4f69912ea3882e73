//! GIL and allow-threads tokens: plain `uint64_t` values, each issued once for
//! the life of the process, so a token can only ever close the scope or
//! region it was issued for.
//!
//! Layout: serial (62 bits) | kind (2 bits). Each thread draws serials from
//! its own block of 2^16, taken from a process-wide counter when the last one
//! runs out, so issuing a token touches no shared memory 65,535 times in
//! 65,536. The first block is 1, so every value below 2^18 (0 included) is
//! never a token. 2^62 serials last 14,000 years at 10 million scopes a
//! second. Validation compares a value with the thread's innermost open
//! token; only error messages look further (`token_diagnostics::misplaced_token`).

use std::sync::atomic::{AtomicU64, Ordering};

/// log2 of the serials in one block.
pub(crate) const BLOCK_BITS: u32 = 16;
const KIND_BITS: u32 = 2;
/// Deepest GIL nesting (and allow-threads nesting) on one thread.
pub(crate) const MAX_DEPTH: u32 = (1 << 14) - 1;

/// The next block to hand out; block 0 is never issued.
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Gil = 0,
    AllowThreads = 1,
    /// An allow-threads region begun on a thread that did not hold the GIL:
    /// its end changes nothing, but it is checked like any other.
    AllowThreadsNoop = 2,
}

/// A GIL or allow-threads token's value as the host holds it (`pyb_gil`,
/// `pyb_thread_token`): its own type inside pybridge, so that it cannot be
/// mixed up with the other `u64`s that cross the boundary (object handles,
/// interpreter ids, thread idents). A value from the host may be anything;
/// `Token::decode` says whether it could be a token at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct TokenValue(pub u64);

impl TokenValue {
    /// Never a token (no value below 2^18 is issued): "no region" where one may be absent.
    pub(crate) const NONE: TokenValue = TokenValue(0);
}

/// Messages show a token as the host sees it: `{token:#x}`.
impl std::fmt::LowerHex for TokenValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::LowerHex::fmt(&self.0, f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub serial: u64,
    pub kind: TokenKind,
}

impl Token {
    #[inline(always)]
    pub(crate) fn encode(self) -> TokenValue {
        TokenValue((self.serial << KIND_BITS) | self.kind as u64)
    }

    /// Splits a value into fields; `None` when no token ever has this value.
    pub(crate) fn decode(TokenValue(value): TokenValue) -> Option<Token> {
        let kind = match value & ((1 << KIND_BITS) - 1) {
            0 => TokenKind::Gil,
            1 => TokenKind::AllowThreads,
            2 => TokenKind::AllowThreadsNoop,
            _ => return None,
        };
        let serial = value >> KIND_BITS;
        (serial >> BLOCK_BITS != 0).then_some(Token { serial, kind })
    }

    /// The block the serial came from, which names the issuing thread.
    pub(crate) fn block(self) -> u64 {
        self.serial >> BLOCK_BITS
    }
}

/// One thread's supply of serials.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Serials {
    next: u64,
    end: u64,
}

impl Serials {
    pub(crate) const fn new() -> Self {
        Serials { next: 0, end: 0 }
    }

    /// The next serial; `on_new_block` is told of each block taken.
    #[inline(always)]
    pub(crate) fn take(&mut self, on_new_block: impl FnOnce(u64)) -> u64 {
        if self.next == self.end {
            self.refill(on_new_block);
        }
        let serial = self.next;
        self.next += 1;
        serial
    }

    /// The serial `take` will return next (a fresh block's first when none is left).
    pub(crate) fn peek(&self) -> u64 {
        if self.next == self.end {
            // Every serial of a later block is higher than every earlier one.
            self.end
        } else {
            self.next
        }
    }

    #[cold]
    #[inline(never)]
    fn refill(&mut self, on_new_block: impl FnOnce(u64)) {
        let block = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed);
        assert!(
            block < 1 << (64 - KIND_BITS - BLOCK_BITS),
            "pybridge ran out of token serials"
        );
        on_new_block(block);
        self.next = block << BLOCK_BITS;
        self.end = self.next + (1 << BLOCK_BITS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_impossible_values() {
        let token = Token {
            serial: (1 << 61) + 5,
            kind: TokenKind::AllowThreadsNoop,
        };
        assert_eq!(Token::decode(token.encode()), Some(token));
        assert_eq!(Token::decode(TokenValue::NONE), None, "0 is never a token");
        assert_eq!(Token::decode(TokenValue(3)), None, "kind 3 does not exist");
        assert_eq!(
            Token::decode(TokenValue((1 << BLOCK_BITS) - 1)),
            None,
            "block 0 is never issued"
        );
    }

    #[test]
    fn a_thread_takes_a_new_block_when_its_serials_run_out() {
        let mut serials = Serials::new();
        let mut blocks = Vec::new();
        let first = serials.take(|block| blocks.push(block));
        let mut last = first;
        for _ in 1..(1 << BLOCK_BITS) {
            last = serials.take(|block| blocks.push(block));
        }
        assert_eq!(blocks.len(), 1, "one block covers 2^16 serials");
        assert_eq!(last - first, (1 << BLOCK_BITS) - 1);
        let peeked = serials.peek();
        let next = serials.take(|block| blocks.push(block));
        assert_eq!(
            blocks.len(),
            2,
            "the 2^16+1st serial comes from a new block"
        );
        assert!(next > last && peeked <= next);
        assert_eq!(next >> BLOCK_BITS, blocks[1]);
    }

    /// Slot numbers once wrapped after 2^20 threads, so a thread could close
    /// another's scope; serials come from one counter, so even with more
    /// threads than that in between, two threads never share a value.
    #[test]
    fn threads_never_share_a_token_however_many_came_between() {
        let mut first_thread = Serials::new();
        let early = first_thread.take(|_| {});
        // 2^21 threads, each taking its one block.
        NEXT_BLOCK.fetch_add(1 << 21, Ordering::Relaxed);
        let mut late_thread = Serials::new();
        let mut late_block = 0;
        let late = late_thread.take(|block| late_block = block);
        assert_ne!(early >> BLOCK_BITS, late_block);
        assert_ne!(early, late);
        let more_early = first_thread.take(|_| panic!("still within its first block"));
        assert_ne!(more_early, late);
    }
}
