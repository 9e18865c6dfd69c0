//! Exact sums of doubles, the reference for the rollups' compensated sums:
//! every double is an integer times a power of two, so a sum of them is an
//! exact big integer times the smallest power, with no rounding at all.

use num_bigint::BigInt;

/// A double as `mantissa × 2^exponent`, exactly.
fn parts(x: f64) -> (BigInt, i32) {
    let bits = x.to_bits();
    let sign = if bits >> 63 == 0 { 1i64 } else { -1 };
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = (bits & ((1u64 << 52) - 1)) as i64;
    let (mantissa, exponent) = if exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1i64 << 52), exponent - 1075)
    };
    (BigInt::from(sign * mantissa), exponent)
}

/// Whether `got` is within what compensated (Neumaier) summation
/// guarantees of the exact sum of `values` (which must be finite): two
/// units in the last place of the exact sum, plus `n·ε²·Σ|x|` for the
/// terms that cancel (about 1e-13 for forty values of 1e15). Naive
/// summation of such values misses by whole units.
pub fn within_two_ulps_of_exact_sum(values: &[f64], got: f64) -> bool {
    assert!(
        got.is_finite(),
        "a sum of valid readings is finite, got {got}"
    );
    // One ulp of the larger of |got| and the exact sum's magnitude (the
    // latter found from the sum itself, computed first at the values'
    // scale).
    let first_lowest = values
        .iter()
        .chain([&got])
        .map(|v| parts(*v).1)
        .min()
        .unwrap_or(0);
    let scaled_sum = |lowest: i32| -> BigInt {
        values
            .iter()
            .map(|v| {
                let (m, e) = parts(*v);
                m << ((e - lowest) as usize)
            })
            .sum()
    };
    let magnitude = exact_magnitude_hint(&scaled_sum(first_lowest), first_lowest);
    let larger = got.abs().max(magnitude);
    let ulp = if larger == 0.0 {
        f64::from_bits(1)
    } else {
        f64::from_bits((larger.to_bits() & 0x7ff0_0000_0000_0000).max(1 << 52)) * f64::EPSILON
    };
    // What cancellation may cost on top (Neumaier's bound).
    let cancelled: f64 = values.iter().map(|v| v.abs()).sum::<f64>()
        * values.len() as f64
        * f64::EPSILON
        * f64::EPSILON;
    // Everything at the scale of the smallest exponent, the ulp's and the
    // slack's included.
    let terms: Vec<f64> = values
        .iter()
        .copied()
        .chain([got, ulp, cancelled])
        .collect();
    let lowest = terms.iter().map(|v| parts(*v).1).min().unwrap_or(0);
    let at_lowest = |v: f64| {
        let (m, e) = parts(v);
        m << ((e - lowest) as usize)
    };
    let exact = scaled_sum(lowest);
    let error = (at_lowest(got) - exact).magnitude().clone();
    let allowed = at_lowest(ulp).magnitude() * 2u32 + at_lowest(cancelled).magnitude();
    error <= allowed
}

/// About the magnitude of `n × 2^lowest` (for the tolerance only).
fn exact_magnitude_hint(n: &BigInt, lowest: i32) -> f64 {
    let bits = n.bits() as i32;
    if bits == 0 {
        return 0.0;
    }
    2f64.powi(bits - 1 + lowest)
}

#[cfg(test)]
mod tests {
    use super::within_two_ulps_of_exact_sum;

    #[test]
    fn naive_sums_of_cancelling_values_are_caught() {
        let values = [1e15, 0.1, -1e15, 0.2];
        let naive: f64 = values.iter().sum();
        assert!(!within_two_ulps_of_exact_sum(&values, naive), "{naive}");
        assert!(within_two_ulps_of_exact_sum(&values, 0.30000000000000004));
        assert!(within_two_ulps_of_exact_sum(&values, 0.3));
        assert!(within_two_ulps_of_exact_sum(&[], 0.0));
        assert!(!within_two_ulps_of_exact_sum(&[1.0, 2.0], 3.001));
    }
}
