//! Ride-hailing operations of the location seed (`driver-location-tracking` with the
//! seeds' `RealTimeETAProcessor` and surge-pricing code): ETAs from a driver to the open
//! ride requests around it, matching an available driver to one of them, and the surge
//! multiplier of a region's demand.
//!
//! | operation | parameters (defaults) | does |
//! | --- | --- | --- |
//! | `calculate_eta_to_requests` | `requests_topic: ride-requests`, `radius_km: 5`, `within: 1 minute`, `speed_kmh: 30`, `traffic_multiplier: 1`, `traffic_field: traffic_multiplier`, `top: 3`, `precision: 4`, `refresh: 1 second`, `lat`, `lon` | adds `etas`: the `top` nearest requests (a global table of the requests topic) within `radius_km` of the driver, made at most `within` before the location's event time, each `{request_id, latitude, longitude, distance_km, eta_s}` |
//! | `trigger_matching_algorithm` | `id: driver_id`, `available: available`, `max_eta: 5 minutes`, `horizon: 1 hour`, `route: matches` | matches an available driver to the nearest request of its `etas` that is in the driver's own region (the record key), reachable within `max_eta` and not matched before: adds `match` and routes the record to outputs whose `for` is `route` |
//! | `calculate_surge_multiplier` | `count: count_by_region`, `baseline: 10`, `step: 0.1`, `max: 3` | adds `surge_multiplier` to a window's request count: `count / baseline`, rounded down to a multiple of `step`, between 1 and `max` |
//!
//! # ETAs
//!
//! The requests are a global table: every instance holds all of them, indexed by the
//! geohash cell (at `precision`) of their pickup point. A location reads the cells that
//! cover the circle of `radius_km` around it — its own cell and, near an edge, the
//! neighbouring ones — so a request across a cell edge is found. A request is open for
//! a location at event time `t` when the request's `timestamp` lies in `[t - within,
//! t]`: the seed joins locations and requests within 1 minute, and a request made after
//! the location had not been made yet when the driver was there. A request without a
//! `timestamp` is always open. The ETA is `distance / (speed_kmh / traffic) * 3600`
//! seconds, rounded, with `traffic` the record's `traffic_field` when it is a positive
//! number, else `traffic_multiplier` (the seed's `baseSpeedKmh / trafficMultiplier`).
//! The index is rebuilt when the table changed, at most once per `refresh` of event
//! time (reading the table is a copy of all of it).
//!
//! # Matching
//!
//! Invariant: a request is matched at most once. Records are keyed by region (after
//! `group_by_region`) and a driver is matched only to a request of its own region, so
//! one task — the one owning the region — decides every match of a request, from its
//! store of the region's matched requests. A request a driver in the neighbouring
//! region could reach is matched by the drivers of its own region; matching across
//! regions would need a second, request-keyed round trip. A match is remembered for
//! `horizon` of event time, which must exceed the ETA's `within` (a request older than
//! that is no longer anyone's candidate).
//!
//! # Surge
//!
//! In whole hundredths, so that the result is exact: `ratio = count × 100 / baseline`
//! (rounded down), `surge = clamp(ratio − ratio mod step, 100, max)`, as a number
//! (`1.7`). With `baseline: 10, step: 0.1, max: 3`: 9 requests → 1.0, 17 → 1.7,
//! 45 → 3.0. Parameters have at most two decimals.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value as Json};
use strom_streams::prelude::{
    GlobalTable, JsonSerde, KvStore, ProcessError, Processor, ProcessorContext, Record,
    StoreHandle, StringSerde,
};

use crate::builtins::{
    coordinates, geohash, haversine_km, member_key, number_param, param, precision, text_of,
    text_param, RecordFn,
};
use crate::compile::{event_time, field, ROUTE_FIELD};
use crate::spec::Operation;

/// Kilometres per degree of latitude, on the sphere [`haversine_km`] uses.
const KM_PER_DEGREE: f64 = 6_371.0 * std::f64::consts::PI / 180.0;

/// The most index cells one location reads: a radius far larger than the cells is a
/// mistake in the parameters, not a reason to read the whole table.
pub const CELLS_MAX: usize = 64;

