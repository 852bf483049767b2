//! What a VIN tells by itself: its maker, from the world manufacturer identifier (the first three
//! characters), and its model year, from position 10. Pure: no I/O, no clock (the caller says
//! which year it is).

/// The years position 10 encodes, from 1980; the cycle repeats every 30 years.
const YEAR_CYCLE: &[u8; 30] = b"ABCDEFGHJKLMNPRSTVWXY123456789";

/// Makers by world manufacturer identifier: the makes Smartcar connects, with the codes their
/// vehicles carry. A code some makers share names them all, so a listed make never contradicts
/// a code it may carry. Makes are written as Smartcar lists them (upper case); see [`same_make`].
const WMIS: &[(&str, &[&str])] = &[
    // Tesla (Fremont, Shanghai, Berlin, Austin, Roadster).
    ("5YJ", &["TESLA"]),
    ("7SA", &["TESLA"]),
    ("7G2", &["TESLA"]),
    ("LRW", &["TESLA"]),
    ("XP7", &["TESLA"]),
    ("SFZ", &["TESLA"]),
    // Ford and Lincoln.
    ("1FA", &["FORD"]),
    ("1FB", &["FORD"]),
    ("1FC", &["FORD"]),
    ("1FD", &["FORD"]),
    ("1FM", &["FORD"]),
    ("1FT", &["FORD"]),
    ("2FA", &["FORD"]),
    ("2FM", &["FORD"]),
    ("2FT", &["FORD"]),
    ("3FA", &["FORD"]),
    ("3FM", &["FORD"]),
    ("3FT", &["FORD"]),
    ("WF0", &["FORD"]),
    ("NM0", &["FORD"]),
    ("1LN", &["LINCOLN"]),
    ("2LM", &["LINCOLN"]),
    ("5LM", &["LINCOLN"]),
    // BMW and MINI.
    ("WBA", &["BMW"]),
    ("WBS", &["BMW"]),
    ("WBX", &["BMW"]),
    ("WBY", &["BMW"]),
    ("WB5", &["BMW"]),
    ("5UX", &["BMW"]),
    ("5UJ", &["BMW"]),
    ("5YM", &["BMW"]),
    ("WMW", &["MINI"]),
    // Hyundai, Kia, Genesis (5XY is built for both Hyundai and Kia in Georgia).
    ("KMH", &["HYUNDAI"]),
    ("KM8", &["HYUNDAI"]),
    ("5NP", &["HYUNDAI"]),
    ("5NM", &["HYUNDAI"]),
    ("5XY", &["KIA", "HYUNDAI"]),
    ("KNA", &["KIA"]),
    ("KND", &["KIA"]),
    ("3KP", &["KIA"]),
    ("KMT", &["GENESIS"]),
    // Volkswagen group.
    ("WVW", &["VOLKSWAGEN"]),
    ("WVG", &["VOLKSWAGEN"]),
    ("WV1", &["VOLKSWAGEN"]),
    ("WV2", &["VOLKSWAGEN"]),
    ("1VW", &["VOLKSWAGEN"]),
    ("1V2", &["VOLKSWAGEN"]),
    ("3VW", &["VOLKSWAGEN"]),
    ("WAU", &["AUDI"]),
    ("WA1", &["AUDI"]),
    ("WUA", &["AUDI"]),
    ("WP0", &["PORSCHE"]),
    ("WP1", &["PORSCHE"]),
    // Rivian, Lucid.
    ("7FC", &["RIVIAN"]),
    ("7PD", &["RIVIAN"]),
    ("50E", &["LUCID"]),
    // Toyota and Lexus.
    ("JTD", &["TOYOTA"]),
    ("JTE", &["TOYOTA"]),
    ("JTM", &["TOYOTA"]),
    ("JTN", &["TOYOTA"]),
    ("JT2", &["TOYOTA"]),
    ("4T1", &["TOYOTA"]),
    ("4T3", &["TOYOTA"]),
    ("5TD", &["TOYOTA"]),
    ("5TF", &["TOYOTA"]),
    ("2T1", &["TOYOTA"]),
    ("2T3", &["TOYOTA"]),
    ("JTH", &["LEXUS"]),
    ("JTJ", &["LEXUS"]),
    ("2T2", &["LEXUS"]),
    // General Motors.
    ("1G1", &["CHEVROLET"]),
    ("1GC", &["CHEVROLET"]),
    ("1GN", &["CHEVROLET"]),
    ("2G1", &["CHEVROLET"]),
    ("3G1", &["CHEVROLET"]),
    ("3GN", &["CHEVROLET"]),
    ("3GC", &["CHEVROLET"]),
    ("KL7", &["CHEVROLET"]),
    ("1GT", &["GMC"]),
    ("3GT", &["GMC"]),
    ("1GK", &["GMC"]),
    ("1G6", &["CADILLAC"]),
    ("1GY", &["CADILLAC"]),
    ("1G4", &["BUICK"]),
    ("5GA", &["BUICK"]),
    ("KL4", &["BUICK"]),
    // Mercedes-Benz.
    ("WDD", &["MERCEDES-BENZ"]),
    ("WDC", &["MERCEDES-BENZ"]),
    ("WDB", &["MERCEDES-BENZ"]),
    ("W1K", &["MERCEDES-BENZ"]),
    ("W1N", &["MERCEDES-BENZ"]),
    ("W1V", &["MERCEDES-BENZ"]),
    ("4JG", &["MERCEDES-BENZ"]),
    ("55S", &["MERCEDES-BENZ"]),
    // Nissan and Infiniti.
    ("1N4", &["NISSAN"]),
    ("1N6", &["NISSAN"]),
    ("3N1", &["NISSAN"]),
    ("5N1", &["NISSAN"]),
    ("JN1", &["NISSAN"]),
    ("JN8", &["NISSAN"]),
    ("JNK", &["INFINITI"]),
    ("5N3", &["INFINITI"]),
    // Honda and Acura.
    ("1HG", &["HONDA"]),
    ("2HG", &["HONDA"]),
    ("5FN", &["HONDA"]),
    ("5J6", &["HONDA"]),
    ("7FA", &["HONDA"]),
    ("JHM", &["HONDA"]),
    ("19U", &["ACURA"]),
    ("JH4", &["ACURA"]),
    ("5J8", &["ACURA"]),
    // Subaru, Mazda.
    ("JF1", &["SUBARU"]),
    ("JF2", &["SUBARU"]),
    ("4S3", &["SUBARU"]),
    ("4S4", &["SUBARU"]),
    ("JM1", &["MAZDA"]),
    ("JM3", &["MAZDA"]),
    ("3MZ", &["MAZDA"]),
    // Volvo, Polestar, Jaguar Land Rover.
    ("YV1", &["VOLVO"]),
    ("YV4", &["VOLVO"]),
    ("7JR", &["VOLVO"]),
    ("LPS", &["POLESTAR"]),
    ("YSM", &["POLESTAR"]),
    ("SAJ", &["JAGUAR"]),
    ("SAL", &["LAND ROVER"]),
    // Stellantis: one code covers several of its brands.
    ("1C4", &["JEEP", "DODGE", "CHRYSLER", "RAM"]),
    ("1C3", &["CHRYSLER", "DODGE"]),
    ("2C3", &["CHRYSLER", "DODGE"]),
    ("2C4", &["CHRYSLER", "DODGE"]),
    ("1C6", &["RAM"]),
    ("3C6", &["RAM"]),
    ("1J4", &["JEEP"]),
    ("1J8", &["JEEP"]),
    ("ZFA", &["FIAT"]),
    ("3C3", &["FIAT"]),
    ("ZAR", &["ALFA ROMEO"]),
    ("ZAS", &["ALFA ROMEO"]),
    ("ZAM", &["MASERATI"]),
];

