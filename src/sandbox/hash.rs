//! Stable hashing and seeded draws for the sandbox.
//!
//! The generated book and the faults must be the same for the same seed on every machine and
//! every Rust release, so they use this small, fixed mixer (the SplitMix64 finaliser) instead of
//! the standard library's hasher or a crate's generator, whose outputs may change between
//! versions.

/// Scrambles one 64-bit value (SplitMix64's finaliser).
pub fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a sequence of numbers; the order of the parts matters.
pub fn hash(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x2545_F491_4F6C_DD1D, |state, part| mix(state ^ mix(*part)))
}

/// Hashes text (FNV-1a, then mixed).
pub fn hash_text(text: &str) -> u64 {
    let fnv = text.bytes().fold(0xCBF2_9CE4_8422_2325_u64, |state, byte| {
        (state ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
    });
    mix(fnv)
}

/// Maps a hash to a number in `[0, 1)`.
pub fn unit(value: u64) -> f64 {
    (value >> 11) as f64 / (1_u64 << 53) as f64
}

/// A reproducible stream of draws, seeded from a hash of its parts.
pub struct Draws {
    state: u64,
}

impl Draws {
    pub fn new(parts: &[u64]) -> Self {
        Self { state: hash(parts) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        unit(self.next_u64()) < p
    }

    /// A number in `[low, high)`; `low` when the range is empty.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }

    /// A number in `[low, high)`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + unit(self.next_u64()) * (high - low)
    }

    /// An index drawn with the given relative weights.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut ticket = self.between(0, total.max(1));
        for (index, weight) in weights.iter().enumerate() {
            if ticket < u64::from(*weight) {
                return index;
            }
            ticket -= u64::from(*weight);
        }
        weights.len().saturating_sub(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let len = items.len().max(1) as u64;
        &items[(self.next_u64() % len) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_fixed_across_builds() {
        assert_eq!(hash(&[1, 2, 3]), hash(&[1, 2, 3]));
        assert_ne!(hash(&[1, 2, 3]), hash(&[3, 2, 1]));
        assert_eq!(mix(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn weighted_draws_follow_their_weights() {
        let mut draws = Draws::new(&[7]);
        let picks: Vec<usize> = (0..10_000).map(|_| draws.weighted(&[1, 0, 3])).collect();
        let third = picks.iter().filter(|pick| **pick == 2).count();
        assert!(!picks.contains(&1));
        assert!((7_000..8_000).contains(&third), "{third}");
    }
}
