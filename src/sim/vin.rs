//! Vehicle identification numbers as ISO 3779 / FMVSS 115 write them: model-year letter and check digit.

/// Characters a VIN may contain (no I, O or Q).
pub const VIN_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";

pub use crate::smartcar::vin::check_digit;

/// Whether a VIN has 17 valid characters and a correct check digit.
pub fn is_valid(vin: &str) -> bool {
    check_digit(vin).is_some_and(|d| vin.as_bytes().get(8).map(|c| char::from(*c)) == Some(d))
}

/// The position-10 letter for a model year (30-year cycle starting 1980 = A, 2010 = A again).
pub fn model_year_code(year: u16) -> Option<char> {
    const CYCLE: &[u8; 30] = b"ABCDEFGHJKLMNPRSTVWXY123456789";
    let offset = usize::from(year.checked_sub(1980)?) % 30;
    CYCLE.get(offset).map(|c| char::from(*c))
}

/// Assembles a VIN from its manufacturer code, five descriptor characters, year, plant and serial,
/// and fills in the check digit. Inputs come from the simulator's own tables.
pub fn assemble(wmi: &str, descriptor: &str, year: u16, plant: char, serial: u32) -> String {
    let mut vin = String::with_capacity(17);
    vin.push_str(wmi);
    vin.push_str(descriptor);
    vin.push('0');
    vin.push(model_year_code(year).unwrap_or('S'));
    vin.push(plant);
    vin.push_str(&format!("{:06}", serial % 1_000_000));
    if let Some(d) = check_digit(&vin) {
        vin.replace_range(8..9, &d.to_string());
    }
    vin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_real_vin_has_a_valid_check_digit() {
        // Textbook examples: the NHTSA one and a repeated-digit VIN.
        assert!(is_valid("11111111111111111"));
        assert!(is_valid("1M8GDM9AXKP042788"));
        assert!(!is_valid("1M8GDM9A1KP042788"));
    }

    #[test]
    fn model_year_codes_skip_ambiguous_letters() {
        assert_eq!(model_year_code(2013), Some('D'));
        assert_eq!(model_year_code(2018), Some('J'));
        assert_eq!(model_year_code(2020), Some('L'));
        assert_eq!(model_year_code(2023), Some('P'));
        assert_eq!(model_year_code(2025), Some('S'));
    }

    #[test]
    fn assembled_vins_are_valid() {
        let vin = assemble("5YJ", "3E1EA", 2019, 'F', 123_456);
        assert_eq!(vin.len(), 17);
        assert!(is_valid(&vin), "{vin}");
        assert_eq!(vin.as_bytes()[9], b'K');
    }
}