/// A positive number parameter.
fn positive(op: &Operation, name: &str, default: f64) -> Result<f64, String> {
    match param(op, name) {
        None => Ok(default),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| *x > 0.0 && x.is_finite())
            .ok_or_else(|| format!("{name} {v:?}: a positive number")),
    }
}

/// A duration parameter in milliseconds.
fn duration_ms(op: &Operation, name: &str, default_ms: i64) -> Result<i64, String> {
    match param(op, name) {
        None => Ok(default_ms),
        Some(v) => crate::duration::parse_ms(v).map_err(|e| format!("{name}: {e}")),
    }
}

/// The geohash cells at `precision` that cover the circle of `radius_km` around `at`
/// (the cells its bounding box touches), or `None` when they are more than
/// [`CELLS_MAX`].
pub fn covering_cells(at: (f64, f64), radius_km: f64, precision: usize) -> Option<Vec<String>> {
    let bits = precision * 5;
    // The first bit of a geohash halves longitude: odd bit counts favour it.
    let (lat_cells, lon_cells) = (1i64 << (bits / 2), 1i64 << bits.div_ceil(2));
    let lat_step = 180.0 / lat_cells as f64;
    let lon_step = 360.0 / lon_cells as f64;
    let dlat = radius_km / KM_PER_DEGREE;
    let (lat0, lat1) = ((at.0 - dlat).max(-90.0), (at.0 + dlat).min(90.0));
    // The box is widest in longitude where it comes nearest a pole.
    let cos_min = lat0.to_radians().cos().min(lat1.to_radians().cos());
    let dlon = if cos_min > 1e-9 {
        (radius_km / (KM_PER_DEGREE * cos_min)).min(180.0)
    } else {
        180.0
    };
    let row = |lat: f64| (((lat + 90.0) / lat_step).floor() as i64).clamp(0, lat_cells - 1);
    let col = |lon: f64| ((lon + 180.0) / lon_step).floor() as i64;
    let (r0, r1) = (row(lat0), row(lat1));
    let (c0, mut c1) = (col(at.1 - dlon), col(at.1 + dlon));
    if c1 - c0 >= lon_cells {
        c1 = c0 + lon_cells - 1; // all the way round
    }
    let count = ((r1 - r0 + 1) * (c1 - c0 + 1)) as usize;
    if count > CELLS_MAX {
        return None;
    }
    let mut cells = Vec::with_capacity(count);
    for r in r0..=r1 {
        for c in c0..=c1 {
            // Columns past the antimeridian wrap around.
            let c = c.rem_euclid(lon_cells);
            let lat = -90.0 + (r as f64 + 0.5) * lat_step;
            let lon = -180.0 + (c as f64 + 0.5) * lon_step;
            cells.push(geohash(lat, lon, precision));
        }
    }
    Some(cells)
}

/// What `calculate_eta_to_requests` is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct EtaSettings {
    /// The base speed.
    pub speed_kmh: f64,
    /// How much slower than the base speed traffic makes a drive (1: not at all).
    pub traffic_multiplier: f64,
    /// The record field whose positive number, when present, is the multiplier instead.
    pub traffic_field: String,
    /// How far a request may be.
    pub radius_km: f64,
    /// How long before the location a request may have been made.
    pub within_ms: i64,
    /// How many requests to list.
    pub top: usize,
    /// Geohash precision of the index cells.
    pub precision: usize,
    /// Event time between rebuilds of the index while the table changes.
    pub refresh_ms: i64,
    /// The location's coordinate fields.
    pub lat: String,
    /// See `lat`.
    pub lon: String,
}

impl EtaSettings {
    /// The settings of `op`, or what is wrong with them.
    pub fn new(op: &Operation) -> Result<Self, String> {
        let s = EtaSettings {
            speed_kmh: positive(op, "speed_kmh", 30.0)?,
            traffic_multiplier: positive(op, "traffic_multiplier", 1.0)?,
            traffic_field: text_param(op, "traffic_field", "traffic_multiplier"),
            radius_km: positive(op, "radius_km", 5.0)?,
            within_ms: duration_ms(op, "within", 60_000)?,
            top: number_param(op, "top", 3)? as usize,
            precision: precision(op, 4)?,
            refresh_ms: duration_ms(op, "refresh", 1_000)?,
            lat: text_param(op, "lat", "latitude"),
            lon: text_param(op, "lon", "longitude"),
        };
        if covering_cells((0.0, 0.0), s.radius_km, s.precision).is_none() {
            return Err(format!(
                "radius_km {} covers more than {CELLS_MAX} cells of precision {}: use a lower precision",
                s.radius_km, s.precision
            ));
        }
        Ok(s)
    }

