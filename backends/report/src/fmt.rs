//! Text for the HTML: escaping and the fixed rules every number is printed
//! with (so that the same report gives the same bytes).

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `x` with `d` decimals; `-0.00` printed as `0.00`; non-finite as `n/a`.
pub fn fixed(x: f64, d: usize) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{x:.d$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// An integer with thousands separators: `8,887,132`.
pub fn int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// About four significant digits: at and above 1,000 a rounded integer
/// with separators, below it as many decimals as keep four digits (at most
/// 12). `0` is `0`.
pub fn sig(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if a >= 999.5 {
        let r = int(a.round() as u64);
        return if x < 0.0 { format!("-{r}") } else { r };
    }
    let d = (3 - a.log10().floor() as i64).clamp(0, 12) as usize;
    fixed(x, d)
}

/// [`sig`] without trailing zeros after the point: `815`, `0.5`, `27.14`.
pub fn short(x: f64) -> String {
    let s = sig(x);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A percentage of a fraction, one decimal: `0.944` → `94.4%`.
pub fn pct(x: f64) -> String {
    format!("{}%", fixed(x * 100.0, 1))
}

/// A signed percentage of a ratio minus one: `0.0058` → `+0.58%`.
pub fn signed_pct(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = fixed(x * 100.0, 2);
    if s.starts_with('-') {
        format!("{s}%")
    } else {
        format!("+{s}%")
    }
}

/// Energy in the largest of J, mJ, µJ, nJ, pJ that makes it at least 1.
pub fn joules(j: f64) -> String {
    let (v, u) = energy_unit(j);
    format!("{} {u}", sig(j * v))
}

/// The scale factor and unit name [`joules`] would use for `j`.
pub fn energy_unit(j: f64) -> (f64, &'static str) {
    let a = j.abs();
    for (v, u) in [(1.0, "J"), (1e3, "mJ"), (1e6, "µJ"), (1e9, "nJ")] {
        if a * v >= 1.0 {
            return (v, u);
        }
    }
    (1e12, "pJ")
}

/// US dollars: cents above 1, four significant digits below.
pub fn usd(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x.abs() >= 1.0 {
        let whole = x.abs().floor() as u64;
        let cents = ((x.abs() - whole as f64) * 100.0).round() as u64;
        let (whole, cents) = if cents == 100 {
            (whole + 1, 0)
        } else {
            (whole, cents)
        };
        let sign = if x < 0.0 { "-" } else { "" };
        format!("{sign}${}.{cents:02}", int(whole))
    } else {
        format!("${}", sig(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1000), "1,000");
        assert_eq!(int(8887132), "8,887,132");
        assert_eq!(sig(110071.55), "110,072");
        assert_eq!(sig(27.13654), "27.14");
        assert_eq!(sig(0.0046347), "0.004635");
        assert_eq!(sig(-0.0), "0");
        assert_eq!(fixed(-0.0001, 2), "0.00");
        assert_eq!(short(815.0), "815");
        assert_eq!(short(20.0), "20");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(31.8), "31.8");
        assert_eq!(short(1000.0), "1,000");
        assert_eq!(pct(0.944), "94.4%");
        assert_eq!(signed_pct(0.0058), "+0.58%");
        assert_eq!(signed_pct(-0.25), "-25.00%");
        assert_eq!(joules(4.63469e-6), "4.635 µJ");
        assert_eq!(joules(0.5), "500.0 mJ");
        assert_eq!(usd(1234.567), "$1,234.57");
        assert_eq!(usd(0.0003842), "$0.0003842");
        assert_eq!(usd(f64::INFINITY), "n/a");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
