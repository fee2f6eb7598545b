//! A small, fast, seedable random number generator: SplitMix64.
//!
//! Each event gets its own generator seeded from `(seed, event number)`, so event `n` is
//! the same whichever thread, partition or split generates it, and no state is carried
//! from one event to the next. SplitMix64 passes BigCrush, costs a handful of
//! multiplications per draw and needs no dependency.

/// The golden-ratio increment of SplitMix64.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective mix of 64 bits.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// The generator of event `n` of the stream seeded with `seed`.
    #[inline]
    pub fn for_event(seed: u64, n: u64) -> Rng {
        Rng {
            state: mix64(seed ^ mix64(n.wrapping_mul(GAMMA).wrapping_add(GAMMA))),
        }
    }

    /// A generator seeded directly (tables built once per seed).
    pub fn seeded(seed: u64) -> Rng {
        Rng {
            state: mix64(seed.wrapping_add(GAMMA)),
        }
    }

    /// 64 uniform bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// Uniform in `[0, n)` (Lemire's multiply-high; the bias is below 2^-40 for the
    /// bounds used here). `n == 0` gives 0.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)` with 53 bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Appends `len` characters drawn from `alphabet` (at most 256 symbols): about a
    /// dozen characters per 64-bit draw, by peeling base-`alphabet.len()` digits off a
    /// uniform fraction.
    #[inline]
    pub fn push_chars(&mut self, out: &mut String, len: usize, alphabet: &[u8]) {
        debug_assert!(alphabet.is_ascii() && !alphabet.is_empty() && alphabet.len() <= 256);
        let base = alphabet.len() as u128;
        // Digits per draw so that base^digits stays well below 2^64 (quality of the
        // later digits of one draw stays uniform enough for padding text).
        let per_draw = (56.0 / (alphabet.len() as f64).log2()).floor().max(1.0) as usize;
        let mut left = len;
        out.reserve(len);
        while left > 0 {
            let mut x = self.next_u64();
            for _ in 0..per_draw.min(left) {
                let t = x as u128 * base;
                out.push(alphabet[(t >> 64) as usize] as char);
                x = t as u64;
            }
            left -= per_draw.min(left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_event_give_the_same_draws_and_others_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_event(7, 42).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::for_event(7, 42).next_u64(),
            Rng::for_event(7, 43).next_u64()
        );
        assert_ne!(
            Rng::for_event(7, 42).next_u64(),
            Rng::for_event(8, 42).next_u64()
        );
    }

    #[test]
    fn below_and_f64_stay_in_range_and_cover_it() {
        let mut r = Rng::seeded(1);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let x = r.below(10);
            seen[x as usize] += 1;
            let f = r.next_f64();
            assert!((0.0..1.0).contains(&f));
        }
        // Each bucket near 1000 (a loose bound: this is a sanity check, not a test suite).
        assert!(seen.iter().all(|&c| (850..1150).contains(&c)), "{seen:?}");
    }

    #[test]
    fn push_chars_uses_only_the_alphabet_and_the_exact_length() {
        let mut r = Rng::seeded(3);
        let mut s = String::new();
        r.push_chars(&mut s, 100, b"abc");
        assert_eq!(s.len(), 100);
        assert!(s.bytes().all(|b| b"abc".contains(&b)));
        assert!(s.contains('a') && s.contains('b') && s.contains('c'));
    }
}
