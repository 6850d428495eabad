//! Colombian identity numbers: a person's ID number and an organisation's NIT (DIAN's
//! modulo-11 check digit). The accounts' user form, the registry's owners (art. 2.2.11.8) and
//! its authorised sellers (art. 2.2.11.3) all name people and organisations by them, and must
//! agree on when two numbers are the same one.

/// Whether `s` is one or more ASCII digits.
pub fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// An ID number reduced to what identifies it: without dots, spaces and dashes, upper-case,
/// without leading zeros. Two accounts whose numbers normalise alike are one person.
pub fn normalise_id_number(value: &str) -> String {
    let compact: String = value
        .chars()
        .filter(|c| !matches!(c, '.' | ' ' | '-'))
        .flat_map(char::to_uppercase)
        .collect();
    let trimmed = compact.trim_start_matches('0');
    trimmed.to_string()
}

/// Checks a person's ID number (cédula, passport...): 5 to 15 digits or letters once
/// normalised, and not a placeholder ("no se deben crear cuentas con números parecidos o
/// usuarios ficticios").
///
/// # Errors
/// What is wrong, for the field's error.
pub fn check_id_number(value: &str) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        return Err("is required");
    }
    let normal = normalise_id_number(value);
    if !normal.chars().all(|c| c.is_ascii_alphanumeric()) {
        Err("may hold only digits and letters (dots, spaces, dashes ignored)")
    } else if !(5..=15).contains(&normal.len()) {
        Err("must have 5 to 15 digits or letters")
    } else if is_placeholder_number(&normal) {
        Err("looks like a placeholder, not a real identification number")
    } else {
        Ok(())
    }
}

/// One digit repeated (`11111111`) or a straight run (`123456789`, `987654321`).
fn is_placeholder_number(normal: &str) -> bool {
    let bytes = normal.as_bytes();
    if !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let steps: Vec<i16> = bytes
        .windows(2)
        .map(|w| i16::from(w[1]) - i16::from(w[0]))
        .collect();
    [0, 1, -1]
        .iter()
        .any(|step| steps.iter().all(|s| s == step))
}

/// Checks a NIT written `digits-check digit` (dots allowed): 5 to 15 digits and DIAN's
/// modulo-11 check digit.
pub fn check_nit(value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("is required".into());
    }
    let Some((number, given)) = value.rsplit_once('-') else {
        return Err(format!(
            "{value:?} lacks its check digit: write it as 900123456-7"
        ));
    };
    let number: String = number.chars().filter(|&c| c != '.').collect();
    if !all_digits(&number) || !(5..=15).contains(&number.len()) {
        return Err(format!("{value:?}: the number must be 5 to 15 digits"));
    }
    let expected = nit_check_digit(&number);
    match given.parse::<u8>() {
        Ok(digit) if given.len() == 1 && digit == expected => Ok(()),
        _ => Err(format!(
            "{value:?}: the check digit of {number} is {expected}"
        )),
    }
}

/// DIAN's NIT check digit: digits weighted from the right by 3, 7, 13, 17, 19, 23, 29, 37,
/// 41, 43, 47, 53, 59, 67, 71; the sum modulo 11 `r` gives `r` if below 2, else `11 - r`.
pub fn nit_check_digit(number: &str) -> u8 {
    const WEIGHTS: [u32; 15] = [3, 7, 13, 17, 19, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71];
    let sum: u32 = number
        .bytes()
        .rev()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let r = (sum % 11) as u8;
    if r < 2 { r } else { 11 - r }
}

/// The NIT's number without dots and check digit: what makes two organisations the same.
pub fn nit_number(nit: &str) -> String {
    let number = nit.trim().rsplit_once('-').map_or(nit, |(n, _)| n);
    number.chars().filter(|&c| c != '.').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nit_check_digits_follow_dian() {
        assert_eq!(nit_check_digit("800197268"), 4); // DIAN
        assert_eq!(nit_check_digit("899999053"), 1); // MinTIC
        assert!(check_nit("800.197.268-4").is_ok());
        let wrong = check_nit("800197268-5").unwrap_err();
        assert!(wrong.contains("check digit of 800197268 is 4"), "{wrong}");
        assert!(
            check_nit("800197268")
                .unwrap_err()
                .contains("lacks its check digit")
        );
        assert!(check_nit("80a197268-4").is_err());
        assert!(check_nit("").unwrap_err().contains("required"));
        assert_eq!(nit_number("800.197.268-4"), "800197268");
    }

    #[test]
    fn id_numbers_are_one_whatever_their_punctuation() {
        assert_eq!(normalise_id_number("0079.123.456"), "79123456");
        assert_eq!(normalise_id_number("ab-12 345"), "AB12345");
        assert!(check_id_number("79.123.456").is_ok());
        assert_eq!(check_id_number(" "), Err("is required"));
        assert!(check_id_number("1234").is_err());
        assert!(
            check_id_number("111111111")
                .unwrap_err()
                .contains("placeholder")
        );
        assert!(
            check_id_number("123456789")
                .unwrap_err()
                .contains("placeholder")
        );
        assert!(check_id_number("7912345#").is_err());
    }
}
