//! GIL and allow-threads tokens: plain `uint64_t` values that identify a scope
//! well enough to catch misuse (wrong thread, released twice, out of LIFO order,
//! from an earlier engine) without any lookup on the fast path.
//!
//! Layout: generation (16 bits) | thread slot id (20) | epoch (12) | kind (2) | position (14).
//! Generation and slot id start at 1, so 0 is never a valid token.

pub(crate) const SLOT_ID_MASK: u32 = (1 << 20) - 1;
const EPOCH_MASK: u32 = (1 << 12) - 1;
const POSITION_BITS: u32 = 14;
/// Deepest GIL nesting (and allow-threads nesting) a token can express.
pub(crate) const MAX_POSITION: u32 = (1 << POSITION_BITS) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Gil = 0,
    AllowThreads = 1,
    /// An allow-threads region begun on a thread that did not hold the GIL: its end does nothing.
    AllowThreadsNoop = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub generation: u32,
    pub slot_id: u32,
    pub epoch: u32,
    pub kind: TokenKind,
    pub position: u32,
}

impl Token {
    #[inline(always)]
    pub(crate) fn encode(self) -> u64 {
        ((self.generation as u64 & 0xffff) << 48)
            | ((self.slot_id & SLOT_ID_MASK) as u64) << 28
            | ((self.epoch & EPOCH_MASK) as u64) << 16
            | (self.kind as u64) << POSITION_BITS
            | (self.position & MAX_POSITION) as u64
    }

    /// Splits a value into fields; `None` when the kind bits are impossible.
    #[inline(always)]
    pub(crate) fn decode(value: u64) -> Option<Token> {
        let kind = match (value >> POSITION_BITS) & 3 {
            0 => TokenKind::Gil,
            1 => TokenKind::AllowThreads,
            2 => TokenKind::AllowThreadsNoop,
            _ => return None,
        };
        Some(Token {
            generation: (value >> 48) as u32,
            slot_id: ((value >> 28) as u32) & SLOT_ID_MASK,
            epoch: ((value >> 16) as u32) & EPOCH_MASK,
            kind,
            position: (value as u32) & MAX_POSITION,
        })
    }

    /// True when this token was issued under engine generation `generation`.
    #[inline(always)]
    pub(crate) fn is_from_generation(&self, generation: u32) -> bool {
        self.generation == generation & 0xffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let token = Token {
            generation: 0x1_2345,
            slot_id: 77,
            epoch: 4095,
            kind: TokenKind::AllowThreads,
            position: 3,
        };
        let decoded = Token::decode(token.encode()).unwrap();
        assert!(decoded.is_from_generation(0x1_2345));
        assert_eq!(decoded.slot_id, 77);
        assert_eq!(decoded.epoch, 4095);
        assert_eq!(decoded.kind, TokenKind::AllowThreads);
        assert_eq!(decoded.position, 3);
        assert_eq!(Token::decode(3 << POSITION_BITS), None);
    }
}