    /// Seconds to drive `km` at the base speed slowed down by `traffic`, rounded.
    pub fn eta_s(&self, km: f64, traffic: f64) -> i64 {
        (km / (self.speed_kmh / traffic) * 3600.0).round() as i64
    }
}

/// A request in the index.
#[derive(Debug, Clone)]
struct OpenRequest {
    id: String,
    at: (f64, f64),
}

/// The requests of one index cell: those with an event time, sorted by it, and those
/// without one (always open).
#[derive(Debug, Default)]
struct Cell {
    timed: Vec<(i64, OpenRequest)>,
    untimed: Vec<OpenRequest>,
}

/// The index as built from the table at `version`, at event time `at_ms`.
#[derive(Clone)]
struct Built {
    version: u64,
    at_ms: i64,
    cells: Arc<HashMap<String, Cell>>,
}

/// `calculate_eta_to_requests`: the nearest open requests around a driver.
#[derive(Clone)]
pub struct RequestEtas {
    /// Requests: request id → `{"latitude", "longitude", "timestamp"}`.
    pub requests: GlobalTable<String, Json>,
    /// The parameters.
    pub settings: Arc<EtaSettings>,
    index: Option<Built>,
}

impl RequestEtas {
    /// The operator for `op` with the global table `requests`.
    pub fn new(op: &Operation, requests: GlobalTable<String, Json>) -> Result<Self, String> {
        Ok(RequestEtas {
            requests,
            settings: Arc::new(EtaSettings::new(op)?),
            index: None,
        })
    }

    /// The requests by cell: rebuilt when the table changed, at most once per `refresh`
    /// of event time.
    fn cells(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, Json>,
        now_ms: i64,
    ) -> Result<Arc<HashMap<String, Cell>>, ProcessError> {
        let table = ctx.global(&self.requests)?;
        let version = table.version();
        if let Some(b) = &self.index {
            if b.version == version || now_ms.saturating_sub(b.at_ms) < self.settings.refresh_ms {
                return Ok(b.cells.clone());
            }
        }
        let mut cells: HashMap<String, Cell> = HashMap::new();
        for (id, req) in table.all()? {
            // Requests with unusable coordinates are never anyone's candidates.
            let Ok(at) = coordinates(&req, "latitude", "longitude") else {
                continue;
            };
            let cell = cells
                .entry(geohash(at.0, at.1, self.settings.precision))
                .or_default();
            let open = OpenRequest { id, at };
            match req.get("timestamp").and_then(event_time) {
                Some(t) => cell.timed.push((t, open)),
                None => cell.untimed.push(open),
            }
        }
        for cell in cells.values_mut() {
            cell.timed.sort_by_key(|(t, _)| *t);
        }
        let cells = Arc::new(cells);
        let at_ms = self.index.as_ref().map_or(now_ms, |b| b.at_ms.max(now_ms));
        self.index = Some(Built {
            version,
            at_ms,
            cells: cells.clone(),
        });
        Ok(cells)
    }
}

