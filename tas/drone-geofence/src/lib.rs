//! Drone geofence TA: is a coordinate inside one of the no-fly zones listed in the TA's
//! personalization data?
//!
//! Personalization data (JSON):
//!
//! ```json
//! {"version": 1, "zones": [
//!   {"name": "airport", "circle": {"lat": 48.3538, "lon": 11.7861, "radius_m": 5000}},
//!   {"name": "stadium", "polygon": [[48.2200, 11.6200], [48.2200, 11.6300], [48.2260, 11.6300]]}
//! ]}
//! ```
//!
//! | cmd | input | output |
//! |---|---|---|
//! | 1 check | lat (f64 LE) \|\| lon (f64 LE) | `[0]` allowed, or `[1, zone index (u32 BE)]` refused (inside a zone) |
//! | 2 info | - | data set version (u32 BE) \|\| zone count (u32 BE) |
//!
//! Without valid zone data every check fails (`BAD_STATE`): the TA fails closed.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use otrp_ta_sdk::{export_ta, personalization, Error, TrustedApp};
use serde::Deserialize;

const CMD_CHECK: u32 = 1;
const CMD_INFO: u32 = 2;
const EARTH_RADIUS_M: f64 = 6_371_008.8;
const MAX_ZONES: usize = 1024;
const MAX_VERTICES: usize = 1024;

#[derive(Deserialize)]
struct ZoneSet {
    #[serde(default)]
    version: u32,
    zones: Vec<Zone>,
}

#[derive(Deserialize)]
struct Circle {
    lat: f64,
    lon: f64,
    radius_m: f64,
}

#[derive(Deserialize)]
struct Zone {
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    #[serde(default)]
    circle: Option<Circle>,
    /// Vertices as [lat, lon]; the polygon is closed implicitly.
    #[serde(default)]
    polygon: Option<Vec<[f64; 2]>>,
}

struct GeoFence;

fn load() -> Result<ZoneSet, Error> {
    let data = personalization()?
        .ok_or_else(|| Error::BAD_STATE.with_message("no zone data installed"))?;
    let set: ZoneSet = serde_json::from_slice(&data)
        .map_err(|_| Error::BAD_FORMAT.with_message("zone data is not valid JSON"))?;
    if set.zones.len() > MAX_ZONES {
        return Err(Error::BAD_FORMAT.with_message("too many zones"));
    }
    for z in &set.zones {
        match (&z.circle, &z.polygon) {
            (Some(c), None) if c.radius_m.is_finite() && c.radius_m >= 0.0 => {}
            (None, Some(p)) if (3..=MAX_VERTICES).contains(&p.len()) => {}
            _ => {
                return Err(Error::BAD_FORMAT.with_message(
                    "a zone needs one circle (radius >= 0) or one polygon (3.. vertices)",
                ))
            }
        }
    }
    Ok(set)
}

/// Great-circle distance in metres (haversine).
fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let s1 = libm::sin(dp / 2.0);
    let s2 = libm::sin(dl / 2.0);
    let a = s1 * s1 + libm::cos(p1) * libm::cos(p2) * s2 * s2;
    2.0 * EARTH_RADIUS_M * libm::asin(libm::sqrt(a.clamp(0.0, 1.0)))
}

/// Even-odd ray casting in the lat/lon plane (zones are small next to the Earth).
fn in_polygon(lat: f64, lon: f64, poly: &[[f64; 2]]) -> bool {
    let mut inside = false;
    let mut prev = match poly.last() {
        Some(p) => *p,
        None => return false,
    };
    for &cur in poly {
        let ([lat_i, lon_i], [lat_j, lon_j]) = (cur, prev);
        if (lat_i > lat) != (lat_j > lat) {
            let lon_cross = lon_i + (lat - lat_i) * (lon_j - lon_i) / (lat_j - lat_i);
            if lon < lon_cross {
                inside = !inside;
            }
        }
        prev = cur;
    }
    inside
}

fn parse_point(input: &[u8]) -> Result<(f64, f64), Error> {
    let bad = || Error::BAD_PARAMETERS.with_message("need lat || lon as two f64 LE");
    let arr: [u8; 16] = input.try_into().map_err(|_| bad())?;
    let (a, b) = arr.split_at(8);
    let lat = f64::from_le_bytes(a.try_into().map_err(|_| bad())?);
    let lon = f64::from_le_bytes(b.try_into().map_err(|_| bad())?);
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(bad());
    }
    Ok((lat, lon))
}

impl TrustedApp for GeoFence {
    fn invoke(cmd: u32, input: &[u8]) -> Result<Vec<u8>, Error> {
        match cmd {
            CMD_CHECK => {
                let (lat, lon) = parse_point(input)?;
                let set = load()?;
                for (i, z) in set.zones.iter().enumerate() {
                    let inside = match (&z.circle, &z.polygon) {
                        (Some(c), _) => distance_m(lat, lon, c.lat, c.lon) <= c.radius_m,
                        (None, Some(p)) => in_polygon(lat, lon, p),
                        (None, None) => false,
                    };
                    if inside {
                        let idx = u32::try_from(i).unwrap_or(u32::MAX);
                        let mut out = vec![1u8];
                        out.extend_from_slice(&idx.to_be_bytes());
                        return Ok(out);
                    }
                }
                Ok(vec![0])
            }
            CMD_INFO => {
                let set = load()?;
                let mut out = set.version.to_be_bytes().to_vec();
                let n = u32::try_from(set.zones.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&n.to_be_bytes());
                Ok(out)
            }
            _ => Err(Error::NOT_SUPPORTED.with_message("unknown command")),
        }
    }
}

export_ta!(GeoFence);
