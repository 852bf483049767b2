//! The makes and models the simulated fleet is drawn from, in shares like a real connected-car app's.

use serde::{Deserialize, Serialize};

/// What moves the car; decides which data endpoints it can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Powertrain {
    /// Battery electric: battery and charge, no fuel or engine oil.
    Electric,
    /// Plug-in hybrid: everything.
    PlugInHybrid,
    /// Combustion engine: fuel and engine oil, no battery or charge.
    Combustion,
}

impl Powertrain {
    pub fn has_battery(self) -> bool {
        !matches!(self, Powertrain::Combustion)
    }

    pub fn has_engine(self) -> bool {
        !matches!(self, Powertrain::Electric)
    }
}

/// A manufacturer code valid for a range of model years, and the plant letter that goes with it.
#[derive(Debug, Clone, Copy)]
pub struct Wmi {
    pub code: &'static str,
    pub from: u16,
    pub to: u16,
    pub plant: char,
}

const fn wmi(code: &'static str, from: u16, to: u16, plant: char) -> Wmi {
    Wmi {
        code,
        from,
        to,
        plant,
    }
}

/// One model as sold, with its weight in the fleet (relative share).
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Upper case, as Smartcar spells it.
    pub make: &'static str,
    pub model: &'static str,
    pub weight: u32,
    pub first_year: u16,
    pub last_year: u16,
    pub powertrain: Powertrain,
    pub wmis: &'static [Wmi],
    /// VIN positions 4–8; `?` is filled with a random VIN character.
    pub descriptor: &'static str,
    /// Full-battery range for electric drive, km.
    pub battery_range_km: f64,
    /// Fuel tank, litres.
    pub tank_l: f64,
}

impl ModelSpec {
    pub fn is_tesla(&self) -> bool {
        self.make == TESLA
    }
}

pub const TESLA: &str = "TESLA";

/// Model S and X of this model year and earlier need no virtual key for data.
pub const VIRTUAL_KEY_EXEMPT_LAST_YEAR: u16 = 2020;

/// Whether Tesla's virtual-key rule exempts this vehicle.
pub fn is_virtual_key_exempt(make: &str, model: &str, year: u16) -> bool {
    make == TESLA && matches!(model, "Model S" | "Model X") && year <= VIRTUAL_KEY_EXEMPT_LAST_YEAR
}

use Powertrain::{Combustion as Ice, Electric as Ev, PlugInHybrid as Phev};

// One positional row per model keeps the table below readable at a glance.
#[allow(clippy::too_many_arguments)]
const fn spec(
    make: &'static str,
    model: &'static str,
    weight: u32,
    years: (u16, u16),
    powertrain: Powertrain,
    wmis: &'static [Wmi],
    descriptor: &'static str,
    battery_range_km: f64,
    tank_l: f64,
) -> ModelSpec {
    ModelSpec {
        make,
        model,
        weight,
        first_year: years.0,
        last_year: years.1,
        powertrain,
        wmis,
        descriptor,
        battery_range_km,
        tank_l,
    }
}