impl Processor<String, Json, String, Json> for RequestEtas {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, Json>,
        mut r: Record<String, Json>,
    ) -> Result<(), ProcessError> {
        let s = self.settings.clone();
        let here = coordinates(&r.value, &s.lat, &s.lon).map_err(ProcessError::user)?;
        let traffic = field(&r.value, &s.traffic_field)
            .and_then(Json::as_f64)
            .filter(|m| *m > 0.0 && m.is_finite())
            .unwrap_or(s.traffic_multiplier);
        let covering = covering_cells(here, s.radius_km, s.precision).ok_or_else(|| {
            ProcessError::user(format!(
                "radius_km {} covers more than {CELLS_MAX} cells at latitude {}",
                s.radius_km, here.0
            ))
        })?;
        let t = r.timestamp_ms;
        let cells = self.cells(ctx, t)?;
        let mut near: Vec<(&OpenRequest, f64)> = Vec::new();
        for cell in covering.iter().filter_map(|c| cells.get(c)) {
            let from = cell
                .timed
                .partition_point(|(made, _)| *made < t.saturating_sub(s.within_ms));
            let to = cell.timed.partition_point(|(made, _)| *made <= t);
            let open = cell.timed[from..to.max(from)].iter().map(|(_, q)| q);
            for q in open.chain(&cell.untimed) {
                let km = haversine_km(here, q.at);
                if km <= s.radius_km {
                    near.push((q, km));
                }
            }
        }
        near.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
        let etas: Vec<Json> = near
            .into_iter()
            .take(s.top)
            .map(|(q, km)| {
                json!({"request_id": q.id, "latitude": q.at.0, "longitude": q.at.1,
                       "distance_km": km, "eta_s": s.eta_s(km, traffic)})
            })
            .collect();
        if let Some(obj) = r.value.as_object_mut() {
            obj.insert("etas".into(), Json::Array(etas));
        }
        ctx.forward(r);
        Ok(())
    }
}

/// The expiry entry of a match made at `t` in `region`: a region's sort by time.
fn match_expiry_key(region: &str, t: i64, request: &str) -> String {
    format!("{region}\u{1e}{:020}\u{1f}{request}", t.max(0))
}

/// `trigger_matching_algorithm`: the nearest unmatched request of the driver's region.
#[derive(Clone)]
pub struct Matching {
    /// Per region: `region\u{1f}request → {"driver", "t"}` of matches made,
    /// `region\u{1e}<t, 20 digits>\u{1f}request` their expiry entries and `region\u{1d}` the
    /// time up to which those were removed. A match looks up only the driver's
    /// candidates and removes each expired match once.
    pub store: StoreHandle<String, Json>,
    /// The field naming the driver.
    pub id: String,
    /// The field of the driver's availability (true when absent).
    pub available: String,
    /// The longest ETA matched, in seconds.
    pub max_eta_s: f64,
    /// How long a match is remembered (event time).
    pub horizon_ms: i64,
    /// The route of matched records.
    pub route: String,
}

impl Matching {
    /// The operator for `op`, keeping its matches in the store `store`.
    pub fn new(op: &Operation, store: &str) -> Result<Self, String> {
        Ok(Matching {
            store: StoreHandle::new(store, StringSerde, JsonSerde::new()),
            id: text_param(op, "id", "driver_id"),
            available: text_param(op, "available", "available"),
            max_eta_s: duration_ms(op, "max_eta", 300_000)? as f64 / 1000.0,
            horizon_ms: duration_ms(op, "horizon", 3_600_000)?,
            route: text_param(op, "route", "matches"),
        })
    }

    /// Forgets the region's matches made `horizon` or longer before `t`.
    fn expire(
        &self,
        store: &mut KvStore<'_, String, Json>,
        region: &str,
        t: i64,
    ) -> Result<(), ProcessError> {
        let scanned_key = format!("{region}\u{1d}");
        let scanned = store
            .get(&scanned_key)?
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let horizon_ms = t.saturating_sub(self.horizon_ms) + 1;
        if horizon_ms <= scanned {
            return Ok(());
        }
        store.put(&scanned_key, &Json::from(horizon_ms))?;
        let from = match_expiry_key(region, scanned, "");
        let to = match_expiry_key(region, horizon_ms, "");
        for (key, _) in store.range(from..to)? {
            store.delete(&key)?;
            if let Some((_, request)) = key.split_once('\u{1f}') {
                store.delete(&member_key(region, request))?;
            }
        }
        Ok(())
    }
}

/// Whether `eta` (an entry of `etas`) is a request of `region` reachable in `max_eta_s`.
fn candidate<'e>(eta: &'e Json, region: &str, max_eta_s: f64) -> Option<&'e str> {
    let id = eta["request_id"].as_str()?;
    let reachable = eta["eta_s"].as_f64()? <= max_eta_s;
    let (lat, lon) = (eta["latitude"].as_f64()?, eta["longitude"].as_f64()?);
    let own = (1..=12).contains(&region.len()) && geohash(lat, lon, region.len()) == region;
    (reachable && own).then_some(id)
}

