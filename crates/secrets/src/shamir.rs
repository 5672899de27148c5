//! Shamir secret sharing over GF(2^8) exactly as sops does it (`shamir/shamir.go`, from
//! HashiCorp Vault): a share is the y-bytes followed by one x-byte.

use crate::cipher::random;
use zeroize::Zeroizing;

/// Multiplication in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80;
        a <<= 1;
        if carry != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    product
}

/// The multiplicative inverse (a^254); `inverse(0)` is 0, which callers never divide by.
fn inverse(a: u8) -> u8 {
    let mut result = 1;
    let mut power = a;
    let mut exponent = 254u8;
    while exponent != 0 {
        if exponent & 1 != 0 {
            result = mul(result, power);
        }
        power = mul(power, power);
        exponent >>= 1;
    }
    result
}

/// Splits `secret` into `parts` shares of which any `threshold` recover it.
///
/// Callers guarantee `2 <= threshold <= parts <= 255`.
pub(crate) fn split(secret: &[u8], parts: usize, threshold: usize) -> Vec<Zeroizing<Vec<u8>>> {
    let mut shares: Vec<_> = (1..=parts)
        .map(|x| {
            let mut share = Zeroizing::new(vec![0u8; secret.len() + 1]);
            share[secret.len()] = x as u8;
            share
        })
        .collect();
    let mut coefficients = Zeroizing::new(vec![0u8; threshold]);
    for (index, byte) in secret.iter().enumerate() {
        coefficients[0] = *byte;
        for coefficient in coefficients.iter_mut().skip(1) {
            *coefficient = random::<1>()[0];
        }
        for share in &mut shares {
            let x = share[secret.len()];
            // Horner's rule, highest degree first.
            share[index] = coefficients.iter().rev().fold(0, |acc, c| mul(acc, x) ^ c);
        }
    }
    shares
}

/// Recovers the secret from at least the threshold number of shares.
///
/// Returns `None` for fewer than two shares, shares of different lengths, or a repeated x.
pub(crate) fn combine(shares: &[Zeroizing<Vec<u8>>]) -> Option<Zeroizing<Vec<u8>>> {
    let len = shares.first()?.len();
    if shares.len() < 2 || len < 2 || shares.iter().any(|share| share.len() != len) {
        return None;
    }
    let xs: Vec<u8> = shares.iter().map(|share| share[len - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if xs[..i].contains(x) {
            return None;
        }
    }
    let mut secret = Zeroizing::new(vec![0u8; len - 1]);
    for (i, share) in shares.iter().enumerate() {
        // The Lagrange basis polynomial of share i, evaluated at x = 0.
        let basis = xs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .fold(1, |acc, (_, xj)| mul(acc, mul(*xj, inverse(xj ^ xs[i]))));
        for (byte, y) in secret.iter_mut().zip(share.iter()) {
            *byte ^= mul(*y, basis);
        }
    }
    Some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_of_shares_recovers_the_secret() {
        let secret: [u8; 32] = random();
        let shares = split(&secret, 3, 2);
        assert!(shares.iter().all(|share| share.len() == 33));
        for pair in [[0, 1], [1, 2], [2, 0]] {
            let subset = [shares[pair[0]].clone(), shares[pair[1]].clone()];
            assert_eq!(combine(&subset).unwrap().as_slice(), secret);
        }
        assert_eq!(combine(&shares).unwrap().as_slice(), secret);
    }

    #[test]
    fn fewer_than_two_or_repeated_shares_are_refused() {
        let shares = split(b"secret", 2, 2);
        assert!(combine(&shares[..1]).is_none());
        assert!(combine(&[shares[0].clone(), shares[0].clone()]).is_none());
    }

    #[test]
    fn field_inverse_is_an_inverse() {
        assert!((1..=255u8).all(|a| mul(a, inverse(a)) == 1));
    }
}
