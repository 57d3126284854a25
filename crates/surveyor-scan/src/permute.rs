//! A keyed pseudo-random permutation of `0..n` in O(1) memory, for scan order and sharding.
//!
//! Scanning addresses in order hammers one network after another; ZMap walks a cyclic group
//! instead. We use a small Feistel network over the smallest even-bit power-of-two domain that
//! holds `n`, with cycle-walking to stay inside `0..n`: a bijection for any `n`, any seed.

/// A permutation of `0..len`, keyed by a seed.
#[derive(Debug, Clone)]
pub struct Permutation {
    len: u128,
    half_bits: u32,
    keys: [u64; ROUNDS],
}

const ROUNDS: usize = 6;

impl Permutation {
    pub fn new(len: u128, seed: u64) -> Permutation {
        // Domain 2^(2*half_bits) >= len, at least 2^2 so both halves have a bit.
        let bits = (128 - len.saturating_sub(1).leading_zeros()).max(2);
        let half_bits = bits.div_ceil(2);
        let mut state = seed;
        let keys = std::array::from_fn(|_| splitmix64(&mut state));
        Permutation {
            len,
            half_bits,
            keys,
        }
    }

    pub fn len(&self) -> u128 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element at position `i` (`i < len`). Expected cost: fewer than 4 rounds of cycle
    /// walking, since the domain is less than 4 × len.
    pub fn at(&self, i: u128) -> u128 {
        debug_assert!(i < self.len);
        let mut x = i;
        loop {
            x = self.encrypt(x);
            if x < self.len {
                return x;
            }
        }
    }

    /// The position of element `x` (`x < len`): the inverse of [`Permutation::at`], so that an
    /// answer to a SYN can be put back in its place of the walk.
    pub fn position_of(&self, x: u128) -> u128 {
        debug_assert!(x < self.len);
        let mut i = x;
        loop {
            i = self.decrypt(i);
            if i < self.len {
                return i;
            }
        }
    }

    fn decrypt(&self, x: u128) -> u128 {
        let mask = (1u128 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys.iter().rev() {
            let f = round(left, *key) & mask;
            (left, right) = (right ^ f, left);
        }
        (left << self.half_bits) | right
    }

    fn encrypt(&self, x: u128) -> u128 {
        let mask = (1u128 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let f = round(right, key) & mask;
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
    }
}

fn round(x: u128, key: u64) -> u128 {
    let lo = x as u64;
    let hi = (x >> 64) as u64;
    let mut s = lo ^ key ^ hi.rotate_left(17);
    let a = splitmix64(&mut s);
    let b = splitmix64(&mut s);
    (u128::from(b) << 64) | u128::from(a)
}

/// SplitMix64: a fast, well-mixed generator; good enough for ordering, not for secrets.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(len: u128, seed: u64) -> Vec<u128> {
        let p = Permutation::new(len, seed);
        (0..len).map(|i| p.at(i)).collect()
    }

    #[test]
    fn is_a_bijection_for_awkward_sizes() {
        for len in [1u128, 2, 3, 5, 7, 255, 256, 257, 1000, 4097] {
            let mut got = all(len, 42);
            got.sort_unstable();
            assert_eq!(got, (0..len).collect::<Vec<_>>(), "len {len}");
        }
    }

    #[test]
    fn seeds_change_the_order_and_the_order_is_not_sequential() {
        let a = all(1024, 1);
        let b = all(1024, 2);
        assert_ne!(a, b);
        assert_eq!(a, all(1024, 1));
        let in_place = a
            .iter()
            .enumerate()
            .filter(|(i, v)| *i as u128 == **v)
            .count();
        assert!(in_place < 16, "{in_place} fixed points");
    }

    #[test]
    fn position_of_inverts_at() {
        for (len, seed) in [(1u128, 0), (7, 3), (257, 9), (4097, 42), (1 << 20, 5)] {
            let p = Permutation::new(len, seed);
            for i in (0..len).step_by((len as usize / 500).max(1)) {
                assert_eq!(p.position_of(p.at(i)), i, "len {len} seed {seed}");
            }
        }
        let huge = Permutation::new(1u128 << 100, 7);
        assert_eq!(huge.position_of(huge.at(123_456_789)), 123_456_789);
    }

    #[test]
    fn handles_huge_spaces() {
        let p = Permutation::new(1u128 << 100, 7);
        let x = p.at(123_456_789);
        assert!(x < 1u128 << 100);
        assert_ne!(x, p.at(123_456_790));
    }
}
