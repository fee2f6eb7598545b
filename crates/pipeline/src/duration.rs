//! Durations as pipeline files write them: `"5 minutes"`, `10ms`, `24 hours`, `1h30m`,
//! `90s`, a bare number of milliseconds.

/// Milliseconds in `text`, or what is wrong with it.
pub fn parse_ms(text: &str) -> Result<i64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(ms) = s.parse::<i64>() {
        return if ms >= 0 {
            Ok(ms)
        } else {
            Err(format!("negative duration {s:?}"))
        };
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad(s));
        }
        let amount: f64 = rest[..digits].parse().map_err(|_| bad(s))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let per = unit_ms(unit).ok_or_else(|| bad(s))?;
        total = total.saturating_add((amount * per as f64).round() as i64);
        rest = rest[unit_len..].trim_start_matches([',', ' ']);
        rest = rest.strip_prefix("and ").unwrap_or(rest);
    }
    Ok(total)
}

fn bad(s: &str) -> String {
    format!("cannot read duration {s:?}: write a number and a unit, e.g. \"5 minutes\", \"10ms\", \"24 hours\"")
}

fn unit_ms(unit: &str) -> Option<i64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "ms" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 604_800_000,
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_forms_and_more() {
        assert_eq!(parse_ms("5 minutes").unwrap(), 300_000);
        assert_eq!(parse_ms("10ms").unwrap(), 10);
        assert_eq!(parse_ms("24 hours").unwrap(), 86_400_000);
        assert_eq!(parse_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_ms("1 minute and 30 seconds").unwrap(), 90_000);
        assert_eq!(parse_ms("1.5s").unwrap(), 1_500);
        assert_eq!(parse_ms("250").unwrap(), 250);
        for bad in ["", "five minutes", "5 parsecs", "-3", "m"] {
            assert!(parse_ms(bad).is_err(), "{bad}");
        }
    }
}