/// What a well-formed VIN says about its vehicle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedVin {
    /// The VIN in upper case.
    pub vin: String,
    /// The makers its manufacturer code stands for; empty when the code is not in the table.
    pub makes: &'static [&'static str],
    /// The model years position 10 may mean, latest first (the code repeats every 30 years);
    /// empty when position 10 holds no year code.
    pub model_years: Vec<u16>,
}

/// Why a text is not a VIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VinError {
    #[error("a VIN has 17 characters, this has {0}")]
    Length(usize),
    #[error(
        "character {position} of a VIN cannot be {character:?} (letters and digits, never I, O or Q)"
    )]
    Character { position: usize, character: char },
}

impl DecodedVin {
    /// The first make of the manufacturer code, for a person.
    pub fn make(&self) -> Option<&'static str> {
        self.makes.first().copied()
    }

    /// Whether a listed make is one the manufacturer code stands for. `None` when the code is
    /// unknown: nothing can be said.
    pub fn fits_make(&self, listed: &str) -> Option<bool> {
        if self.makes.is_empty() {
            return None;
        }
        Some(self.makes.iter().any(|m| same_make(m, listed)))
    }

    /// Whether a listed model year is one position 10 may mean. `None` when it holds no year.
    pub fn fits_year(&self, year: u16) -> Option<bool> {
        if self.model_years.is_empty() {
            return None;
        }
        Some(self.model_years.contains(&year))
    }
}

/// Said with a check digit that does not fit: the rule is North America's, and some makers
/// elsewhere never followed it.
pub const CHECK_DIGIT_NOT_EVERYWHERE: &str =
    "some VINs made outside North America do not use the check digit";

/// Weight of each position in the check-digit sum.
const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];