impl Processor<String, Json, String, Json> for Matching {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, Json>,
        mut r: Record<String, Json>,
    ) -> Result<(), ProcessError> {
        let available = field(&r.value, &self.available)
            .and_then(Json::as_bool)
            .unwrap_or(true);
        let driver = text_of(&r.value, &self.id);
        let (true, Some(driver)) = (available, driver) else {
            ctx.forward(r);
            return Ok(());
        };
        let region = r.key.clone();
        let t = r.timestamp_ms;
        let mut store = ctx.store(&self.store)?;
        self.expire(&mut store, &region, t)?;
        let mut pick = None;
        let etas = field(&r.value, "etas").and_then(Json::as_array);
        for eta in etas.into_iter().flatten() {
            let Some(request) = candidate(eta, &region, self.max_eta_s) else {
                continue;
            };
            let key = member_key(&region, request);
            if store.get(&key)?.is_none() {
                store.put(&key, &json!({"driver": driver, "t": t}))?;
                store.put(&match_expiry_key(&region, t, request), &Json::from(t))?;
                pick = Some(eta.clone());
                break;
            }
        }
        if let (Some(pick), Some(obj)) = (pick, r.value.as_object_mut()) {
            obj.insert("match".into(), pick);
            obj.insert(ROUTE_FIELD.into(), Json::String(self.route.clone()));
        }
        ctx.forward(r);
        Ok(())
    }
}

/// A parameter as whole hundredths (`"1.25"` → 125): at most two decimals, positive.
fn hundredths(op: &Operation, name: &str, default: u64) -> Result<u64, String> {
    let Some(text) = param(op, name) else {
        return Ok(default);
    };
    let bad = || format!("{name} {text:?}: a positive number with at most two decimals");
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 2 {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let fraction: u64 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(fraction))
        .filter(|h| *h > 0)
        .ok_or_else(bad)
}

/// The surge multiplier of `requests` in hundredths (see the module's docs).
pub fn surge_hundredths(requests: u64, baseline_h: u64, step_h: u64, max_h: u64) -> u64 {
    let ratio = requests.saturating_mul(10_000) / baseline_h.max(1);
    (ratio - ratio % step_h.max(1)).clamp(100, max_h.max(100))
}

