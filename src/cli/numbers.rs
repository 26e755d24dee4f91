//! Numbers as people read them: `10,029,503,000` where every digit matters (an account, a
//! count to compare), `10.0 B` where a glance is enough (a dashboard's axis, a rate).

/// An integer with thousands separated by commas: `10029503000` is `10,029,503,000`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A number in three significant figures with a suffix: `950`, `12.3 K`, `10.0 B`; below a
/// thousand, as given to one decimal place when it has a fraction (`2.5`).
pub fn short(x: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")];
    let magnitude = x.abs();
    for (scale, unit) in UNITS {
        if magnitude >= scale * 0.9995 {
            let value = x / scale;
            return if value.abs() >= 99.95 {
                format!("{value:.0} {unit}")
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(10_029_503_000), "10,029,503,000");
        assert_eq!(grouped(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn short_forms_keep_three_figures_and_a_suffix() {
        assert_eq!(short(950.0), "950");
        assert_eq!(short(2.5), "2.5");
        assert_eq!(short(12_345.0), "12.3 K");
        assert_eq!(short(999_999.0), "1.0 M");
        assert_eq!(short(10_029_503_000.0), "10.0 B");
        assert_eq!(short(250_000_000.0), "250 M");
        assert_eq!(short(-1_500.0), "-1.5 K");
    }
}