/// The numeric value a VIN character stands for in the check-digit sum; `None` for a character
/// a VIN cannot contain.
fn transliterate(c: u8) -> Option<u32> {
    let v = match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A' | b'J' => 1,
        b'B' | b'K' | b'S' => 2,
        b'C' | b'L' | b'T' => 3,
        b'D' | b'M' | b'U' => 4,
        b'E' | b'N' | b'V' => 5,
        b'F' | b'W' => 6,
        b'G' | b'P' | b'X' => 7,
        b'H' | b'Y' => 8,
        b'R' | b'Z' => 9,
        _ => return None,
    };
    Some(v)
}

/// The check digit (position 9) a VIN must carry, computed from all 17 characters (position 9
/// itself weighs nothing). `None` when the input is not 17 valid VIN characters.
pub fn check_digit(vin: &str) -> Option<char> {
    let bytes = vin.as_bytes();
    if bytes.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in bytes.iter().zip(WEIGHTS) {
        sum += transliterate(c.to_ascii_uppercase())? * w;
    }
    Some(match sum % 11 {
        10 => 'X',
        n => char::from(b'0' + n as u8),
    })
}

/// How many characters two VINs differ in (case ignored); `None` when their lengths differ.
pub fn distance(a: &str, b: &str) -> Option<usize> {
    (a.len() == b.len()).then(|| {
        a.bytes()
            .zip(b.bytes())
            .filter(|(x, y)| !x.eq_ignore_ascii_case(y))
            .count()
    })
}

impl DecodedVin {
    /// The check digit the other 16 characters call for, when position 9 holds another: a
    /// typo is likely, though [`CHECK_DIGIT_NOT_EVERYWHERE`].
    pub fn check_digit_misfit(&self) -> Option<char> {
        let want = check_digit(&self.vin)?;
        (self.vin.as_bytes().get(8).copied() != Some(want as u8)).then_some(want)
    }

    /// The model positions 4–8 name, where the manufacturer code's maker writes it readably:
    /// Tesla puts the model's letter at position 4 (`5YJ3…` is a Model 3).
    pub fn model(&self) -> Option<&'static str> {
        if self.make() != Some("TESLA") {
            return None;
        }
        match self.vin.as_bytes().get(3)? {
            b'3' => Some("Model 3"),
            b'Y' => Some("Model Y"),
            b'S' => Some("Model S"),
            b'X' => Some("Model X"),
            b'C' => Some("Cybertruck"),
            _ => None,
        }
    }

    /// Whether a listed model is the one the VIN names; `None` when either says nothing.
    pub fn fits_model(&self, listed: &str) -> Option<bool> {
        let named = self.model()?;
        let key = |s: &str| -> String {
            s.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_uppercase())
                .collect()
        };
        let listed = key(listed);
        if listed.is_empty() {
            return None;
        }
        Some(listed == key(named))
    }

    /// One line saying the check digit does not fit, and that nothing was sent.
    pub fn check_digit_line(&self) -> Option<String> {
        let want = self.check_digit_misfit()?;
        let has = self.vin.get(8..9).unwrap_or_default();
        Some(format!(
            "VIN {}: its check digit (position 9) is {has}, the other characters call for {want}: a typo? Nothing was sent ({CHECK_DIGIT_NOT_EVERYWHERE})",
            self.vin
        ))
    }
}

/// Makes compared as a person would: case, spaces and dashes ignored (`Mercedes-Benz`,
/// `MERCEDES BENZ`), and the short names some listings use.
pub fn same_make(a: &str, b: &str) -> bool {
    let key = |s: &str| -> String {
        let k: String = s
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match k.as_str() {
            "VW" => "VOLKSWAGEN".into(),
            "MERCEDES" | "MB" => "MERCEDESBENZ".into(),
            "CHEVY" => "CHEVROLET".into(),
            _ => k,
        }
    };
    let (a, b) = (key(a), key(b));
    !a.is_empty() && a == b
}

/// [`decode`] with the model years bounded by the calendar year (UTC) at `now`.
pub fn decode_at(text: &str, now: jiff::Timestamp) -> Result<DecodedVin, VinError> {
    decode(text, now.to_zoned(jiff::tz::TimeZone::UTC).year())
}

/// Reads a VIN (surrounding spaces ignored, any case). `this_year` bounds the model years: a
/// vehicle is at most a model year ahead of the calendar.
pub fn decode(text: &str, this_year: i16) -> Result<DecodedVin, VinError> {
    let text = text.trim();
    let count = text.chars().count();
    if count != 17 {
        return Err(VinError::Length(count));
    }
    for (i, c) in text.chars().enumerate() {
        let upper = c.to_ascii_uppercase();
        if !upper.is_ascii_alphanumeric() || matches!(upper, 'I' | 'O' | 'Q') {
            return Err(VinError::Character {
                position: i + 1,
                character: c,
            });
        }
    }
    let vin = text.to_ascii_uppercase();
    let wmi = vin.get(..3).unwrap_or_default();
    let makes = WMIS
        .iter()
        .find(|(code, _)| *code == wmi)
        .map_or(&[][..], |(_, makes)| *makes);
    let model_years = vin
        .as_bytes()
        .get(9)
        .and_then(|c| YEAR_CYCLE.iter().position(|y| y == c))
        .map(|offset| years_of(offset, this_year))
        .unwrap_or_default();
    Ok(DecodedVin {
        vin,
        makes,
        model_years,
    })
}