/// The catalog. Weights add up to roughly 1,000; Tesla carries about a third, as in most
/// Smartcar-connected fleets.
pub const MODELS: &[ModelSpec] = &[
    spec(
        TESLA,
        "Model 3",
        100,
        (2017, 2025),
        Ev,
        &[wmi("5YJ", 2017, 2025, 'F'), wmi("LRW", 2021, 2025, 'C')],
        "3E1E?",
        500.0,
        0.0,
    ),
    spec(
        TESLA,
        "Model Y",
        130,
        (2020, 2025),
        Ev,
        &[
            wmi("5YJ", 2020, 2021, 'F'),
            wmi("7SA", 2021, 2025, 'A'),
            wmi("LRW", 2021, 2025, 'C'),
            wmi("XP7", 2022, 2025, 'B'),
        ],
        "YGDE?",
        480.0,
        0.0,
    ),
    spec(
        TESLA,
        "Model S",
        50,
        (2013, 2025),
        Ev,
        &[wmi("5YJ", 2013, 2025, 'F')],
        "SA1E?",
        560.0,
        0.0,
    ),
    spec(
        TESLA,
        "Model X",
        40,
        (2016, 2025),
        Ev,
        &[wmi("5YJ", 2016, 2020, 'F'), wmi("7SA", 2021, 2025, 'F')],
        "XCBE?",
        500.0,
        0.0,
    ),
    spec(
        TESLA,
        "Cybertruck",
        20,
        (2024, 2025),
        Ev,
        &[wmi("7G2", 2024, 2025, 'A')],
        "CEDE?",
        510.0,
        0.0,
    ),
    spec(
        "FORD",
        "Mustang Mach-E",
        30,
        (2021, 2025),
        Ev,
        &[wmi("3FM", 2021, 2025, 'M')],
        "TK3SU",
        420.0,
        0.0,
    ),
    spec(
        "FORD",
        "F-150 Lightning",
        25,
        (2022, 2025),
        Ev,
        &[wmi("1FT", 2022, 2025, 'D')],
        "VW1EL",
        440.0,
        0.0,
    ),
    spec(
        "FORD",
        "F-150",
        25,
        (2015, 2025),
        Ice,
        &[wmi("1FT", 2015, 2025, 'K')],
        "EW1E?",
        0.0,
        98.0,
    ),
    spec(
        "FORD",
        "Escape",
        20,
        (2020, 2025),
        Phev,
        &[wmi("1FM", 2020, 2025, 'L')],
        "CU0EZ",
        60.0,
        42.0,
    ),
    spec(
        "BMW",
        "i4",
        20,
        (2022, 2025),
        Ev,
        &[wmi("WBY", 2022, 2025, 'N')],
        "73AW0",
        480.0,
        0.0,
    ),
    spec(
        "BMW",
        "iX",
        15,
        (2022, 2025),
        Ev,
        &[wmi("WB5", 2022, 2025, 'N')],
        "23CF0",
        520.0,
        0.0,
    ),
    spec(
        "BMW",
        "X5",
        20,
        (2019, 2025),
        Phev,
        &[wmi("5UX", 2019, 2025, 'L')],
        "TA6C0",
        50.0,
        69.0,
    ),
    spec(
        "BMW",
        "3 Series",
        20,
        (2015, 2025),
        Ice,
        &[wmi("WBA", 2015, 2025, 'A')],
        "5R1C5",
        0.0,
        59.0,
    ),
    spec(
        "HYUNDAI",
        "Ioniq 5",
        35,
        (2022, 2025),
        Ev,
        &[wmi("KM8", 2022, 2025, 'U')],
        "KN4AE",
        410.0,
        0.0,
    ),
    spec(
        "HYUNDAI",
        "Kona Electric",
        15,
        (2019, 2025),
        Ev,
        &[wmi("KM8", 2019, 2025, 'U')],
        "K33AG",
        400.0,
        0.0,
    ),
    spec(
        "HYUNDAI",
        "Tucson",
        20,
        (2016, 2025),
        Ice,
        &[wmi("5NM", 2016, 2025, 'H')],
        "J3AE?",
        0.0,
        54.0,
    ),
    spec(
        "KIA",
        "EV6",
        30,
        (2022, 2025),
        Ev,
        &[wmi("KND", 2022, 2025, '5')],
        "C3DLC",
        430.0,
        0.0,
    ),
    spec(
        "KIA",
        "Niro EV",
        15,
        (2019, 2025),
        Ev,
        &[wmi("KND", 2019, 2025, '5')],
        "CC3LG",
        390.0,
        0.0,
    ),
    spec(
        "KIA",
        "Sorento",
        15,
        (2022, 2025),
        Phev,
        &[wmi("5XY", 2022, 2025, 'G')],
        "RHDLF",
        50.0,
        47.0,
    ),
    spec(
        "VOLKSWAGEN",
        "ID.4",
        40,
        (2021, 2025),
        Ev,
        &[wmi("1V2", 2021, 2025, 'C'), wmi("WVG", 2021, 2025, 'Z')],
        "VPE8?",
        410.0,
        0.0,
    ),
    spec(
        "VOLKSWAGEN",
        "Golf",
        15,
        (2015, 2021),
        Ice,
        &[wmi("3VW", 2015, 2021, 'M')],
        "G17AU",
        0.0,
        50.0,
    ),
    spec(
        "VOLKSWAGEN",
        "Atlas",
        15,
        (2018, 2025),
        Ice,
        &[wmi("1V2", 2018, 2025, 'C')],
        "DR2CA",
        0.0,
        70.0,
    ),
    spec(
        "RIVIAN",
        "R1T",
        25,
        (2022, 2025),
        Ev,
        &[wmi("7FC", 2022, 2025, 'N')],
        "TGAA?",
        500.0,
        0.0,
    ),
    spec(
        "RIVIAN",
        "R1S",
        20,
        (2022, 2025),
        Ev,
        &[wmi("7PD", 2022, 2025, 'N')],
        "SGAA?",
        510.0,
        0.0,
    ),
    spec(
        "TOYOTA",
        "RAV4 Prime",
        25,
        (2021, 2025),
        Phev,
        &[wmi("JTM", 2021, 2025, 'W')],
        "EB3FV",
        68.0,
        55.0,
    ),
    spec(
        "TOYOTA",
        "bZ4X",
        15,
        (2023, 2025),
        Ev,
        &[wmi("JTM", 2023, 2025, 'W')],
        "AAAA?",
        400.0,
        0.0,
    ),
    spec(
        "TOYOTA",
        "Camry",
        25,
        (2015, 2025),
        Ice,
        &[wmi("4T1", 2015, 2025, 'U')],
        "B11HK",
        0.0,
        60.0,
    ),
    spec(
        "CHEVROLET",
        "Bolt EV",
        30,
        (2017, 2023),
        Ev,
        &[wmi("1G1", 2017, 2023, '4')],
        "FY6S0",
        400.0,
        0.0,
    ),
    spec(
        "CHEVROLET",
        "Equinox EV",
        15,
        (2024, 2025),
        Ev,
        &[wmi("3GN", 2024, 2025, 'M')],
        "7DNRP",
        460.0,
        0.0,
    ),
    spec(
        "CHEVROLET",
        "Silverado",
        20,
        (2015, 2025),
        Ice,
        &[wmi("1GC", 2015, 2025, 'G')],
        "UYDED",
        0.0,
        91.0,
    ),
    spec(
        "MERCEDES-BENZ",
        "EQS",
        10,
        (2022, 2025),
        Ev,
        &[wmi("W1K", 2022, 2025, 'A')],
        "GG8CB",
        560.0,
        0.0,
    ),
    spec(
        "MERCEDES-BENZ",
        "GLC",
        15,
        (2016, 2025),
        Ice,
        &[wmi("W1N", 2016, 2025, 'F')],
        "0G8HB",
        0.0,
        66.0,
    ),
    spec(
        "NISSAN",
        "Leaf",
        30,
        (2013, 2025),
        Ev,
        &[wmi("1N4", 2013, 2025, 'C')],
        "AZ1CP",
        240.0,
        0.0,
    ),
    spec(
        "NISSAN",
        "Ariya",
        15,
        (2023, 2025),
        Ev,
        &[wmi("JN1", 2023, 2025, 'M')],
        "DF0FS",
        430.0,
        0.0,
    ),
];