/// `calculate_surge_multiplier` as a record function.
pub fn surge_multiplier(op: &Operation) -> Result<RecordFn, String> {
    let count = text_param(op, "count", "count_by_region");
    let baseline_h = hundredths(op, "baseline", 1_000)?;
    let step_h = hundredths(op, "step", 10)?;
    let max_h = hundredths(op, "max", 300)?;
    if max_h < 100 {
        return Err(format!(
            "max {}: at least 1 (no surge is 1.0)",
            max_h as f64 / 100.0
        ));
    }
    Ok(Box::new(move |k, mut v| {
        let Some(requests) = field(&v, &count).and_then(Json::as_u64) else {
            return Err(format!(
                "no {count}: a window's request count (a whole number) to price"
            ));
        };
        let surge = surge_hundredths(requests, baseline_h, step_h, max_h);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("surge_multiplier".into(), json!(surge as f64 / 100.0));
        }
        Ok(Some((k, v)))
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn op(params: &[(&str, &str)]) -> Operation {
        Operation {
            name: "op".into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), crate::Value::Text(v.to_string())))
                .collect(),
            at: crate::Location::default(),
        }
    }

    #[test]
    fn a_small_radius_reads_one_cell_and_an_edge_reads_its_neighbours() {
        // San Francisco's centre is well inside 9q8y (precision 4: about 31 × 19 km).
        assert_eq!(
            covering_cells((37.75, -122.45), 1.0, 4).unwrap(),
            vec!["9q8y"]
        );
        // 9q8y's northern edge is at 37.79296875°: 5 km reach into 9q8z to the north.
        let mut edge = covering_cells((37.785, -122.45), 5.0, 4).unwrap();
        edge.sort();
        assert_eq!(edge, vec!["9q8y", "9q8z"]);
        // Every cell within the radius is covered, at a finer precision too.
        let at = (37.7749, -122.4194);
        let cells = covering_cells(at, 5.0, 5).unwrap();
        for i in -50..=50 {
            for j in -50..=50 {
                let p = (at.0 + f64::from(i) * 0.001, at.1 + f64::from(j) * 0.001);
                if haversine_km(at, p) <= 5.0 {
                    assert!(cells.contains(&geohash(p.0, p.1, 5)), "{p:?}");
                }
            }
        }
        // Too many cells is an error of the parameters.
        assert!(covering_cells(at, 50.0, 7).is_none());
        assert!(EtaSettings::new(&op(&[("radius_km", "50"), ("precision", "7")])).is_err());
    }

    #[test]
    fn cells_wrap_around_the_antimeridian() {
        let mut cells = covering_cells((1.0, 179.99), 5.0, 3).unwrap();
        cells.sort();
        assert_eq!(
            cells,
            vec![geohash(1.0, -179.99, 3), geohash(1.0, 179.99, 3)]
        );
        assert_eq!(cells, vec!["800", "xbp"]);
    }

    #[test]
    fn the_eta_slows_down_with_traffic() {
        let s = EtaSettings::new(&op(&[("traffic_multiplier", "1.5")])).unwrap();
        assert_eq!(s.eta_s(5.0, 1.0), 600, "5 km at 30 km/h");
        assert_eq!(s.eta_s(5.0, s.traffic_multiplier), 900, "at 20 km/h");
        assert_eq!(s.within_ms, 60_000);
        assert_eq!(s.radius_km, 5.0);
        assert!(EtaSettings::new(&op(&[("speed_kmh", "0")])).is_err());
        assert!(EtaSettings::new(&op(&[("within", "soon")])).is_err());
    }

    #[test]
    fn surge_steps_down_and_stays_between_one_and_the_cap() {
        let (b, s, m) = (1_000, 10, 300); // baseline 10, step 0.1, max 3
        assert_eq!(surge_hundredths(0, b, s, m), 100);
        assert_eq!(surge_hundredths(9, b, s, m), 100);
        assert_eq!(surge_hundredths(10, b, s, m), 100);
        assert_eq!(surge_hundredths(17, b, s, m), 170);
        assert_eq!(surge_hundredths(29, b, s, m), 290);
        assert_eq!(surge_hundredths(45, b, s, m), 300);
        // A step of 0.25 over a baseline of 4: 7 requests are 1.75, 9 are 2.25.
        assert_eq!(surge_hundredths(7, 400, 25, 500), 175);
        assert_eq!(surge_hundredths(9, 400, 25, 500), 225);
        assert_eq!(surge_hundredths(u64::MAX, 1, 1, 300), 300);
    }

    #[test]
    fn surge_parameters_are_exact_hundredths() {
        assert_eq!(hundredths(&op(&[("x", "1.25")]), "x", 0), Ok(125));
        assert_eq!(hundredths(&op(&[("x", "3")]), "x", 0), Ok(300));
        assert_eq!(hundredths(&op(&[("x", "0.5")]), "x", 0), Ok(50));
        assert_eq!(hundredths(&op(&[]), "x", 7), Ok(7));
        for bad in ["0", "1.255", "-1", "1e2", ".5", "two", ""] {
            assert!(hundredths(&op(&[("x", bad)]), "x", 0).is_err(), "{bad:?}");
        }
        assert!(surge_multiplier(&op(&[("max", "0.5")])).is_err());
        let f = surge_multiplier(&op(&[("baseline", "4"), ("step", "0.25")])).unwrap();
        let (_, v) = f("r".into(), json!({"count_by_region": 7}))
            .unwrap()
            .unwrap();
        assert_eq!(v, json!({"count_by_region": 7, "surge_multiplier": 1.75}));
        assert!(f("r".into(), json!({"count": 7})).is_err());
    }

    #[test]
    fn a_candidate_is_a_reachable_request_of_the_region() {
        let eta = |lat: f64, eta_s: i64| json!({"request_id": "r1", "latitude": lat, "longitude": -122.45, "eta_s": eta_s});
        let region = geohash(37.75, -122.45, 5);
        assert_eq!(candidate(&eta(37.75, 300), &region, 300.0), Some("r1"));
        assert_eq!(candidate(&eta(37.75, 301), &region, 300.0), None, "too far");
        assert_eq!(
            candidate(&eta(37.85, 60), &region, 300.0),
            None,
            "another region"
        );
        assert_eq!(candidate(&eta(37.75, 60), "", 300.0), None, "no region");
    }
}