/// Every year from 1980 with this cycle offset, up to next year, latest first.
fn years_of(offset: usize, this_year: i16) -> Vec<u16> {
    let last = i32::from(this_year) + 1;
    let mut years: Vec<u16> = (0..)
        .map(|cycle| 1980 + offset as i32 + 30 * cycle)
        .take_while(|&y| y <= last)
        .filter_map(|y| u16::try_from(y).ok())
        .collect();
    years.reverse();
    years
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vin_with_one_character_changed_has_a_check_digit_that_does_not_fit() {
        let good = decode("5YJ3E1EA2KF317000", 2025).expect("a VIN");
        assert_eq!(good.check_digit_misfit(), None);
        let typo = decode("5YJ3E1EA2KF317001", 2025).expect("a VIN");
        assert!(typo.check_digit_misfit().is_some());
        let line = typo.check_digit_line().expect("said");
        assert!(
            line.contains("position 9") && line.contains("outside North America"),
            "{line}"
        );
        assert_eq!(distance(&good.vin, &typo.vin), Some(1));
    }

    #[test]
    fn a_tesla_model_3_vin_names_tesla_and_its_two_possible_years() {
        let d = decode("5yj3e1ea7kf317000", 2025).expect("a VIN");
        assert_eq!(d.vin, "5YJ3E1EA7KF317000");
        assert_eq!(d.make(), Some("TESLA"));
        // K is 1989 and 2019.
        assert_eq!(d.model_years, vec![2019, 1989]);
        assert_eq!(d.fits_make("Tesla"), Some(true));
        assert_eq!(d.fits_make("FORD"), Some(false));
        assert_eq!(d.fits_year(2019), Some(true));
        assert_eq!(d.fits_year(2020), Some(false));
    }

    #[test]
    fn next_model_year_is_a_candidate_and_the_one_after_is_not() {
        // T is 1996 and 2026: in 2025 a 2026 model is on sale.
        assert_eq!(
            decode("1FTFW1E50TFA00001", 2025).map(|d| d.model_years),
            Ok(vec![2026, 1996])
        );
        assert_eq!(
            decode("1FTFW1E50TFA00001", 2024).map(|d| d.model_years),
            Ok(vec![1996])
        );
    }

    #[test]
    fn an_unknown_manufacturer_code_says_nothing_about_the_make() {
        let d = decode("ZZZ3E1EA7KF317000", 2025).expect("a VIN");
        assert!(d.makes.is_empty());
        assert_eq!(d.fits_make("TESLA"), None);
    }

    #[test]
    fn position_ten_without_a_year_code_says_nothing_about_the_year() {
        let d = decode("5YJ3E1EA7ZF317000", 2025).expect("a VIN");
        assert!(d.model_years.is_empty());
        assert_eq!(d.fits_year(2019), None);
    }

    #[test]
    fn shared_codes_fit_every_maker_that_uses_them() {
        let d = decode("5XYP3DHC9NG000001", 2025).expect("a VIN");
        assert_eq!(d.fits_make("KIA"), Some(true));
        assert_eq!(d.fits_make("Hyundai"), Some(true));
        let d = decode("W1K6G7GB1NA000001", 2025).expect("a VIN");
        assert_eq!(d.fits_make("Mercedes-Benz"), Some(true));
        assert_eq!(d.fits_make("MERCEDES BENZ"), Some(true));
    }

    #[test]
    fn malformed_vins_say_what_is_wrong() {
        assert_eq!(decode("5YJ3", 2025), Err(VinError::Length(4)));
        assert_eq!(
            decode("5YJ3E1EA7KF31700O", 2025),
            Err(VinError::Character {
                position: 17,
                character: 'O'
            })
        );
        assert!(matches!(
            decode("5YJ3E1EA7KF31700é", 2025),
            Err(VinError::Character { position: 17, .. })
        ));
    }

    #[test]
    fn every_code_the_simulator_builds_with_is_known() {
        for spec in crate::sim::catalog::MODELS {
            for wmi in spec.wmis {
                let vin = format!("{}00000000000000", wmi.code);
                let d = decode(&vin, 2025).expect("a VIN");
                assert_eq!(
                    d.fits_make(spec.make),
                    Some(true),
                    "{} {}",
                    wmi.code,
                    spec.make
                );
            }
        }
    }
}