/// Cities the simulated cars are parked around (latitude, longitude).
pub const CITIES: &[(f64, f64)] = &[
    (37.7749, -122.4194),
    (34.0522, -118.2437),
    (47.6062, -122.3321),
    (30.2672, -97.7431),
    (40.7128, -74.0060),
    (41.8781, -87.6298),
    (42.3601, -71.0589),
    (25.7617, -80.1918),
    (39.7392, -104.9903),
    (43.6532, -79.3832),
    (49.2827, -123.1207),
    (51.5074, -0.1278),
    (52.5200, 13.4050),
    (48.8566, 2.3522),
    (59.3293, 18.0686),
    (52.3676, 4.9041),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_has_a_manufacturer_code_for_each_of_its_years() {
        for m in MODELS {
            assert!(m.first_year <= m.last_year, "{}", m.model);
            for year in m.first_year..=m.last_year {
                assert!(
                    m.wmis.iter().any(|w| w.from <= year && year <= w.to),
                    "{} {} has no WMI for {year}",
                    m.make,
                    m.model
                );
            }
            assert_eq!(m.descriptor.len(), 5, "{}", m.model);
            assert!(m.wmis.iter().all(|w| w.code.len() == 3));
        }
    }

    #[test]
    fn tesla_is_about_a_third_of_the_catalog() {
        let total: u32 = MODELS.iter().map(|m| m.weight).sum();
        let tesla: u32 = MODELS
            .iter()
            .filter(|m| m.is_tesla())
            .map(|m| m.weight)
            .sum();
        let share = f64::from(tesla) / f64::from(total);
        assert!((0.25..0.45).contains(&share), "{share}");
    }
}
