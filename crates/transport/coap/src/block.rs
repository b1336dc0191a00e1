//! The Block1/Block2 option value (RFC 7959 §2.2): `NUM` (20 bits), `M`, `SZX`.

use coap_lite::option_value::OptionValueU32;
use coap_lite::{CoapOption, Packet};

/// A Block1 or Block2 option value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Block number.
    pub num: u32,
    /// More blocks follow.
    pub more: bool,
    /// Size exponent: the block size is `2^(szx + 4)`, 16–1024 bytes.
    pub szx: u8,
}

/// Largest block number (20 bits).
pub const MAX_NUM: u32 = (1 << 20) - 1;

impl Block {
    /// Block size in bytes.
    pub fn size(&self) -> usize {
        szx_size(self.szx)
    }

    /// Byte offset of this block.
    pub fn offset(&self) -> usize {
        (self.num as usize) * self.size()
    }

    fn encode(&self) -> Vec<u8> {
        let scalar = (self.num << 4) | (u32::from(self.more) << 3) | u32::from(self.szx & 7);
        Vec::from(OptionValueU32(scalar))
    }

    fn decode(raw: &[u8]) -> Option<Block> {
        if raw.len() > 3 {
            return None;
        }
        let scalar = raw.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let szx = (scalar & 7) as u8;
        if szx == 7 {
            // BERT (RFC 8323) is for reliable transports only.
            return None;
        }
        Some(Block {
            num: scalar >> 4,
            more: scalar & 8 != 0,
            szx,
        })
    }

    /// Reads the option `opt` (Block1 or Block2) from `p`: `Ok(None)` when absent,
    /// `Err(())` when present but malformed.
    pub(crate) fn get(p: &Packet, opt: CoapOption) -> Result<Option<Block>, ()> {
        match p.get_first_option(opt) {
            None => Ok(None),
            Some(raw) => Block::decode(raw).map(Some).ok_or(()),
        }
    }

    /// Sets the option `opt` of `p` to this value.
    pub(crate) fn set(&self, p: &mut Packet, opt: CoapOption) {
        p.clear_option(opt);
        p.add_option(opt, self.encode());
    }
}

/// Block size of a size exponent (clamped to 0–6).
pub fn szx_size(szx: u8) -> usize {
    1usize << (szx.min(6) + 4)
}

/// The size exponent of a block size (a power of two in 16–1024), or `None`.
pub fn size_szx(size: usize) -> Option<u8> {
    (0u8..=6).find(|s| szx_size(*s) == size)
}

/// Reads an unsigned integer option (Size1, Size2, Content-Format, Accept).
pub(crate) fn get_uint(p: &Packet, opt: CoapOption) -> Option<u32> {
    p.get_first_option(opt)
        .filter(|raw| raw.len() <= 4)
        .map(|raw| raw.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// Sets an unsigned integer option in minimal encoding.
pub(crate) fn set_uint(p: &mut Packet, opt: CoapOption, v: u32) {
    p.clear_option(opt);
    p.add_option(opt, Vec::from(OptionValueU32(v)));
}
