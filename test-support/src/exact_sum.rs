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

/// Whether `got` is within two units in the last place of the exact sum of
/// `values` (which must be finite): what compensated summation guarantees,
/// and what naive summation of values that cancel misses by whole units.
pub fn within_two_ulps_of_exact_sum(values: &[f64], got: f64) -> bool {
    assert!(
        got.is_finite(),
        "a sum of valid readings is finite, got {got}"
    );
    let terms: Vec<(BigInt, i32)> = values.iter().copied().chain([got]).map(parts).collect();
    let lowest = terms.iter().map(|(_, e)| *e).min().unwrap_or(0);
    let scaled = |(m, e): &(BigInt, i32)| m << ((e - lowest) as usize);
    let exact: BigInt = terms[..values.len()].iter().map(scaled).sum();
    let got_scaled = scaled(&terms[values.len()]);
    let error = (got_scaled - &exact).magnitude().clone();
    // One ulp of the larger of |got| and |exact|, in units of 2^lowest.
    let larger = got.abs().max(exact_magnitude_hint(&exact, lowest));
    let ulp = if larger == 0.0 {
        f64::from_bits(1)
    } else {
        larger * f64::EPSILON
    };
    let (ulp_m, ulp_e) = parts(ulp);
    let allowed = (ulp_m.magnitude() << ((ulp_e - lowest).max(0) as usize)) * 2u32;
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
